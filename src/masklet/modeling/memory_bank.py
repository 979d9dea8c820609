"""Which past frames a frame attends to: pure selection over the stored per-frame outputs.

Conditioning frames (those with prompts) always come first with temporal position 0; then the
last `num_maskmem - 1` tracked frames before (or, in reverse, after) the current one; then up to
`max_obj_ptrs` object pointers. These functions only pick entries; the model does the math.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class MemorySelection(Generic[T]):
    """Frames whose spatial memories and object pointers the current frame reads.

    spatial: (t_pos, output) pairs; t_pos 0 = conditioning frame, 1..num_maskmem-1 = recent
        frames, the latest having the highest t_pos.
    pointers: (signed or absolute temporal distance, output) pairs.
    """

    spatial: list[tuple[int, T]]
    pointers: list[tuple[int, T]]


def closest_cond_frames(
    frame_idx: int, cond: Mapping[int, T], max_frames: int
) -> tuple[dict[int, T], dict[int, T]]:
    """Split conditioning frames into (selected, unselected), keeping the `max_frames`
    temporally closest: the nearest before, the nearest at-or-after, then by distance.
    `max_frames == -1` keeps all of them."""
    if max_frames == -1 or len(cond) <= max_frames:
        return dict(cond), {}
    if max_frames < 2:
        raise ValueError("max_cond_frames_in_attn must be -1 or at least 2")
    selected: dict[int, T] = {}
    before = max((t for t in cond if t < frame_idx), default=None)
    if before is not None:
        selected[before] = cond[before]
    after = min((t for t in cond if t >= frame_idx), default=None)
    if after is not None:
        selected[after] = cond[after]
    rest = sorted((t for t in cond if t not in selected), key=lambda t: abs(t - frame_idx))
    for t in rest[: max_frames - len(selected)]:
        selected[t] = cond[t]
    unselected = {t: v for t, v in cond.items() if t not in selected}
    return selected, unselected


def select_memories(
    frame_idx: int,
    cond: Mapping[int, T],
    non_cond: Mapping[int, T],
    *,
    num_maskmem: int,
    max_cond_frames: int,
    max_obj_ptrs: int,
    num_frames: int | None,
    reverse: bool,
    stride: int = 1,
    only_past_pointers: bool = True,
    signed_pointer_distance: bool = False,
) -> MemorySelection[T]:
    """Pick the memories of frame `frame_idx` from stored conditioning / tracked outputs."""
    selected, unselected = closest_cond_frames(frame_idx, cond, max_cond_frames)
    direction = -1 if reverse else 1

    spatial: list[tuple[int, T]] = [(0, out) for out in selected.values()]
    for t_pos in range(1, num_maskmem):
        frames_back = num_maskmem - t_pos
        if frames_back == 1:
            prev = frame_idx - direction  # always the immediately preceding frame
        elif not reverse:
            # the nearest multiple of `stride` at least 2 frames back, then further strides
            prev = ((frame_idx - 2) // stride) * stride - (frames_back - 2) * stride
        else:
            prev = -(-(frame_idx + 2) // stride) * stride + (frames_back - 2) * stride
        out = non_cond.get(prev, unselected.get(prev))
        if out is not None:
            spatial.append((t_pos, out))

    max_ptrs = max_obj_ptrs if num_frames is None else min(num_frames, max_obj_ptrs)
    pointer_cond = selected
    if only_past_pointers:
        pointer_cond = {
            t: out for t, out in selected.items() if (t >= frame_idx if reverse else t <= frame_idx)
        }
    pointers: list[tuple[int, T]] = [
        ((frame_idx - t) * direction if signed_pointer_distance else abs(frame_idx - t), out)
        for t, out in pointer_cond.items()
    ]
    for distance in range(1, max_ptrs):
        t = frame_idx - distance * direction
        if t < 0 or (num_frames is not None and t >= num_frames):
            break
        out = non_cond.get(t, unselected.get(t))
        if out is not None:
            pointers.append((distance, out))
    return MemorySelection(spatial=spatial, pointers=pointers)
