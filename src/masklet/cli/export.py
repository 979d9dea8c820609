"""`masklet export onnx --model NAME|--checkpoint PATH --out DIR [--image-size N]`."""

from __future__ import annotations

import argparse
import dataclasses

from masklet.cli.common import add_model_options, load_model_from_args
from masklet.errors import InvalidInputError
from masklet.export.reduced import EXPORT_PRECISIONS, INT8_COST, QUANTIZE_CHOICES

ONNX_DESCRIPTION = (
    "Write the image encoder (embedding, high-res maps, raw features and "
    "position encoding), the prompt encoder + mask decoder (all mask tokens, IoU, object "
    "score; also the mask decoder alone), the memory attention (any number of memory "
    "frames and object pointers), the memory encoder and the object-pointer projection as "
    "fp32 ONNX files checked with onnx.checker, the tensors used outside them "
    "(loop_weights.safetensors) and manifest.json (model config, input and output names "
    "and shapes). The folder loads as a model with --backend onnxruntime. Needs "
    "`pip install masklet[onnx]`."
)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "export",
        help="export a model's parts to ONNX",
        description="Export a model to another runtime's format.",
    )
    formats = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    o = formats.add_parser(
        "onnx",
        help="image encoder, prompt encoder + mask decoder, memory attention, memory encoder "
        "and object-pointer projection as ONNX files",
        description=ONNX_DESCRIPTION,
    )
    # from PyTorch weights; --precision here is the graphs' dtype
    add_model_options(o, backend=False, precision=False)
    o.add_argument(
        "--precision", default="fp32", choices=EXPORT_PRECISIONS,
        help="fp16 converts every graph to float16 (inputs and outputs stay float32); "
        "default fp32",
    )  # fmt: skip
    o.add_argument(
        "--quantize", default=None, choices=QUANTIZE_CHOICES,
        help=f"int8: dynamic quantisation of the image encoder (onnxruntime); {INT8_COST}",
    )  # fmt: skip
    o.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    o.add_argument(
        "--image-size",
        type=int,
        default=None,
        metavar="N",
        help="input side in pixels (default: the model's own, 1024 for official models)",
    )
    o.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    o.set_defaults(run=run_onnx)


def run_onnx(args: argparse.Namespace) -> int:
    from masklet.export.onnx import export_onnx
    from masklet.modeling.sam2 import build_model

    model = load_model_from_args(args)
    size = args.image_size
    if size is not None and size != model.config.image_size:
        stride = model.config.backbone_stride * 2  # the trunk's coarsest stage
        if size <= 0 or size % stride:
            raise InvalidInputError(
                f"--image-size must be a positive multiple of {stride}, got {size}"
            )
        # no weight depends on the image size: the same tensors load into the resized model
        resized = build_model(dataclasses.replace(model.config, image_size=size))
        resized.load_state_dict(model.state_dict(), strict=True)
        model = resized
    parts = export_onnx(
        model, args.out, opset=args.opset, precision=args.precision, quantize=args.quantize
    )
    for part in parts:
        print(f"{part.name}: {part.path} ({part.size_bytes / 1e6:.1f} MB, {part.seconds:.1f} s)")
    print(f"manifest: {args.out}/manifest.json")
    return 0
