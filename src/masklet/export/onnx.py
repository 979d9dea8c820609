"""`export_onnx`: the image encoder, the prompt encoder + mask decoder (one graph, for
runtimes without PyTorch), the mask decoder alone, the memory attention, the memory encoder
and the object-pointer projection as ONNX files, each checked with `onnx.checker`; the few
tensors the loops use outside the graphs (`loop_weights.safetensors`); and a JSON manifest
(model config, input / output names, shapes with the dynamic axes named). The onnxruntime
backend (`masklet.backends.onnxruntime`) loads such a folder.

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
from safetensors.torch import save_file
from torch import nn

from masklet.errors import InvalidInputError
from masklet.export.graphs import (
    ImageEncoderGraph,
    MaskDecoderGraph,
    ObjectPointerGraph,
    PromptDecoderGraph,
    example_inputs,
)
from masklet.export.memory_graphs import (
    MemoryAttentionGraph,
    MemoryEncoderGraph,
    memory_example_inputs,
)
from masklet.export.reduced import check_options, convert_part
from masklet.modeling.sam2 import SAM2Model

DEFAULT_OPSET = 17
MANIFEST_NAME = "manifest.json"
# The tensors the image and video loops use outside the graphs (prompt encoder, learned
# memory and no-object embeddings, pointer temporal projection, mask downsampler).
LOOP_WEIGHTS_NAME = "loop_weights.safetensors"
# State-dict prefixes whose tensors live in the graphs the onnxruntime backend runs.
GRAPH_PREFIXES = (
    "image_encoder.", "sam_mask_decoder.", "memory_attention.", "memory_encoder.",
    "obj_ptr_proj.",
)  # fmt: skip


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
    mask_decoder, pointer = MaskDecoderGraph(model), ObjectPointerGraph(model)
    attention, memory_encoder = MemoryAttentionGraph(model), MemoryEncoderGraph(model)
    batch = {0: "batch"}
    points = {0: "batch", 1: "num_points"}
    memory = {0: "num_memory_tokens", 1: "batch"}
    pointers = {0: "num_pointer_tokens", 1: "batch"}
    plan: list[tuple[str, nn.Module, list[str], list[str], dict[str, Any]]] = [
        ("image_encoder", encoder, ["images"], encoder.output_names(), {}),
        ("prompt_decoder", decoder, decoder.input_names(), decoder.output_names(),
         {"point_coords": points, "point_labels": points, "has_mask_input": {}}),
        ("mask_decoder", mask_decoder, mask_decoder.input_names(), mask_decoder.output_names(),
         {"image_pe": {}, "sparse_embeddings": {0: "batch", 1: "num_tokens"}}),
        ("memory_attention", attention, attention.input_names, attention.output_names,
         {"memory": memory, "memory_pos": memory, "object_pointers": pointers,
          "object_pointers_pos": pointers}),
        ("memory_encoder", memory_encoder, memory_encoder.input_names,
         memory_encoder.output_names, {}),
        ("object_pointer", pointer, pointer.input_names, pointer.output_names, {}),
    ]  # fmt: skip
    for _, _, in_names, out_names, axes in plan:
        for name in in_names + out_names:
            axes.setdefault(name, dict(batch))
        for name in [n for n, a in axes.items() if not a]:
            del axes[name]  # a flag or a constant, not batched
    return plan


def export_onnx(
    model: SAM2Model,
    out_dir: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    precision: str = "fp32",
    quantize: str | None = None,
) -> list[ExportedPart]:
    """Exports every graph of `model` (fp32, on CPU; see the module docstring) into `out_dir`
    with `loop_weights.safetensors` and `manifest.json`; returns the graphs written. The
    model is left in eval mode on the CPU.

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
            "mask_for_memory": "[B, 1, S, S] the predicted mask prepared as "
            "SAM2Model.encode_memory does (overlaps removed, thresholded on clicked frames or "
            "sigmoid elsewhere, times sigmoid_scale_for_mem_enc plus sigmoid_bias_for_mem_enc); "
            "add no_obj_embed_spatial to the memory of absent objects",
            "mask_decoder": "the decoder on the prompt encoder's sparse / dense embeddings and "
            "its dense position encoding (image_pe)",
            "object_pointer": "the chosen mask token to the object pointer; absent objects "
            "then mix in no_obj_ptr (see SAM2Model._gate_pointer)",
            "loop_weights": "tensors used outside the graphs, by state-dict key",
        },
    }
    loop_weights = {k: v.clone() for k, v in model.state_dict().items()
                    if not k.startswith(GRAPH_PREFIXES)}  # fmt: skip
    save_file(loop_weights, str(out / LOOP_WEIGHTS_NAME))
    manifest["loop_weights"] = {"file": LOOP_WEIGHTS_NAME, "keys": sorted(loop_weights)}
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return parts
