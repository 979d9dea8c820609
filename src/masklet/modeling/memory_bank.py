"""Which past frames a frame attends to: pure selection over the stored per-frame outputs.

Conditioning frames (those with prompts) always come first with temporal position 0; then the
last `num_maskmem - 1` tracked frames before (or, in reverse, after) the current one; then up to
`max_obj_ptrs` object pointers. These functions only pick entries; the model does the math.

`MemoryRule` is the one place the selection's settings are read from a `ModelConfig`: the model,
the batching of objects and the pruning of the video session all use it, so which frames are
attended cannot differ between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from masklet.config import ModelConfig

T = TypeVar("T")


@dataclass(frozen=True)
class MemoryRule:
    """The settings that decide which stored frames a frame attends to.

    num_maskmem: spatial memories per frame (the conditioning frames count as one slot).
    max_cond_frames: conditioning frames attended (-1 = all).
    max_obj_ptrs: object pointers attended (before capping to the video length).
    stride: spacing of the recent-frame memories beyond the previous frame.
    only_past_pointers: attend only conditioning pointers not after (reverse: before) the frame.
    signed_pointer_distance: pointer distances keep their sign (SAM 2.1).
    """

    num_maskmem: int
    max_cond_frames: int
    max_obj_ptrs: int
    stride: int = 1
    only_past_pointers: bool = True
    signed_pointer_distance: bool = False

    @classmethod
    def from_config(cls, config: ModelConfig, *, training: bool = False) -> MemoryRule:
        """The rule of a model; training attends every frame (stride 1) and every pointer."""
        return cls(
            num_maskmem=config.num_maskmem,
            max_cond_frames=config.max_cond_frames_in_attn,
            max_obj_ptrs=config.max_obj_ptrs_in_encoder,
            stride=1 if training else config.memory_temporal_stride_for_eval,
            only_past_pointers=not training and config.only_obj_ptrs_in_the_past_for_eval,
            signed_pointer_distance=config.use_signed_tpos_enc_to_obj_ptrs,
        )

    def max_pointers(self, num_frames: int | None) -> int:
        """Object pointers attended in a video of `num_frames` frames (None = unknown)."""
        return self.max_obj_ptrs if num_frames is None else min(num_frames, self.max_obj_ptrs)

    @property
    def spatial_reach(self) -> int:
        """Frames away from the current one that a spatial memory can come from."""
        return self.num_maskmem * self.stride

    @property
    def window(self) -> int:
        """Frames away from the current one that any memory (spatial or pointer) can come from:
        tracked outputs farther than this from the frontier and every prompt are never read."""
        return max(self.spatial_reach, self.max_obj_ptrs)

    def select(
        self,
        frame_idx: int,
        cond: Mapping[int, T],
        non_cond: Mapping[int, T],
        *,
        num_frames: int | None,
        reverse: bool,
    ) -> MemorySelection[T]:
        """The memories of frame `frame_idx` under this rule (see `select_memories`)."""
        return select_memories(
            frame_idx, cond, non_cond, self, num_frames=num_frames, reverse=reverse
        )


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
    rule: MemoryRule,
    *,
    num_frames: int | None,
    reverse: bool,
) -> MemorySelection[T]:
    """Pick the memories of frame `frame_idx` from stored conditioning / tracked outputs."""
    num_maskmem, stride = rule.num_maskmem, rule.stride
    selected, unselected = closest_cond_frames(frame_idx, cond, rule.max_cond_frames)
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

    max_ptrs = rule.max_pointers(num_frames)
    pointer_cond = selected
    if rule.only_past_pointers:
        pointer_cond = {
            t: out for t, out in selected.items() if (t >= frame_idx if reverse else t <= frame_idx)
        }
    pointers: list[tuple[int, T]] = [
        ((frame_idx - t) * direction if rule.signed_pointer_distance else abs(frame_idx - t), out)
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
