"""New objects while tracking: a finder proposes regions on some frames, the ones that overlap
no tracked object become new objects, and tracking goes on with all of them.

One mechanism, several finders: text prompts (a detector's boxes, `masklet.text.video`) and
"segment everything" (the automatic mask generator's masks, `masklet.everything.video`).

Semantics of `discover_and_track`:
- The finder runs on `start_frame`; every new candidate (at most `max_objects` in all) becomes
  an object prompted on that frame (with its mask if it has one, else its box), named
  "{label}_{k}" with k counted per label (dog_1, dog_2, object_1). Ids continue after the
  session's existing objects, which are tracked along.
- With `every=N`, tracking runs in segments of N frames and the finder runs again on the first
  frame of every later segment; new candidates become objects prompted on that frame and
  tracking continues from there with every object. Known objects are never re-prompted, so ids
  are stable and their tracks are exactly what plain tracking gives.
- A candidate with only a box is "known" when its box overlaps (IoU >= `new_object_iou`) the
  bounding box of an object's mask on the frame tracked just before, or the box that object
  was last found with (updated at every match: an object whose mask degraded or vanished for a
  few frames is not created again where it was last seen).
- A candidate with a mask is "known" when more than `max_covered` of its pixels lie under the
  masks of the tracked objects on the frame tracked just before, or under the masks of objects
  created earlier in the same round (so a part of an object found in the same round is not
  a second object).
- Each frame is yielded once, carrying every object that exists there; an object exists from
  the frame it was found on, onward in the direction of tracking. Frames with no object yield
  an empty `FrameResult`.
- direction="both": forward from `start_frame` to the end, then backward from it to frame 0.
  Objects found on `start_frame` are tracked both ways; an object found later by the forward
  pass is not tracked backwards (those frames were yielded already); the backward pass runs the
  finder on its own segments. A backward round never lands on frame 0 (SAM 2 cannot start
  tracking backwards there), so frame 0 joins the segment before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from masklet.errors import InvalidInputError
from masklet.regions import DEFAULT_NEW_OBJECT_IOU, box_iou, label_to_name, mask_box
from masklet.video.predictor import VideoPredictor
from masklet.video.results import FrameResult
from masklet.video.session import VideoSession
from masklet.video.tracking import DIRECTIONS, Direction

# a masked candidate is new when at most this fraction of it lies under known objects
DEFAULT_MAX_COVERED = 0.5


@dataclass(frozen=True, eq=False)
class Candidate:
    """A region a finder proposes on one frame.

    box: [4] x1, y1, x2, y2 pixels (exclusive ends). label: name stem ("dog" -> dog_1).
    mask: [H, W] bool at the frame size, or None; when given, the object is prompted with it.
    """

    box: np.ndarray
    label: str
    mask: np.ndarray | None = None


class Finder(Protocol):
    """Proposes regions on a frame ([H, W, 3] uint8 RGB); the best first."""

    def find(self, frame: np.ndarray, frame_idx: int) -> Sequence[Candidate]: ...


@dataclass(frozen=True)
class DiscoveryOptions:
    """When the finder runs and what counts as new (see the module docstring)."""

    every: int | None = None
    new_object_iou: float = DEFAULT_NEW_OBJECT_IOU
    max_covered: float = DEFAULT_MAX_COVERED
    max_objects: int | None = None

    def __post_init__(self) -> None:
        if self.every is not None and self.every < 1:
            raise InvalidInputError(
                f"every must be a number of frames >= 1 (or None), got {self.every}"
            )
        if not 0.0 < self.new_object_iou <= 1.0:
            raise InvalidInputError(f"new_object_iou must be in (0, 1], got {self.new_object_iou}")
        if not 0.0 <= self.max_covered < 1.0:
            raise InvalidInputError(f"max_covered must be in [0, 1), got {self.max_covered}")
        if self.max_objects is not None and self.max_objects < 1:
            raise InvalidInputError(f"max_objects must be at least 1, got {self.max_objects}")


@dataclass
class _Discovered:
    """Bookkeeping of the objects the finder created, across rounds."""

    next_id: int
    created: int = 0
    per_label: dict[str, int] = field(default_factory=dict)
    last_box: dict[int, np.ndarray] = field(default_factory=dict)  # id -> [4] last found box
    first_frame: dict[int, int] = field(default_factory=dict)  # id -> frame it was found on


def discover_and_track(
    predictor: VideoPredictor,
    session: VideoSession,
    finder: Finder,
    options: DiscoveryOptions = DiscoveryOptions(),
    *,
    start_frame: int = 0,
    direction: Direction = "forward",
    max_frames: int | None = None,
) -> Iterator[FrameResult]:
    """Find objects with `finder` and track them, finding new ones every `options.every`
    frames; yields one `FrameResult` per frame in tracking order. Names ("object_1") are in
    `FrameResult.names` and `session.names`.

    max_frames: track at most this many frames beyond `start_frame` in each direction."""
    n = check_start(session, start_frame, direction, max_frames)
    span = n if max_frames is None else max_frames
    state = _Discovered(next_id=max(session.obj_ids, default=0) + 1)
    run = _Run(predictor, session, finder, options, state)
    forward = direction in ("forward", "both")
    if forward:
        yield from run.track(start_frame, span, reverse=False, find_first=True, yield_first=True)
    if direction == "backward" or (direction == "both" and start_frame > 0):
        late = [i for i, f in state.first_frame.items() if f != start_frame]
        with _detached(session, late):
            yield from run.track(
                start_frame, span, reverse=True, find_first=not forward, yield_first=not forward
            )


def check_start(
    session: VideoSession,
    start_frame: int,
    direction: str,
    max_frames: int | None,
    *,
    frame_name: str = "start_frame",
    what: str = "finding objects while tracking",
) -> int:
    """The video's length, after checking where and how far a discovery run tracks (errors
    name the caller's `frame_name` and describe the run as `what`)."""
    n = session.num_frames
    if n is None:
        raise InvalidInputError(
            f"{what} needs a video of known length; close the live source first"
        )
    if direction not in DIRECTIONS:
        raise InvalidInputError(
            f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}"
        )
    if not isinstance(start_frame, (int, np.integer)) or not 0 <= start_frame < n:
        raise InvalidInputError(f"{frame_name} must be in 0..{n - 1}, got {start_frame!r}")
    if max_frames is not None and max_frames < 0:
        raise InvalidInputError(f"max_frames must be >= 0 (or None), got {max_frames}")
    return n


@dataclass
class _Run:
    predictor: VideoPredictor
    session: VideoSession
    finder: Finder
    options: DiscoveryOptions
    state: _Discovered

    def track(
        self, start: int, span: int, *, reverse: bool, find_first: bool, yield_first: bool
    ) -> Iterator[FrameResult]:
        """Track from `start` over `span` more frames (clipped to the video) in segments
        between finder rounds; each segment is propagated only after its first frame's new
        objects were added."""
        n = self.session.num_frames or 0
        last = max(start - span, 0) if reverse else min(start + span, n - 1)
        step = self.options.every or n
        seg_start = start
        previous: FrameResult | None = None  # the frame tracked last, for overlap decisions
        first = True
        while True:
            if find_first or not first:
                self._round(seg_start, previous)
            if reverse:
                seg_end = max(seg_start - step + 1, last)
                if last == 0 and seg_end == 1:
                    seg_end = 0  # no round may start on frame 0 backwards
            else:
                seg_end = min(seg_start + step - 1, last)
            for result in self._segment(seg_start, seg_end, reverse):
                previous = result
                if first and not yield_first and result.frame_idx == start:
                    continue  # already yielded by the forward pass
                yield result
            if seg_end == last:
                return
            first = False
            seg_start = seg_end - 1 if reverse else seg_end + 1

    def _segment(self, start: int, end: int, reverse: bool) -> Iterator[FrameResult]:
        """Frames start..end (inclusive, either order) with every attached object."""
        session = self.session
        if not session.objects:
            step = -1 if reverse else 1
            for frame_idx in range(start, end + step, step):
                yield _empty_result(session, frame_idx)
            return
        if reverse and start == 0:
            # SAM 2 never tracks backwards from frame 0; one frame forwards is the same frame
            yield from self.predictor.propagate(session, 0, 0, reverse=False)
            return
        yield from self.predictor.propagate(session, start, abs(end - start), reverse=reverse)

    def _round(self, frame_idx: int, previous: FrameResult | None) -> None:
        """Run the finder on one frame; add every candidate that overlaps no known object."""
        session, state, opts = self.session, self.state, self.options
        candidates = self.finder.find(session.source.get(frame_idx), frame_idx)
        masks = previous.masks() if previous is not None else {}
        known = _known_boxes(session, state, masks)  # id -> [K, 4]
        covered: np.ndarray | None = None  # [H, W] bool, built on the first masked candidate
        for cand in candidates:
            if cand.mask is not None:
                if covered is None:
                    covered = _union(masks.values(), cand.mask.shape)
                area = int(cand.mask.sum())
                if area == 0 or (cand.mask & covered).sum() > opts.max_covered * area:
                    continue
            else:
                match, best = None, 0.0
                for obj_id, boxes in known.items():
                    iou = float(box_iou(cand.box, boxes).max()) if len(boxes) else 0.0
                    if iou > best:
                        match, best = obj_id, iou
                if match is not None and best >= opts.new_object_iou:
                    if match in state.last_box:
                        state.last_box[match] = cand.box
                    continue
            if opts.max_objects is not None and state.created >= opts.max_objects:
                continue
            obj_id = self._add(frame_idx, cand)
            known[obj_id] = cand.box[None]  # later candidates of this round meet it too
            if cand.mask is not None and covered is not None:
                covered |= cand.mask

    def _add(self, frame_idx: int, cand: Candidate) -> int:
        state = self.state
        obj_id = state.next_id
        state.next_id += 1
        state.created += 1
        k = state.per_label[cand.label] = state.per_label.get(cand.label, 0) + 1
        self.predictor.set_object_name(self.session, obj_id, label_to_name(cand.label, k))
        if cand.mask is not None:
            self.predictor.add_new_mask(self.session, frame_idx, obj_id, cand.mask)
        else:
            self.predictor.add_new_points_or_box(self.session, frame_idx, obj_id, box=cand.box)
        state.last_box[obj_id] = cand.box
        state.first_frame[obj_id] = frame_idx
        return obj_id


def _union(masks: Iterable[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for m in masks:
        out |= m
    return out


def _empty_result(session: VideoSession, frame_idx: int) -> FrameResult:
    h, w = session.height, session.width
    return FrameResult(
        frame_idx, [], torch.zeros(0, 1, h, w), torch.zeros(0, 1), dict(session.names)
    )


def _known_boxes(
    session: VideoSession, state: _Discovered, masks: dict[int, np.ndarray]
) -> dict[int, np.ndarray]:
    """Per attached object, [K, 4] boxes a candidate of it would overlap (K = 0..2)."""
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
