"""The loss of one batch: which frames get prompts and corrective clicks, and with what."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from masklet.errors import InvalidInputError
from masklet.modeling.sam2 import SAM2Model
from masklet.train.config import TrainConfig
from masklet.train.step import MASK_INPUT_CLAMP, clip_loss
from tests.train.test_trainer import MovingSquares, tiny_config


class Recorder:
    """Wraps a model's SAM heads and memory conditioning to record what each call got."""

    def __init__(self, model: SAM2Model, tracked_logit: float | None = None) -> None:
        self.heads: list[dict[str, Any]] = []  # one per forward_sam_heads call
        self.frame = -1
        self.cond_seen: dict[int, list[int]] = {}  # frame -> cond frames it was conditioned on
        heads, cond = model.forward_sam_heads, model.condition_on_memory

        def forward_sam_heads(pix, *, point_inputs=None, mask_inputs=None, **k):  # type: ignore[no-untyped-def]
            self.heads.append(
                {
                    "frame": self.frame,
                    "labels": None if point_inputs is None else point_inputs[1].clone(),
                    "mask": None if mask_inputs is None else mask_inputs.detach().clone(),
                }
            )
            out = heads(pix, point_inputs=point_inputs, mask_inputs=mask_inputs, **k)
            if tracked_logit is not None and point_inputs is None and self.frame != 0:
                # a tracked prediction forced to this logit everywhere
                out = dataclasses.replace(
                    out,
                    low_res_masks=torch.full_like(out.low_res_masks, tracked_logit),
                    high_res_masks=torch.full_like(out.high_res_masks, tracked_logit),
                )
            return out

        def condition_on_memory(frame_idx, feats, **k):  # type: ignore[no-untyped-def]
            self.frame = frame_idx
            self.cond_seen[frame_idx] = sorted(k["cond_outputs"])
            if frame_idx not in self.processed:
                self.processed.append(frame_idx)
            return cond(frame_idx, feats, **k)

        self.memory_encoded: list[int] = []  # frame of each encode_memory call
        self.processed: list[int] = []  # frames in the order they were predicted
        encode, track = model.encode_memory, model.track_step

        def track_step(frame_idx, *a, **k):  # type: ignore[no-untyped-def]
            self.frame = frame_idx  # mask prompts may skip condition_on_memory
            if frame_idx not in self.processed:
                self.processed.append(frame_idx)
            return track(frame_idx, *a, **k)

        def encode_memory(*a, **k):  # type: ignore[no-untyped-def]
            self.memory_encoded.append(self.frame)
            return encode(*a, **k)

        model.forward_sam_heads = forward_sam_heads  # type: ignore[method-assign]
        model.condition_on_memory = condition_on_memory  # type: ignore[method-assign]
        model.encode_memory = encode_memory  # type: ignore[method-assign]
        model.track_step = track_step  # type: ignore[method-assign]


def _run(
    max_frames_to_correct: int, seed: int, tracked_logit: float | None = None,
    random_rounds: bool = False, num_frames: int = 4, prob_point: float = 1.0,
    max_cond_frames: int = 1,
) -> Recorder:  # fmt: skip
    torch.manual_seed(0)
    model = SAM2Model(tiny_config()).train()
    rec = Recorder(model, tracked_logit)
    config = TrainConfig(
        model=tiny_config(),
        num_frames=num_frames,
        max_cond_frames=max_cond_frames,
        num_correction_rounds=2,
        max_frames_to_correct=max_frames_to_correct,
        random_cond_corrections=random_rounds,
        prob_point=prob_point,
        prob_box=0.0,
        prob_click_from_gt=0.0,  # every click from the errors of the prediction
        out_dir=str(Path("unused")),
        device="cpu",
    )
    data = MovingSquares(n=1, num_frames=num_frames)
    clip_loss(
        model,
        [data.clip(0, np.random.default_rng(0))],
        config,
        rng=np.random.default_rng(seed),
        gen=torch.Generator().manual_seed(seed),
    )
    return rec


def _tracked_corrections(rec: Recorder) -> dict[int, list[dict[str, Any]]]:
    """Calls on frames other than 0 that carried clicks, by frame."""
    out: dict[int, list[dict[str, Any]]] = {}
    for call in rec.heads:
        if call["frame"] != 0 and call["labels"] is not None:
            out.setdefault(call["frame"], []).append(call)
    return out


def test_only_conditioning_frames_get_clicks_by_default() -> None:
    for seed in range(4):
        rec = _run(1, seed)
        assert _tracked_corrections(rec) == {}
        # frame 0: the click, then 2 rounds each adding one click to the earlier ones
        clicks = [c["labels"].shape[1] for c in rec.heads if c["frame"] == 0]
        assert clicks == [1, 2, 3]


def test_tracked_frames_are_corrected_from_a_lone_click_on_their_tracked_logits() -> None:
    corrected_runs = 0
    for seed in range(8):
        rec = _run(4, seed)
        corrected = _tracked_corrections(rec)
        for frame, calls in corrected.items():
            first = [c for c in rec.heads if c["frame"] == frame][0]
            assert first["labels"] is None and first["mask"] is None  # the tracked prediction
            assert [c["labels"].shape[1] for c in calls] == [1, 2]  # lone click, then two
            for call in calls:
                assert call["mask"] is not None
                assert float(call["mask"].abs().max()) <= MASK_INPUT_CLAMP
            # the corrected frame conditions every later frame as a prompted one
            for later in range(frame + 1, 4):
                assert frame in rec.cond_seen[later]
        corrected_runs += bool(corrected)
        assert len(corrected) <= 3
    assert corrected_runs >= 2  # the count of corrected frames is drawn per batch


def test_random_rounds_on_conditioning_frames_leave_tracked_corrections_whole() -> None:
    """With random_cond_corrections frame 0 gets its click and 0, 1 or 2 rounds (drawn per
    batch); a corrected tracked frame still gets every round."""
    counts, tracked = set(), 0
    for seed in range(10):
        rec = _run(4, seed, random_rounds=True)
        clicks = [c["labels"].shape[1] for c in rec.heads if c["frame"] == 0]
        assert clicks in ([1], [1, 2], [1, 2, 3])
        counts.add(len(clicks) - 1)
        for calls in _tracked_corrections(rec).values():
            assert [c["labels"].shape[1] for c in calls] == [1, 2]
            tracked += 1
    assert counts == {0, 1, 2}
    assert tracked > 0


@pytest.mark.parametrize(("tracked_logit", "label"), [(40.0, 0), (-1024.0, 1)])
def test_the_lone_click_corrects_the_tracked_error(tracked_logit: float, label: int) -> None:
    """A tracked mask covering the whole frame gets a negative click; a tracked object called
    hidden (SAM 2's -1024 logits) a positive one. Either way the logits fed back are clamped."""
    seen = 0
    for seed in range(4):
        rec = _run(4, seed, tracked_logit)
        for calls in _tracked_corrections(rec).values():
            lone = calls[0]
            assert lone["labels"].tolist() == [[label]] * 2  # both objects of the clip
            expected = float(np.sign(tracked_logit)) * MASK_INPUT_CLAMP
            assert torch.all(lone["mask"] == expected)
            seen += 1
    assert seen > 0


@pytest.mark.parametrize(("num_frames", "prob_point"), [(4, 1.0), (4, 0.0), (1, 1.0)])
def test_only_the_last_processed_frame_skips_the_memory_encoder(
    num_frames: int, prob_point: float
) -> None:
    """Every frame's memory is encoded once, except the last one processed, whose memory no
    later frame reads (a single image: none at all); clicks, mask prompts, two conditioning
    frames and corrected tracked frames alike."""
    orders = set()
    for seed in range(6):
        rec = _run(4, seed, num_frames=num_frames, prob_point=prob_point, max_cond_frames=2)
        assert sorted(rec.processed) == list(range(num_frames))
        assert rec.memory_encoded == rec.processed[:-1]
        orders.add(tuple(rec.processed))
    assert num_frames == 1 or len(orders) > 1  # a random second conditioning frame comes first


def test_frames_to_correct_is_validated() -> None:
    with pytest.raises(InvalidInputError, match="max_frames_to_correct"):
        dataclasses.replace(TrainConfig(), max_frames_to_correct=0).validate()
