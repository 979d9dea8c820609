"""Text prompts on a video: detect, track with SAM 2, and re-detect to pick up objects that
enter later.

Semantics of `track_with_text`:
- The detector runs on `detect_frame`; every box (duplicates suppressed, at most `max_objects`)
  becomes an object prompted with its box on that frame, named "{label}_{k}" with k counted per
  label (dog_1, dog_2, red_car_1). Ids continue after the session's existing objects, which
  are tracked along.
- With `redetect_every=N`, tracking runs in segments of N frames, and the detector runs again
  on the first frame of every later segment. A detection that overlaps no known object (box
  IoU below `new_object_iou`) becomes a new object prompted on that frame; tracking then
  continues from that frame with every object. Known objects are never re-prompted, so ids
  are stable and their tracks are exactly what plain tracking gives.
- "Overlaps a known object" compares the detection's box with two boxes of each object: the
  bounding box of its mask on the frame tracked just before (the neighbour in the direction
  of travel), and the box it was last detected with (its prompt box, updated at every
  matching detection). Either match counts: the second keeps an object whose mask degraded
  or vanished for a few frames from being created again where it was last seen.
- Each frame is yielded once, carrying every object that exists there. An object exists from
  the frame it was found on, onward in the direction of tracking; before that it is absent
  from `FrameResult.obj_ids`. Frames with no object yield an empty `FrameResult`.
- direction="both": forward from `detect_frame` to the end, then backward from it to frame 0.
  Objects found on `detect_frame` are tracked both ways. An object found later by the forward
  pass is not tracked backwards (those frames were already yielded; to get it there, run again
  with `detect_frame` where it appears); the backward pass re-detects on its own segments and
  objects it finds appear on the frames up to where they were found.
- In a backward pass a re-detection that would land on frame 0 is skipped (SAM 2 cannot start
  tracking backwards at frame 0), so frame 0 joins the segment before it.

The rounds, the overlap test and the segments are `masklet.video.discovery`'s, shared with
"segment everything" on videos; this module contributes the text finder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from masklet.errors import InvalidInputError
from masklet.text.detector import (
    DEFAULT_BOX_THRESHOLD,
    DEFAULT_NEW_OBJECT_IOU,
    DEFAULT_TEXT_THRESHOLD,
    Detector,
)
from masklet.text.image import detect_objects
from masklet.video.discovery import (
    Candidate,
    DiscoveryOptions,
    check_start,
    discover_and_track,
)
from masklet.video.predictor import VideoPredictor
from masklet.video.results import FrameResult
from masklet.video.session import VideoSession
from masklet.video.tracking import Direction


@dataclass(frozen=True)
class TextTrackingOptions:
    """How `track_with_text` detects and decides what is new (see the module docstring)."""

    text: str
    box_threshold: float = DEFAULT_BOX_THRESHOLD
    text_threshold: float = DEFAULT_TEXT_THRESHOLD
    redetect_every: int | None = None
    new_object_iou: float = DEFAULT_NEW_OBJECT_IOU
    max_objects: int | None = None


@dataclass(frozen=True)
class TextFinder:
    """The detector's boxes for `text` on a frame, as candidates labelled with their phrase."""

    detector: Detector
    text: str
    box_threshold: float = DEFAULT_BOX_THRESHOLD
    text_threshold: float = DEFAULT_TEXT_THRESHOLD

    def find(self, frame: np.ndarray, frame_idx: int) -> list[Candidate]:
        dets = detect_objects(
            self.detector, frame, self.text, self.box_threshold, self.text_threshold
        )
        return [Candidate(box, label) for box, label in zip(dets.boxes, dets.labels)]


def track_with_text(
    predictor: VideoPredictor,
    session: VideoSession,
    detector: Detector,
    text: str,
    detect_frame: int = 0,
    redetect_every: int | None = None,
    new_object_iou: float = DEFAULT_NEW_OBJECT_IOU,
    box_threshold: float = DEFAULT_BOX_THRESHOLD,
    text_threshold: float = DEFAULT_TEXT_THRESHOLD,
    max_objects: int | None = None,
    direction: Direction = "forward",
    max_frames: int | None = None,
) -> Iterator[FrameResult]:
    """Find the objects `text` names and track them; yields one `FrameResult` per frame in
    tracking order. Object names ("dog_1") are in `FrameResult.names` and `session.names`.

    max_frames: track at most this many frames beyond `detect_frame` in each direction
    (as `VideoPredictor.propagate`'s max_frame_num_to_track)."""
    opts = TextTrackingOptions(
        text, box_threshold, text_threshold, redetect_every, new_object_iou, max_objects
    )
    _check(session, opts, detect_frame, direction, max_frames)
    finder = TextFinder(detector, text, box_threshold, text_threshold)
    discovery = DiscoveryOptions(
        every=redetect_every, new_object_iou=new_object_iou, max_objects=max_objects
    )
    yield from discover_and_track(
        predictor, session, finder, discovery,
        start_frame=detect_frame, direction=direction, max_frames=max_frames,
    )  # fmt: skip


def _check(
    session: VideoSession,
    opts: TextTrackingOptions,
    detect_frame: int,
    direction: str,
    max_frames: int | None,
) -> None:
    """Everything `discover_and_track` checks, named as text tracking's arguments (its own
    options check `new_object_iou` and `max_objects` under the same names)."""
    check_start(session, detect_frame, direction, max_frames, frame_name="detect_frame",
                what="text tracking")  # fmt: skip
    if opts.redetect_every is not None and opts.redetect_every < 1:
        raise InvalidInputError(
            f"redetect_every must be a number of frames >= 1 (or None), got {opts.redetect_every}"
        )
