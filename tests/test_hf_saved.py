"""Files written by transformers' `save_pretrained`: config.json read, image-only models load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from masklet.checkpoints import load_model
from masklet.errors import CheckpointError
from masklet.hf_keys import hf_to_official
from tests.parity.reference import small_config

pytest.importorskip("transformers", reason="transformers writes the files under test")

from tests.test_hf_keys import (  # noqa: E402
    POSITIONAL,
    POSITIONAL_COPY,
    hf_image_model,
    hf_video_model,
)

IMAGE_SIZE = 256  # not the official 1024: only config.json says so


def _save(model: torch.nn.Module, folder: Path) -> Path:
    with torch.no_grad():  # random init leaves many tensors constant: make every one count
        gen = torch.Generator().manual_seed(0)
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.02 * torch.randn(tensor.shape, generator=gen))
        state = model.state_dict()  # saved conversions hold one positional matrix twice
        state[POSITIONAL_COPY].copy_(state[POSITIONAL])
    model.save_pretrained(folder)
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    return folder / "model.safetensors"


def test_image_only_save_pretrained_loads_for_images(tmp_path: Path) -> None:
    from masklet.image_predictor import ImagePredictor

    hf = hf_image_model(small_config("sam2.1_hiera_tiny", IMAGE_SIZE))
    weights = _save(hf, tmp_path / "ft")
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["model_type"] == "sam2"

    model = load_model(weights, device="cpu")
    assert model.config.image_size == IMAGE_SIZE  # from config.json, not the 1024 default
    assert model.config.hiera.embed_dim == hf.config.vision_config.backbone_config.hidden_size
    official = hf_to_official(hf.state_dict())
    loaded = model.state_dict()
    assert len(official) > 100
    for key, value in official.items():
        assert torch.equal(loaded[key], value), key
    assert model.missing_video_weights  # type: ignore[attr-defined]
    assert load_model(tmp_path / "ft", device="cpu").config == model.config  # the folder too

    predictor = ImagePredictor(model)
    image = np.random.default_rng(0).integers(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    predictor.set_image(image)
    masks, scores, _ = predictor.predict(point_coords=[[100, 120]], point_labels=[1])
    assert masks.shape[-2:] == (IMAGE_SIZE, IMAGE_SIZE) and np.isfinite(scores).all()


def test_image_only_model_is_refused_for_video_with_the_reason(tmp_path: Path) -> None:
    from masklet.video.predictor import VideoPredictor

    weights = _save(hf_image_model(small_config("sam2.1_hiera_tiny", IMAGE_SIZE)), tmp_path)
    model = load_model(weights, device="cpu")
    with pytest.raises(CheckpointError) as caught:
        VideoPredictor(model)
    message = str(caught.value)
    assert "image-only checkpoint" in message and "video parts" in message
    assert f"{len(model.missing_video_weights)} tensors" in message  # type: ignore[attr-defined]


def test_video_save_pretrained_loads_complete_with_its_image_size(tmp_path: Path) -> None:
    from masklet.video.predictor import VideoPredictor

    hf = hf_video_model(small_config("sam2.1_hiera_tiny", IMAGE_SIZE))
    weights = _save(hf, tmp_path)
    model = load_model(weights, device="cpu")
    assert model.config.image_size == IMAGE_SIZE
    assert model.missing_video_weights == ()  # type: ignore[attr-defined]
    VideoPredictor(model)  # accepted


def test_a_partial_video_file_is_still_an_error(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    hf = hf_video_model(small_config("sam2.1_hiera_tiny", IMAGE_SIZE))
    weights = _save(hf, tmp_path)
    state = {
        k: v.contiguous()
        for k, v in hf.state_dict().items()
        if not k.startswith("memory_attention.layers.1.")
    }
    save_file(state, str(weights))
    with pytest.raises(CheckpointError, match="missing keys: memory_attention.layers.1"):
        load_model(weights, device="cpu")
