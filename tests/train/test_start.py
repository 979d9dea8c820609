"""The model a run starts from: the init checkpoint's own model, load report before training."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from masklet.checkpoint_files import stored_config
from masklet.checkpoints import bundled_path
from masklet.config import ModelConfig
from masklet.errors import CheckpointError
from masklet.train import loop
from masklet.train.start import build_start_model, resolve_model
from masklet.train.trainer import train
from tests.train.test_trainer import MovingSquares, _config, tiny_config

NANO = "masklet-nano-synthetic"


def _nano_config() -> ModelConfig:
    path = bundled_path(NANO)
    assert path is not None
    made_for = stored_config(path)
    assert made_for is not None and made_for.image_size == 128  # the nano model, not 1024 px
    return made_for


@pytest.mark.parametrize("init", [NANO, "file"])
def test_init_without_a_model_builds_the_checkpoints_own_model(tmp_path: Path, init: str) -> None:
    """--init of the bundled nano model (by name or file) and no --model: the nano model,
    every tensor loaded; not a 1024-px tiny model with part of the weights."""
    source = str(bundled_path(NANO)) if init == "file" else NANO
    cfg = dataclasses.replace(_config(tmp_path), model=None, init_checkpoint=source)
    assert resolve_model(cfg).model == _nano_config()
    model, report = build_start_model(cfg)
    assert report is not None and report.loaded and not report.missing
    assert not report.mismatched and report.loaded_share == 1.0
    path = bundled_path(NANO)
    assert path is not None
    nano_state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, nano_state[name].to(value.dtype))


def test_no_model_and_no_init_is_the_default_variant(tmp_path: Path) -> None:
    cfg = dataclasses.replace(_config(tmp_path), model=None)
    assert resolve_model(cfg).model == ModelConfig.named("sam2.1_hiera_tiny")


def test_init_from_another_architecture_is_refused_before_training(tmp_path: Path) -> None:
    """The nano checkpoint into an explicitly asked 1024-px tiny model (6% of it would load):
    refused with the fix, before any step runs."""
    cfg = _config(tmp_path, init_checkpoint=NANO, model="sam2.1_hiera_tiny")
    with pytest.raises(CheckpointError, match="drop --model"):
        train(cfg, MovingSquares())
    assert not (tmp_path / "run" / "last.pt").exists()


def test_load_report_is_logged_before_the_first_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = train(_config(tmp_path / "a", steps=1), MovingSquares())
    assert first.model_path is not None
    events: list[str] = []
    real = loop.clip_loss

    def clip_loss(*args, **kwargs):  # type: ignore[no-untyped-def]
        events.append("step")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "clip_loss", clip_loss)
    cfg = _config(tmp_path / "b", steps=1, model=None, init_checkpoint=str(first.model_path))
    result = train(cfg, MovingSquares(), log=events.append)
    assert events[0].startswith(f"init from {first.model_path}: loaded ") and events[1:] == ["step"]
    assert result.model.config == tiny_config()  # the checkpoint's own model
