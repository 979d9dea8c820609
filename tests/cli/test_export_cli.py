"""`masklet export onnx`: the bundled model at a chosen size, runnable in onnxruntime."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from masklet.checkpoints import load_model
from masklet.cli.main import main
from masklet.modeling.sam2 import build_model

ort = pytest.importorskip("onnxruntime")
NANO = "masklet-nano-synthetic"


def test_export_onnx_writes_checked_parts_and_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    assert main(["export", "onnx", "--model", NANO, "--out", str(out), "--image-size", "128"]) == 0
    printed = capsys.readouterr().out
    assert "image_encoder.onnx" in printed and "manifest.json" in printed
    assert {p.name for p in out.glob("*.onnx")} == {
        "image_encoder.onnx",
        "prompt_decoder.onnx",
        "mask_decoder.onnx",
        "memory_attention.onnx",
        "memory_encoder.onnx",
        "object_pointer.onnx",
    }
    assert (out / "loop_weights.safetensors").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_config"]["image_size"] == 128
    assert manifest["model_config"]["name"] == NANO
    session = ort.InferenceSession(str(out / "image_encoder.onnx"))
    images = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    (embed, *_) = session.run(None, {"images": images.numpy()})
    assert embed.shape[-2:] == (8, 8)  # 128 / stride 16: the requested size, not the model's
    assert np.isfinite(embed).all() and embed.std() > 0.01
    # the same weights built at 128 pixels in PyTorch give the same embedding
    nano = load_model(NANO, device="cpu")
    model = build_model(dataclasses.replace(nano.config, image_size=128)).eval()
    model.load_state_dict(nano.state_dict(), strict=True)
    with torch.no_grad():
        expected, _ = model.image_embeddings(model.forward_image(images))
    np.testing.assert_allclose(embed, expected.numpy(), atol=1e-4, rtol=0)


def test_export_onnx_rejects_a_size_the_trunk_cannot_pool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["export", "onnx", "--model", NANO, "--out", str(tmp_path), "--image-size", "100"])
    assert code == 2
    assert "--image-size must be a positive multiple of 32" in capsys.readouterr().err
    assert not (tmp_path / "manifest.json").exists()
