import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from masklet.config import ModelConfig
from masklet.errors import CheckpointError, InvalidInputError
from masklet.modeling.sam2 import SAM2Model, build_model
from masklet.train.data import Clip, SyntheticClips
from masklet.train.synthetic import SyntheticConfig
from masklet.train.trainer import (
    FINAL_MODEL,
    LAST_CHECKPOINT,
    TrainConfig,
    load_matching,
    lr_factor,
    train,
)


def tiny_config(name: str = "sam2.1_hiera_tiny", image_size: int = 64) -> ModelConfig:
    """An official variant's flags with every width and depth cut down: ~0.8M parameters."""
    cfg = ModelConfig.named(name).with_trunk(
        embed_dim=16, stages=(1, 1, 2, 1), global_att_blocks=(3,)
    )
    r = dataclasses.replace
    return r(
        cfg,
        image_size=image_size,
        neck=r(cfg.neck, d_model=64),
        memory_attention=r(cfg.memory_attention, num_layers=1, dim_feedforward=64),
        memory_encoder=r(cfg.memory_encoder, out_dim=32),
        mask_decoder=r(cfg.mask_decoder, mlp_dim=64, iou_head_hidden_dim=32),
    )


class MovingSquares:
    """`n` clips of T frames: a bright square sliding down and a green one sliding right."""

    def __init__(self, n: int = 2, num_frames: int = 3, size: int = 64) -> None:
        self.n, self.num_frames, self.size = n, num_frames, size

    def __len__(self) -> int:
        return self.n

    def clip(self, index: int, rng: np.random.Generator) -> Clip:
        t_, s = self.num_frames, self.size
        frames = np.full((t_, s, s, 3), 30, np.uint8)
        masks = np.zeros((t_, 2, s, s), bool)
        for t in range(t_):
            y = 8 + 3 * t + 2 * index
            frames[t, y : y + 18, 8:26] = 220
            masks[t, 0, y : y + 18, 8:26] = True
            frames[t, 36:54, 30 + 2 * t : 48 + 2 * t, 1] = 255
            masks[t, 1, 36:54, 30 + 2 * t : 48 + 2 * t] = True
        return Clip(frames, masks)


def _config(tmp_path: Path, **changes: object) -> TrainConfig:
    base = TrainConfig(
        model=tiny_config(),
        steps=3,
        batch_size=1,
        lr=1e-3,
        num_frames=3,
        num_correction_rounds=1,
        grad_clip=1.0,
        out_dir=str(tmp_path / "run"),
        checkpoint_every=100,
        device="cpu",
        progress=False,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_short_run_on_a_fixed_batch_lowers_the_loss(tmp_path: Path) -> None:
    # clicks only, at the object's centre, no random corrections: the batch is the same every
    # step, so the loss must fall
    cfg = _config(
        tmp_path, steps=12, prob_point=1.0, prob_box=0.0, prob_center_click=1.0,
        prob_click_from_gt=0.0, max_cond_frames=1, lr=2e-3,
    )  # fmt: skip
    result = train(cfg, MovingSquares(n=1))
    losses = result.losses
    assert len(losses) == 12 and all(np.isfinite(losses))
    # step 0 is inflated by objects predicted absent (their logits are -1024); from step 1 on
    # the loss is the mask loss
    assert losses[-1] < 0.6 * losses[1]
    assert losses[-1] == min(losses)


def test_same_seed_same_losses_other_seed_other_losses(tmp_path: Path) -> None:
    data = MovingSquares(n=3)
    a = train(_config(tmp_path / "a", batch_size=2), data).losses
    b = train(_config(tmp_path / "b", batch_size=2), data).losses
    c = train(_config(tmp_path / "c", batch_size=2, seed=1), data).losses
    assert len(a) == 3 and a == b
    assert a != c


def test_resume_continues_at_the_saved_step_and_matches_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    data = MovingSquares(n=3)
    whole = train(_config(tmp_path / "whole", steps=4, warmup_steps=1), data)
    part = _config(tmp_path / "part", steps=4, warmup_steps=1, checkpoint_every=2)
    first = train(part, data, stop_at=2)
    assert first.step == 2 and first.model_path is None and first.checkpoint is not None
    state = torch.load(first.checkpoint, weights_only=True)
    assert state["step"] == 2 and {"optimizer", "scheduler", "rng_torch", "config"} <= set(state)
    rest = train(dataclasses.replace(part, resume=True), data)
    assert rest.step == 4 and rest.losses == whole.losses
    for (name, p), q in zip(rest.model.state_dict().items(), whole.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_resume_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="run without --resume"):
        train(_config(tmp_path, resume=True), MovingSquares())


def test_final_model_is_in_the_official_layout(tmp_path: Path) -> None:
    result = train(_config(tmp_path, steps=1), MovingSquares())
    assert result.model_path == tmp_path / "run" / FINAL_MODEL
    assert (tmp_path / "run" / LAST_CHECKPOINT).is_file()
    state = torch.load(result.model_path, weights_only=True)
    # official layout plus the model config and the run's full training config
    assert set(state) == {"model", "model_config", "train_config"}
    from masklet.checkpoints import load_model
    from masklet.train.recipe import read_recipe

    assert read_recipe(result.model_path) == _config(tmp_path, steps=1)

    assert load_model(result.model_path).config == tiny_config()
    fresh = build_model(tiny_config())
    fresh.load_state_dict(state["model"], strict=True)
    for (name, p), q in zip(fresh.state_dict().items(), result.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_fine_tuning_from_another_variant_loads_matching_keys(tmp_path: Path) -> None:
    torch.manual_seed(7)
    source = SAM2Model(tiny_config("sam2_hiera_tiny"))  # SAM 2.0 flags
    path = tmp_path / "sam2_small.pt"
    torch.save({"model": source.state_dict()}, path)
    result = train(_config(tmp_path, steps=1, lr=0.0, init_checkpoint=str(path)), MovingSquares())
    report = result.init_report
    assert report is not None
    # 2.1 adds the spatial no-object embedding and the projection of pointer time encodings
    assert "no_obj_embed_spatial" in report.missing
    assert "obj_ptr_tpos_proj.weight" in report.missing
    assert report.unexpected == [] and report.mismatched == []
    assert len(report.loaded) == len(source.state_dict())
    trained = result.model.state_dict()
    for name in report.loaded:  # lr 0: the loaded weights are still the source's
        assert torch.equal(trained[name], source.state_dict()[name]), name
    assert "kept initialised (not in checkpoint): 3" in report.summary()


def test_load_matching_reports_shape_mismatches_and_rejects_foreign_files() -> None:
    model = SAM2Model(tiny_config())
    state = dict(model.state_dict())
    state["no_mem_embed"] = torch.zeros(1, 1, 7)
    state["extra.weight"] = torch.zeros(2)
    report = load_matching(model, state)
    assert report.mismatched == ["no_mem_embed (1, 1, 7) vs (1, 1, 64)"]
    assert report.unexpected == ["extra.weight"] and report.missing == []
    with pytest.raises(CheckpointError, match="no tensor"):
        load_matching(model, {"foo": torch.zeros(1)})


def test_frozen_image_encoder_keeps_its_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    initial = SAM2Model(tiny_config()).state_dict()  # train() seeds the init the same way
    frozen = train(_config(tmp_path / "f", steps=2, freeze_image_encoder=True), MovingSquares())
    free = train(_config(tmp_path / "g", steps=2), MovingSquares())
    for name, p in frozen.model.state_dict().items():
        if name.startswith("image_encoder."):
            assert torch.equal(p, initial[name]), name
    changed = [
        n for n, p in free.model.state_dict().items()
        if n.startswith("image_encoder.") and not torch.equal(p, initial[n])
    ]  # fmt: skip
    assert changed  # without freezing the encoder does learn
    decoder = "sam_mask_decoder.output_upscaling.0.weight"
    assert not torch.equal(frozen.model.state_dict()[decoder], initial[decoder])


def test_image_mode_trains_on_one_frame_clips(tmp_path: Path) -> None:
    cfg = _config(tmp_path, steps=2, prob_point=0.0, prob_box=0.0, num_frames=1)
    result = train(cfg, MovingSquares(num_frames=1))
    # no mask prompt on single images: the loss would be constant with one
    assert len(result.losses) == 2 and result.losses[0] != result.losses[1]


def test_synthetic_clips_train(tmp_path: Path) -> None:
    sc = SyntheticConfig(height=48, width=48, num_frames=2, use_photos=False)
    result = train(_config(tmp_path, steps=1, num_frames=2), SyntheticClips([0, 1], 64, sc))
    assert len(result.losses) == 1 and np.isfinite(result.losses[0])


def test_learning_rate_warms_up_then_decays_to_the_floor() -> None:
    f = lr_factor(warmup=2, total=10, min_ratio=0.1)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0)
    assert f(6) == pytest.approx(0.55)
    assert f(10) == pytest.approx(0.1) and f(50) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"steps": 0}, "steps"),
        ({"prob_point": 0.8, "prob_box": 0.5}, "prob_point"),
        ({"prob_center_click": 1.5}, "prob_center_click"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_bad_settings_are_rejected(tmp_path: Path, changes: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        train(_config(tmp_path, **changes), MovingSquares())
