"""Export of the model's parts to ONNX (`masklet export onnx`).

`export_onnx` is imported on first use: `masklet export --help` reads the option lists of
`masklet.export.reduced` without importing PyTorch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from masklet.export.onnx import ExportedPart, export_onnx

__all__ = ["ExportedPart", "export_onnx"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from masklet.export import onnx

        return getattr(onnx, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
