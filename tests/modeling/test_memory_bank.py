"""The memory rule: one reading of the config, used by the model, the batching and the pruning."""

from __future__ import annotations

import dataclasses
import itertools
from types import SimpleNamespace

import pytest

from masklet.config import ModelConfig
from masklet.modeling.memory_bank import MemoryRule
from masklet.modeling.sam2 import SAM2Model
from masklet.video.batching import groups
from masklet.video.session import ObjectTrack
from tests.parity.reference import small_config

RULES = [
    MemoryRule(
        num_maskmem=n, max_cond_frames=-1, max_obj_ptrs=p, stride=s, signed_pointer_distance=sign
    )
    for n, p, s, sign in itertools.product((3, 7), (4, 16), (1, 3), (False, True))
]


def test_rule_reads_the_config_for_eval_and_training() -> None:
    cfg = dataclasses.replace(
        ModelConfig.named("sam2.1_hiera_tiny"), memory_temporal_stride_for_eval=3
    )
    assert cfg.only_obj_ptrs_in_the_past_for_eval  # the flip below must be visible
    evaluating = MemoryRule.from_config(cfg)
    training = MemoryRule.from_config(cfg, training=True)
    assert (evaluating.stride, training.stride) == (3, 1)
    assert evaluating.only_past_pointers and not training.only_past_pointers
    for rule in (evaluating, training):
        assert rule.num_maskmem == cfg.num_maskmem
        assert rule.max_obj_ptrs == cfg.max_obj_ptrs_in_encoder
        assert rule.max_cond_frames == cfg.max_cond_frames_in_attn
        assert rule.signed_pointer_distance == cfg.use_signed_tpos_enc_to_obj_ptrs


def test_model_rule_follows_train_and_eval_mode() -> None:
    cfg = dataclasses.replace(small_config(image_size=64), memory_temporal_stride_for_eval=2)
    model = SAM2Model(cfg)
    assert model.memory_rule() == MemoryRule.from_config(cfg, training=True)
    model.eval()
    assert model.memory_rule() == MemoryRule.from_config(cfg)


@pytest.mark.parametrize("rule", RULES, ids=str)
@pytest.mark.parametrize("reverse", [False, True])
def test_pruning_to_the_window_never_changes_the_selection(rule: MemoryRule, reverse: bool) -> None:
    """A session drops tracked outputs farther than `window` from the frame just tracked; the
    next frame must select exactly what it would with every output kept."""
    num_frames = 60
    prompt = num_frames - 1 if reverse else 0
    cond = {prompt: prompt}
    step = -1 if reverse else 1
    attended = 0
    for frame in range(prompt + step, prompt + step * num_frames, step):
        tracked = range(prompt + step, frame, step)  # frames tracked so far
        full = {t: t for t in tracked}
        frontier = frame - step
        pruned = {t: t for t in tracked if abs(t - frontier) <= rule.window}
        a = rule.select(frame, cond, full, num_frames=num_frames, reverse=reverse)
        b = rule.select(frame, cond, pruned, num_frames=num_frames, reverse=reverse)
        assert a == b, frame
        distances = [abs(frame - t) for _, t in a.spatial + a.pointers if t != prompt]
        attended = max([attended, *distances])
    assert 0 < attended <= rule.window


def _track(obj_id: int, cond: list[int], non_cond: list[int]) -> ObjectTrack:
    track = ObjectTrack(obj_id=obj_id, name=f"object_{obj_id}")
    track.cond = {t: t for t in cond}  # type: ignore[misc]  # frame indices stand for outputs
    track.non_cond = {t: t for t in non_cond}  # type: ignore[misc]
    return track


def test_batching_groups_objects_by_the_models_rule() -> None:
    """Objects whose banks differ only in frames the rule never reads share a batch; a
    difference in a frame it reads splits them."""
    rule = MemoryRule(num_maskmem=3, max_cond_frames=-1, max_obj_ptrs=2, stride=4)
    model = SimpleNamespace(memory_rule=lambda: rule)
    frame = 20
    picked = rule.select(
        frame, {0: 0}, {t: t for t in range(1, frame)}, num_frames=40, reverse=False
    )
    read = {t for _, t in picked.spatial + picked.pointers}
    unread = next(t for t in range(1, frame) if t not in read)
    everything = list(range(1, frame))
    a = _track(1, [0], everything)
    b = _track(2, [0], [t for t in everything if t != unread])
    c = _track(3, [0], [t for t in everything if t != frame - 1])
    out = groups([a, b, c], frame, model, num_frames=40, reverse=False)  # type: ignore[arg-type]
    assert [[t.obj_id for t in g] for g in out] == [[1, 2], [3]]
