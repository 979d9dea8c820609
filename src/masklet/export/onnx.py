"""`export_onnx`: the image encoder and the prompt encoder + mask decoder as ONNX files,
each checked with `onnx.checker`, plus a JSON manifest (model config, input / output names,
shapes with the dynamic axes named).

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
from masklet.modeling.sam2 import SAM2Model

DEFAULT_OPSET = 17
MANIFEST_NAME = "manifest.json"
IMAGE_ENCODER_FILE = "image_encoder.onnx"
PROMPT_DECODER_FILE = "prompt_decoder.onnx"


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


def export_onnx(
    model: SAM2Model, out_dir: str | Path, *, opset: int = DEFAULT_OPSET
) -> list[ExportedPart]:
    """Exports the image encoder and the prompt encoder + mask decoder of `model` (fp32, on
    CPU) into `out_dir` with `manifest.json`; returns what was written."""
    onnx = _require_onnx()
    if opset < DEFAULT_OPSET:
        raise InvalidInputError(f"opset {opset} is too old; use {DEFAULT_OPSET} or newer")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.float().cpu().eval()
    inputs = example_inputs(model)
    encoder, decoder = ImageEncoderGraph(model), PromptDecoderGraph(model)
    batch = {0: "batch"}
    plan = [
        ("image_encoder", encoder, IMAGE_ENCODER_FILE, ["images"], encoder.output_names()),
        ("prompt_decoder", decoder, PROMPT_DECODER_FILE, decoder.input_names(),
         decoder.output_names()),
    ]  # fmt: skip
    parts: list[ExportedPart] = []
    described: dict[str, Any] = {}
    for name, module, filename, in_names, out_names in plan:
        axes = {n: dict(batch) for n in in_names + out_names if n != "has_mask_input"}
        if name == "prompt_decoder":
            axes["point_coords"] = {0: "batch", 1: "num_points"}
            axes["point_labels"] = {0: "batch", 1: "num_points"}
        path = out / filename
        seconds = _export_one(
            module, path, inputs, input_names=in_names, output_names=out_names,
            dynamic_axes=axes, opset=opset,
        )  # fmt: skip
        onnx.checker.check_model(str(path))
        parts.append(ExportedPart(name, path, seconds, path.stat().st_size))
        described[name] = _describe(onnx, path)
    manifest = {
        "format": "masklet-onnx",
        "opset": opset,
        "torch": torch.__version__,
        "model_config": dataclasses.asdict(model.config),
        "parts": described,
        "notes": {
            "images": "RGB, resized to image_size and normalised as the predictors do",
            "point_labels": "1 positive, 0 negative, 2 / 3 box corners; a padding point is "
            "appended inside the graph",
            "masks": "token 0 is the single-mask output, tokens 1.. the multimask outputs",
            "has_mask_input": "1.0 to use mask_input as a prompt, 0.0 to ignore it",
        },
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return parts
