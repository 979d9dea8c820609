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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from masklet.errors import InvalidInputError
from masklet.text.detector import (
    DEFAULT_BOX_THRESHOLD,
    DEFAULT_NEW_OBJECT_IOU,
    DEFAULT_TEXT_THRESHOLD,
    Detector,
    box_iou,
    label_to_name,
    mask_box,
)
from masklet.text.image import detect_objects
from masklet.video.predictor import VideoPredictor
from masklet.video.results import FrameResult
from masklet.video.session import VideoSession
from masklet.video.tracking import DIRECTIONS, Direction


@dataclass(frozen=True)
class TextTrackingOptions:
    """How `track_with_text` detects and decides what is new (see the module docstring)."""

    text: str
    box_threshold: float = DEFAULT_BOX_THRESHOLD
    text_threshold: float = DEFAULT_TEXT_THRESHOLD
    redetect_every: int | None = None
    new_object_iou: float = DEFAULT_NEW_OBJECT_IOU
    max_objects: int | None = None


@dataclass
class _TextObjects:
    """Bookkeeping of the objects the text created, across detection rounds."""

    next_id: int
    created: int = 0
    per_label: dict[str, int] = field(default_factory=dict)
    last_box: dict[int, np.ndarray] = field(default_factory=dict)  # id -> [4] last detection
    first_frame: dict[int, int] = field(default_factory=dict)  # id -> frame it was found on


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
    num_frames = _check(session, opts, detect_frame, direction)
    if max_frames is not None and max_frames < 0:
        raise InvalidInputError(f"max_frames must be >= 0 (or None), got {max_frames}")
    span = num_frames if max_frames is None else max_frames
    state = _TextObjects(next_id=max(session.obj_ids, default=0) + 1)
    forward = direction in ("forward", "both")
    if forward:
        yield from _pass(predictor, session, detector, opts, state, detect_frame, span,
                         reverse=False, detect_first=True, yield_first=True)  # fmt: skip
    if direction == "backward" or (direction == "both" and detect_frame > 0):
        late = [i for i, f in state.first_frame.items() if f != detect_frame]
        with _detached(session, late):
            yield from _pass(predictor, session, detector, opts, state, detect_frame, span,
                             reverse=True, detect_first=not forward, yield_first=not forward)  # fmt: skip


def _check(
    session: VideoSession, opts: TextTrackingOptions, detect_frame: int, direction: str
) -> int:
    n = session.num_frames
    if n is None:
        raise InvalidInputError(
            "text tracking needs a video of known length; close the live source first"
        )
    if direction not in DIRECTIONS:
        raise InvalidInputError(
            f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}"
        )
    if not isinstance(detect_frame, (int, np.integer)) or not 0 <= detect_frame < n:
        raise InvalidInputError(f"detect_frame must be in 0..{n - 1}, got {detect_frame!r}")
    if opts.redetect_every is not None and opts.redetect_every < 1:
        raise InvalidInputError(
            f"redetect_every must be a number of frames >= 1 (or None), got {opts.redetect_every}"
        )
    if not 0.0 < opts.new_object_iou <= 1.0:
        raise InvalidInputError(f"new_object_iou must be in (0, 1], got {opts.new_object_iou}")
    if opts.max_objects is not None and opts.max_objects < 1:
        raise InvalidInputError(f"max_objects must be at least 1, got {opts.max_objects}")
    return n


def _pass(
    predictor: VideoPredictor,
    session: VideoSession,
    detector: Detector,
    opts: TextTrackingOptions,
    state: _TextObjects,
    start: int,
    span: int,
    reverse: bool,
    detect_first: bool,
    yield_first: bool,
) -> Iterator[FrameResult]:
    """Track from `start` over `span` more frames (clipped to the video) in segments between
    detection rounds; each segment is propagated only after its first frame's new objects
    were added."""
    n = session.num_frames or 0
    last = max(start - span, 0) if reverse else min(start + span, n - 1)
    step = opts.redetect_every or n
    seg_start = start
    previous: FrameResult | None = None  # the frame tracked last, for overlap decisions
    first = True
    while True:
        if detect_first or not first:
            _detect_round(predictor, session, detector, opts, state, seg_start, previous)
        if reverse:
            seg_end = max(seg_start - step + 1, last)
            if last == 0 and seg_end == 1:
                seg_end = 0  # no round may start on frame 0 backwards
        else:
            seg_end = min(seg_start + step - 1, last)
        for result in _segment(predictor, session, seg_start, seg_end, reverse):
            previous = result
            if first and not yield_first and result.frame_idx == start:
                continue  # already yielded by the forward pass
            yield result
        if seg_end == last:
            return
        first = False
        seg_start = seg_end - 1 if reverse else seg_end + 1


def _segment(
    predictor: VideoPredictor, session: VideoSession, start: int, end: int, reverse: bool
) -> Iterator[FrameResult]:
    """Frames start..end (inclusive, either order) with every attached object."""
    if not session.objects:
        step = -1 if reverse else 1
        for frame_idx in range(start, end + step, step):
            yield _empty_result(session, frame_idx)
        return
    if reverse and start == 0:
        # SAM 2 never tracks backwards from frame 0; a one-frame pass forwards is the same frame
        yield from predictor.propagate(session, 0, 0, reverse=False)
        return
    yield from predictor.propagate(session, start, abs(end - start), reverse=reverse)


def _empty_result(session: VideoSession, frame_idx: int) -> FrameResult:
    h, w = session.height, session.width
    return FrameResult(
        frame_idx, [], torch.zeros(0, 1, h, w), torch.zeros(0, 1), dict(session.names)
    )


def _detect_round(
    predictor: VideoPredictor,
    session: VideoSession,
    detector: Detector,
    opts: TextTrackingOptions,
    state: _TextObjects,
    frame_idx: int,
    previous: FrameResult | None,
) -> None:
    """Detect on one frame; add every detection that overlaps no known object."""
    dets = detect_objects(
        detector, session.source.get(frame_idx), opts.text, opts.box_threshold,
        opts.text_threshold,
    )  # fmt: skip
    known = _known_boxes(session, state, previous)  # id -> [K, 4]
    for box, label in zip(dets.boxes, dets.labels):
        match, best = None, 0.0
        for obj_id, boxes in known.items():
            iou = float(box_iou(box, boxes).max()) if len(boxes) else 0.0
            if iou > best:
                match, best = obj_id, iou
        if match is not None and best >= opts.new_object_iou:
            if match in state.last_box:
                state.last_box[match] = box
            continue
        if opts.max_objects is not None and state.created >= opts.max_objects:
            continue
        obj_id = state.next_id
        state.next_id += 1
        state.created += 1
        k = state.per_label[label] = state.per_label.get(label, 0) + 1
        predictor.set_object_name(session, obj_id, label_to_name(label, k))
        predictor.add_new_points_or_box(session, frame_idx, obj_id, box=box)
        state.last_box[obj_id] = box
        state.first_frame[obj_id] = frame_idx
        known[obj_id] = box[None]  # later detections of this round are matched against it too


def _known_boxes(
    session: VideoSession, state: _TextObjects, previous: FrameResult | None
) -> dict[int, np.ndarray]:
    """Per attached object, [K, 4] boxes a detection of it would overlap (K = 0..2)."""
    masks = previous.masks() if previous is not None else {}
    known: dict[int, np.ndarray] = {}
    for obj_id in session.obj_ids:
        boxes = []
        if obj_id in masks and (b := mask_box(masks[obj_id])) is not None:
            boxes.append(b)
        if obj_id in state.last_box:
            boxes.append(state.last_box[obj_id])
        known[obj_id] = np.stack(boxes) if boxes else np.zeros((0, 4), np.float32)
    return known


@contextmanager
def _detached(session: VideoSession, obj_ids: list[int]) -> Iterator[None]:
    """Take objects out of the session for a while (tracking skips them), then put them back
    in their original order."""
    order = list(session.objects)
    held = {i: session.objects.pop(i) for i in obj_ids if i in session.objects}
    try:
        yield
    finally:
        current = dict(session.objects)
        current.update(held)
        session.objects.clear()
        for obj_id in order + [i for i in current if i not in order]:
            if obj_id in current:
                session.objects[obj_id] = current[obj_id]
