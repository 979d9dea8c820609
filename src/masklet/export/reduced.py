"""Reduced-precision ONNX parts: fp16 graphs and an int8 image encoder, from the fp32 export.

fp16 converts every weight and activation to float16 with onnxruntime's converter, keeping
each graph's inputs and outputs float32 (casts at the edges), so a backend feeds the same
tensors as for fp32. int8 is onnxruntime's dynamic quantisation of the image encoder (the
heaviest part): its matrix-product weights become int8 and activations are quantised at run
time. Measured accuracy cost of int8 is in `INT8_COST` (also shown by `masklet export --help`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from masklet.errors import InvalidInputError

EXPORT_PRECISIONS = ("fp32", "fp16")
QUANTIZE_CHOICES = ("int8",)
QUANTIZED_PART = "image_encoder"
# Measured with benchmarks/precision.py (bundled nano model, one click on the first frame of 6
# held-out clips, fp32 onnxruntime decoder on both encoders' outputs): what the 4x smaller
# image encoder file costs in accuracy.
INT8_COST = (
    "measured cost on the bundled model: one-click masks IoU 0.988 on average (worst 0.93) "
    "against the fp32 encoder's, logits within 3.1; the file is 4x smaller"
)


def check_options(precision: str, quantize: str | None) -> None:
    if precision not in EXPORT_PRECISIONS:
        raise InvalidInputError(
            f"ONNX export writes {' or '.join(EXPORT_PRECISIONS)} graphs, got {precision!r} "
            "(bf16 and auto are PyTorch compute modes: use --precision fp16 or fp32 here)"
        )
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise InvalidInputError(f"--quantize takes {', '.join(QUANTIZE_CHOICES)}, got {quantize!r}")
    if quantize is not None and precision != "fp32":
        raise InvalidInputError(
            "int8 quantisation starts from the fp32 graph: use --quantize int8 without "
            "--precision fp16"
        )


def convert_part(onnx: Any, path: Path, name: str, *, precision: str, quantize: str | None) -> str:
    """Rewrite the exported fp32 graph at `path` in place; returns the precision it now has."""
    if quantize == "int8" and name == QUANTIZED_PART:
        _quantize_int8(path)
        return "int8"
    if precision == "fp16":
        _to_fp16(onnx, path)
        return "fp16"
    return "fp32"


def _to_fp16(onnx: Any, path: Path) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    converted = OnnxModel(convert_float_to_float16(onnx.load(str(path)), keep_io_types=True))
    converted.topological_sort()  # the converter appends the edge casts after their users
    onnx.save(converted.model, str(path))


def _quantize_int8(path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = path.with_suffix(".fp32.onnx")
    path.rename(fp32)
    try:
        quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)
    finally:
        fp32.unlink()
