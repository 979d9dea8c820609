"""Parity of `VideoPredictor` with the reference `SAM2VideoPredictor` on identical frames.

Both sides get the same JPEG folder (so the same decoded pixels), the same perturbed weights,
and the same prompts; every returned mask logit is compared. The reference stores memories in
bf16 and, on CPU, fails to concatenate them with fp32 pointers when an object has no pointer
yet; its memory attention entry is wrapped to do the promotion `torch.cat` does otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from masklet.config import ModelConfig
from masklet.modeling.sam2 import build_model
from masklet.video.predictor import VideoPredictor
from tests.parity.reference import (
    perturbed_state_dict,
    reference_video_model,
    small_config,
)

ATOL = 1e-4
NUM_FRAMES, HEIGHT, WIDTH = 12, 96, 128


def make_frames(folder: Path, n: int = NUM_FRAMES, seed: int = 0) -> list[np.ndarray]:
    """Textured background with two moving shapes, saved as JPEGs 00000.jpg ..."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 80, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames = []
    for t in range(n):
        f = background.copy()
        x = 10 + 4 * t
        f[20:50, x : x + 30] = (230, 40, 40)
        y = 70 - 3 * t
        f[max(y, 0) : max(y, 0) + 20, 80:110] = (40, 220, 60)
        frames.append(f)
        Image.fromarray(f).save(folder / f"{t:05d}.jpg", quality=95)
    return frames


def _upcast_memory(ref: torch.nn.Module) -> None:
    original = ref.memory_attention.forward

    def forward(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=0):  # type: ignore[no-untyped-def]
        return original(curr, memory.float(), curr_pos, memory_pos.float(), num_obj_ptr_tokens)

    ref.memory_attention.forward = forward


def _pair(cfg: ModelConfig, correct_as_cond: bool, seed: int = 0, present: bool = False):  # type: ignore[no-untyped-def]
    """present: make the object-score head say "visible" (zero weights, bias +10) so that
    propagated masks are real logits, not the constant of an absent object; the memory
    encoder's settings (sigmoid scale and bias) then change what is compared."""
    ref = reference_video_model(cfg)
    ref.add_all_frames_to_correct_as_cond = correct_as_cond
    sd = perturbed_state_dict(ref, seed)
    if present:
        last = max(k for k in sd if k.startswith("sam_mask_decoder.pred_obj_score_head."))
        last = last.rsplit(".", 1)[0]  # "...layers.2" (or the single linear layer)
        sd[f"{last}.bias"] = torch.full_like(sd[f"{last}.bias"], 10.0)
        sd[f"{last}.weight"] = torch.zeros_like(sd[f"{last}.weight"])
    ref.load_state_dict(sd, strict=True)
    _upcast_memory(ref)
    model = build_model(cfg)
    model.load_state_dict(sd, strict=True)
    ours = VideoPredictor(
        model, fill_hole_area=0, add_all_frames_to_correct_as_cond=correct_as_cond
    )
    return ours, ref


class Checker:
    def __init__(self) -> None:
        self.worst = 0.0
        self.count = 0
        self.propagated = 0
        self.visible = 0  # propagated outputs with some mask pixel on

    def same(self, a, b) -> None:  # type: ignore[no-untyped-def]
        fa, ia, ma = a
        fb, ib, mb = b
        assert fa == fb and list(ia) == list(ib)
        assert ma.shape == mb.shape
        diff = float((ma.float() - mb.float()).abs().max())
        self.worst = max(self.worst, diff)
        self.count += 1
        assert diff <= ATOL, f"frame {fa}: max abs diff {diff:.3g}"

    def propagate(self, ours, ours_state, ref, ref_state, **kw) -> None:  # type: ignore[no-untyped-def]
        a = list(ours.propagate_in_video(ours_state, **kw))
        b = list(ref.propagate_in_video(ref_state, **kw))
        assert [x[0] for x in a] == [x[0] for x in b]
        for x, y in zip(a, b, strict=True):
            self.same(x, y)
            self.propagated += 1
            self.visible += int(bool((x[2] > 0).any()))


@pytest.mark.parametrize(
    ("name", "correct_as_cond", "present"),
    [
        ("sam2.1_hiera_tiny", False, False),
        ("sam2.1_hiera_tiny", True, False),
        ("sam2_hiera_small", False, False),
        ("sam2_hiera_small", True, False),
        # objects stay visible: the propagated masks (and so the memories) are not constant
        ("sam2.1_hiera_tiny", False, True),
    ],
)
def test_multi_object_session_matches_reference(
    tmp_path: Path, name: str, correct_as_cond: bool, present: bool
) -> None:
    make_frames(tmp_path)
    ours, ref = _pair(small_config(name), correct_as_cond, seed=3, present=present)
    s_ours = ours.init_state(tmp_path)
    with torch.inference_mode():
        s_ref = ref.init_state(str(tmp_path))
    check = Checker()

    # object 1: a click; object 2: a box; object 3: a mask on a later frame
    check.same(
        ours.add_new_points_or_box(s_ours, 0, 1, points=[[25, 35]], labels=[1]),
        ref.add_new_points_or_box(s_ref, 0, 1, points=[[25, 35]], labels=[1]),
    )
    check.same(
        ours.add_new_points_or_box(s_ours, 0, 2, box=[78, 60, 112, 92]),
        ref.add_new_points_or_box(s_ref, 0, 2, box=[78, 60, 112, 92]),
    )
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[20:50, 22:52] = True
    check.same(ours.add_new_mask(s_ours, 3, 3, mask), ref.add_new_mask(s_ref, 3, 3, mask))
    # a second click on the same frame refines with the previous logits
    check.same(
        ours.add_new_points_or_box(
            s_ours, 0, 1, points=[[60, 80]], labels=[0], clear_old_points=False
        ),
        ref.add_new_points_or_box(
            s_ref, 0, 1, points=[[60, 80]], labels=[0], clear_old_points=False
        ),
    )
    check.propagate(ours, s_ours, ref, s_ref)

    # a correction click on a tracked frame, then tracking again both ways
    check.same(
        ours.add_new_points_or_box(s_ours, 6, 1, points=[[40, 35]], labels=[1]),
        ref.add_new_points_or_box(s_ref, 6, 1, points=[[40, 35]], labels=[1]),
    )
    check.propagate(ours, s_ours, ref, s_ref)
    check.propagate(ours, s_ours, ref, s_ref, start_frame_idx=NUM_FRAMES - 1, reverse=True)

    # an object added after tracking started, first prompted on a later frame
    check.same(
        ours.add_new_points_or_box(s_ours, 8, 4, points=[[95, 50]], labels=[1]),
        ref.add_new_points_or_box(s_ref, 8, 4, points=[[95, 50]], labels=[1]),
    )
    check.propagate(ours, s_ours, ref, s_ref, start_frame_idx=2)
    check.propagate(
        ours, s_ours, ref, s_ref, start_frame_idx=9, reverse=True, max_frame_num_to_track=5
    )

    # removing an object
    ids_a, frames_a = ours.remove_object(s_ours, 2)
    ids_b, frames_b = ref.remove_object(s_ref, 2)
    assert ids_a == ids_b
    for (fa, ma), (fb, mb) in zip(frames_a, frames_b):
        check.same((fa, ids_a, ma), (fb, ids_b, mb))
    check.propagate(ours, s_ours, ref, s_ref)
    assert check.count > 50
    if present:
        assert check.visible == check.propagated > 0, (check.visible, check.propagated)
    print(
        f"{name} correct_as_cond={correct_as_cond}: {check.count} outputs, max abs diff {check.worst:.3g}"
    )


def test_clear_prompts_matches_reference(tmp_path: Path) -> None:
    make_frames(tmp_path, n=6)
    ours, ref = _pair(small_config("sam2.1_hiera_tiny"), False, seed=5)
    s_ours = ours.init_state(tmp_path)
    with torch.inference_mode():
        s_ref = ref.init_state(str(tmp_path))
    check = Checker()
    for obj, pt in ((1, [25, 35]), (2, [95, 70])):
        check.same(
            ours.add_new_points_or_box(s_ours, 0, obj, points=[pt], labels=[1]),
            ref.add_new_points_or_box(s_ref, 0, obj, points=[pt], labels=[1]),
        )
    check.same(
        ours.add_new_points_or_box(s_ours, 2, 2, points=[[90, 60]], labels=[1]),
        ref.add_new_points_or_box(s_ref, 2, 2, points=[[90, 60]], labels=[1]),
    )
    check.same(
        ours.clear_all_prompts_in_frame(s_ours, 2, 2), ref.clear_all_prompts_in_frame(s_ref, 2, 2)
    )
    check.propagate(ours, s_ours, ref, s_ref)
