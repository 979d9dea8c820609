"""`track`: every object through the video forward, backward or both, each frame once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from masklet.errors import InvalidInputError
from masklet.video.predictor import VideoPredictor
from masklet.video.results import FrameResult
from masklet.video.session import VideoSession

Direction = Literal["forward", "backward", "both"]
DIRECTIONS: tuple[str, ...] = ("forward", "backward", "both")


def track(
    predictor: VideoPredictor,
    session: VideoSession,
    direction: Direction = "forward",
    start_frame_idx: int | None = None,
    max_frames: int | None = None,
) -> Iterator[FrameResult]:
    """Track every object; "both" goes forward from the first prompted frame (or
    `start_frame_idx`), then backward from it, yielding each frame once."""
    if direction not in DIRECTIONS:
        raise InvalidInputError(
            f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}"
        )
    seen: set[int] = set()
    if direction in ("forward", "both"):
        for result in predictor.propagate(session, start_frame_idx, max_frames, reverse=False):
            seen.add(result.frame_idx)
            yield result
    if direction in ("backward", "both"):
        for result in predictor.propagate(session, start_frame_idx, max_frames, reverse=True):
            if result.frame_idx not in seen:
                yield result
