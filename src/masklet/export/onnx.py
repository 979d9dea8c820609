"""`export_onnx`: the image encoder, the prompt encoder + mask decoder, the memory attention
and the memory encoder as ONNX files, each checked with `onnx.checker`, plus a JSON manifest
(model config, input / output names, shapes with the dynamic axes named).

Needs the `onnx` extra (`pip install masklet[onnx]`). The memory attention's rotary encoding
switches to real arithmetic during export (ONNX has no complex dtype); see `RoPEAttention`.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from masklet.errors import InvalidInputError
from masklet.export.graphs import ImageEncoderGraph, PromptDecoderGraph, example_inputs
from masklet.export.memory_graphs import (
    MemoryAttentionGraph,
    MemoryEncoderGraph,
    memory_example_inputs,
)
from masklet.export.reduced import check_options, convert_part
from masklet.modeling.sam2 import SAM2Model

DEFAULT_OPSET = 17
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class ExportedPart:
    """One exported graph: its file, the seconds export took and its size in bytes."""

    name: str
    path: Path
    seconds: float
    size_bytes: int


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError as err:
        raise InvalidInputError(
            "ONNX export needs the onnx package; install it with `pip install masklet[onnx]`"
        ) from err
    return onnx


def _export_one(
    module: nn.Module,
    path: Path,
    inputs: dict[str, torch.Tensor],
    *,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    opset: int,
) -> float:
    start = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer warns about every Python int taken from a shape; the shapes it bakes in
        # (grid sizes fixed by the image size) are meant to be constant
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            module,
            tuple(inputs[n] for n in input_names),
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False,  # the TorchScript exporter: no onnxscript dependency
            do_constant_folding=True,
        )
    return time.perf_counter() - start


def _describe(onnx: Any, path: Path) -> dict[str, Any]:
    """Input / output names, element types and shapes (symbolic dims by name) of a model."""
    graph = onnx.load(str(path), load_external_data=False).graph

    def values(items: Any) -> list[dict[str, Any]]:
        out = []
        for v in items:
            tensor = v.type.tensor_type
            dims = [d.dim_param or d.dim_value for d in tensor.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
            out.append({"name": v.name, "dtype": dtype, "shape": dims})
        return out

    return {"file": path.name, "inputs": values(graph.input), "outputs": values(graph.output)}


def _plan(model: SAM2Model) -> list[tuple[str, nn.Module, list[str], list[str], dict[str, Any]]]:
    """(part, module, input names, output names, dynamic axes) of every exported graph."""
    encoder, decoder = ImageEncoderGraph(model), PromptDecoderGraph(model)
    attention, memory_encoder = MemoryAttentionGraph(model), MemoryEncoderGraph(model)
    batch = {0: "batch"}
    points = {0: "batch", 1: "num_points"}
    memory = {0: "num_memory_tokens", 1: "batch"}
    pointers = {0: "num_pointer_tokens", 1: "batch"}
    plan: list[tuple[str, nn.Module, list[str], list[str], dict[str, Any]]] = [
        ("image_encoder", encoder, ["images"], encoder.output_names(), {}),
        ("prompt_decoder", decoder, decoder.input_names(), decoder.output_names(),
         {"point_coords": points, "point_labels": points, "has_mask_input": {}}),
        ("memory_attention", attention, attention.input_names, attention.output_names,
         {"memory": memory, "memory_pos": memory, "object_pointers": pointers,
          "object_pointers_pos": pointers}),
        ("memory_encoder", memory_encoder, memory_encoder.input_names,
         memory_encoder.output_names, {"is_mask_from_points": {}}),
    ]  # fmt: skip
    for _, _, in_names, out_names, axes in plan:
        for name in in_names + out_names:
            axes.setdefault(name, dict(batch))
        for name in [n for n, a in axes.items() if not a]:
            del axes[name]  # a flag, not batched
    return plan


def export_onnx(
    model: SAM2Model,
    out_dir: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    precision: str = "fp32",
    quantize: str | None = None,
) -> list[ExportedPart]:
    """Exports the image encoder, the prompt encoder + mask decoder, the memory attention and
    the memory encoder of `model` (fp32, on CPU) into `out_dir` with `manifest.json`; returns
    what was written. The model is left in eval mode on the CPU.

    precision "fp16" converts every part (inputs and outputs stay float32); quantize "int8"
    quantises the image encoder (`masklet.export.reduced`)."""
    onnx = _require_onnx()
    check_options(precision, quantize)
    if opset < DEFAULT_OPSET:
        raise InvalidInputError(f"opset {opset} is too old; use {DEFAULT_OPSET} or newer")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.float().cpu().eval()
    inputs = {**memory_example_inputs(model), **example_inputs(model)}  # real image features
    parts: list[ExportedPart] = []
    described: dict[str, Any] = {}
    precisions: dict[str, str] = {}
    for name, module, in_names, out_names, axes in _plan(model):
        path = out / f"{name}.onnx"
        seconds = _export_one(
            module, path, inputs, input_names=in_names, output_names=out_names,
            dynamic_axes=axes, opset=opset,
        )  # fmt: skip
        onnx.checker.check_model(str(path))
        precisions[name] = convert_part(onnx, path, name, precision=precision, quantize=quantize)
        onnx.checker.check_model(str(path))
        parts.append(ExportedPart(name, path, seconds, path.stat().st_size))
        described[name] = _describe(onnx, path)
    manifest = {
        "format": "masklet-onnx",
        "opset": opset,
        "torch": torch.__version__,
        "model_config": dataclasses.asdict(model.config),
        "parts": described,
        "precision": precisions,
        "notes": {
            "images": "RGB, resized to image_size and normalised as the predictors do",
            "point_labels": "1 positive, 0 negative, 2 / 3 box corners; a padding point is "
            "appended inside the graph",
            "masks": "token 0 is the single-mask output, tokens 1.. the multimask outputs",
            "has_mask_input": "1.0 to use mask_input as a prompt, 0.0 to ignore it",
            "memory": "spatial memories of the selected frames end to end ([F * h * w, B, "
            "C_mem]); memory_pos with the temporal encodings already added",
            "object_pointers": "[P, B, C_mem] pointer tokens (P may be 0) and their position "
            "encodings, as the model's memory step builds them",
            "is_mask_from_points": "1.0 on clicked frames (the thresholded mask is stored), "
            "0.0 elsewhere",
        },
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return parts
