"""Running several objects through the model as one batch.

Objects are independent in SAM 2 (each has its own memory bank). Those whose selected memories
come from the same frames can share one forward pass: their banks are viewed as one batched
bank, which gives the same numbers as running them one by one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import Tensor

from masklet.modeling.outputs import FrameOutput
from masklet.modeling.sam2 import SAM2Model
from masklet.video.session import ObjectTrack, VideoSession


def shared_memory_pos(session: VideoSession, pos: Tensor | None) -> Tensor | None:
    """One [1, C, h, w] copy of the memory position encoding per session."""
    if session.memory_pos is None and pos is not None:
        session.memory_pos = pos[0:1].clone()
    return session.memory_pos


def merge_banks(
    tracks: list[ObjectTrack],
) -> tuple[Mapping[int, FrameOutput], Mapping[int, FrameOutput]]:
    """Memory banks of several objects as one batched bank (the objects must line up)."""
    if len(tracks) == 1:
        return tracks[0].cond, tracks[0].non_cond
    return _MergedBank([t.cond for t in tracks]), _MergedBank([t.non_cond for t in tracks])


class _MergedBank(Mapping[int, FrameOutput]):
    """Read-only view concatenating the objects' outputs of a frame on access, so only the
    frames the memory actually reads are copied."""

    def __init__(self, banks: list[dict[int, FrameOutput]]) -> None:
        self._banks = banks
        self._keys = [t for t in banks[0] if all(t in b for b in banks[1:])]

    def __getitem__(self, frame_idx: int) -> FrameOutput:
        outs = [b[frame_idx] for b in self._banks]
        mem = [o.memory_features for o in outs]
        pos = outs[0].memory_pos
        return FrameOutput(
            pred_masks=torch.cat([o.pred_masks for o in outs]),
            object_pointer=torch.cat([o.object_pointer for o in outs]),
            object_score_logits=torch.cat([o.object_score_logits for o in outs]),
            memory_features=None if any(m is None for m in mem) else torch.cat(mem),  # type: ignore[arg-type]
            memory_pos=None if pos is None else pos.expand(len(outs), -1, -1, -1),
        )

    def __iter__(self) -> Iterator[int]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def groups(
    tracks: list[ObjectTrack],
    frame_idx: int,
    model: SAM2Model,
    *,
    num_frames: int | None,
    reverse: bool,
) -> list[list[ObjectTrack]]:
    """Objects whose selected memories have the same frames, so they can run as one batch."""
    rule = model.memory_rule()
    groups: dict[tuple, list[ObjectTrack]] = {}
    for track in tracks:
        # the selection only needs frame indices, so select over {frame: frame}
        chosen = rule.select(
            frame_idx,
            {t: t for t in track.cond},
            {t: t for t in track.non_cond},
            num_frames=num_frames,
            reverse=reverse,
        )
        key = (tuple(sorted(track.cond)), tuple(chosen.spatial), tuple(chosen.pointers))
        groups.setdefault(key, []).append(track)
    return list(groups.values())
