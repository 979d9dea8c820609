"""The order in which tracking visits frames (SAM 2's processing order)."""

from __future__ import annotations


def processing_order(start: int, num_frames: int, max_frames: int | None, reverse: bool) -> range:
    """Frames visited when tracking from `start` over a video of `num_frames` frames.

    `max_frames` counts frames beyond the start (None = to the end); tracking backward from
    frame 0 visits nothing, as in the reference.
    """
    span = max_frames if max_frames is not None else num_frames
    if reverse:
        end = max(start - span, 0)
        return range(start, end - 1, -1) if start > 0 else range(0)
    return range(start, min(start + span, num_frames - 1) + 1)
