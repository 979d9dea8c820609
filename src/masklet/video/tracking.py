"""One-call helpers on top of `VideoPredictor`: apply parsed prompts, track both directions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

from masklet.errors import InvalidInputError
from masklet.prompts import ObjectPrompt, validate_in_bounds
from masklet.video.predictor import VideoPredictor
from masklet.video.results import FrameResult
from masklet.video.session import VideoSession

Direction = Literal["forward", "backward", "both"]
DIRECTIONS: tuple[str, ...] = ("forward", "backward", "both")


def apply_prompts(
    predictor: VideoPredictor,
    session: VideoSession,
    prompts: Iterable[ObjectPrompt],
    names: dict[int, str] | None = None,
) -> None:
    """Send typed prompts (clicks grouped per object and frame, boxes, masks) to the session.

    A mask replaces clicks on the same frame (SAM 2 takes one or the other), so an entry with
    a mask and points is applied as the mask; a box and clicks go in one call.
    """
    for obj_id, name in (names or {}).items():
        predictor.set_object_name(session, obj_id, name)
    for p in prompts:
        validate_in_bounds(p, session.width, session.height)
        if p.name:
            predictor.set_object_name(session, p.obj_id, p.name)
        if p.mask is not None:
            if p.mask.shape != (session.height, session.width):
                raise InvalidInputError(
                    f"the mask for {p.name!r} on frame {p.frame} is {p.mask.shape[1]}x"
                    f"{p.mask.shape[0]}, the video is {session.width}x{session.height}"
                )
            predictor.add_new_mask(session, p.frame, p.obj_id, p.mask)
        else:
            predictor.add_new_points_or_box(
                session, p.frame, p.obj_id, points=p.points, labels=p.labels, box=p.box
            )


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
