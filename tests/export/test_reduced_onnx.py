"""fp16 graphs and the int8 image encoder load in onnxruntime and stay close to the fp32 export
(same perturbed model, same inputs: the example inputs the export traced with)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from masklet.errors import InvalidInputError
from masklet.export.graphs import example_inputs
from masklet.export.memory_graphs import memory_example_inputs
from masklet.export.reduced import check_options, convert_part
from masklet.modeling.sam2 import SAM2Model

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

PARTS = ("image_encoder", "prompt_decoder", "memory_attention", "memory_encoder")
# Worst |reduced - fp32| over an output, relative to the output's largest magnitude, measured
# on this model: fp16 <= 3e-3 in every part (an 11-bit mantissa through ~20 layers); the int8
# image encoder 2.9e-2 (weights rounded to 1/127 of each tensor's range, activations per run).
FP16_REL = 1e-2
INT8_REL = 6e-2


def _run(path: Path, inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feed = {n: inputs[n].numpy() for n in names}
    outputs = [o.name for o in session.get_outputs()]
    return dict(zip(outputs, session.run(None, feed), strict=True))


def _relative_errors(reduced: dict[str, np.ndarray], fp32: dict[str, np.ndarray]) -> dict:
    out = {}
    for name, expected in fp32.items():
        got = reduced[name]
        assert got.dtype == np.float32, f"{name}: outputs stay float32, got {got.dtype}"
        scale = float(np.abs(expected).max())
        if scale == 0.0:
            continue
        if expected.size > 1:
            assert expected.std() > 0, f"{name} is constant: a comparison would prove nothing"
        out[name] = float(np.abs(got - expected).max()) / scale
    return out


@pytest.fixture(scope="module")
def inputs(exported: tuple[SAM2Model, Path]) -> dict[str, torch.Tensor]:
    model = exported[0]
    return {**memory_example_inputs(model), **example_inputs(model)}


@pytest.mark.parametrize("part", PARTS)
def test_fp16_parts_stay_close_to_fp32(
    exported: tuple[SAM2Model, Path], inputs: dict[str, torch.Tensor], part: str, tmp_path: Path
) -> None:
    fp32 = exported[1] / f"{part}.onnx"
    path = tmp_path / fp32.name
    shutil.copy(fp32, path)
    assert convert_part(onnx, path, part, precision="fp16", quantize=None) == "fp16"
    onnx.checker.check_model(str(path))
    assert path.stat().st_size < 0.7 * fp32.stat().st_size  # float16 weights (graph stays)
    errors = _relative_errors(_run(path, inputs), _run(fp32, inputs))
    assert errors and max(errors.values()) <= FP16_REL, errors


def test_int8_image_encoder_stays_close_to_fp32(
    exported: tuple[SAM2Model, Path], inputs: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    fp32 = exported[1] / "image_encoder.onnx"
    path = tmp_path / fp32.name
    shutil.copy(fp32, path)
    assert convert_part(onnx, path, "image_encoder", precision="fp32", quantize="int8") == "int8"
    onnx.checker.check_model(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image_encoder.onnx"]  # no leftovers
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ops & {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul"}, ops
    errors = _relative_errors(_run(path, inputs), _run(fp32, inputs))
    assert errors and max(errors.values()) <= INT8_REL, errors
    # other parts are left as they are when only the encoder is quantised
    decoder = tmp_path / "prompt_decoder.onnx"
    shutil.copy(exported[1] / decoder.name, decoder)
    assert (
        convert_part(onnx, decoder, "prompt_decoder", precision="fp32", quantize="int8") == "fp32"
    )


def test_options_that_cannot_be_exported_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="fp16 or fp32"):
        check_options("bf16", None)
    with pytest.raises(InvalidInputError, match="without --precision fp16"):
        check_options("fp16", "int8")
    with pytest.raises(InvalidInputError, match="int8"):
        check_options("fp32", "int4")
