"""Plain per-frame records: what every output writer takes.

Outputs know nothing of tracking: a `FrameRecord` is a frame index, the frame's size and, per
object, a boolean mask, a score, a name and a colour. The pipelines build them from model
results with `frame_record`, which applies masklet's one overlap policy:

**Masks in outputs never overlap.** Where SAM 2 gives a pixel to several objects, the object
with the higher score keeps it (equal scores: the larger id), exactly as the id PNG paints it.
So an id PNG, the COCO JSON decoded and painted, and an overlay show the same pixels per
object. (The predictors' own outputs, for library users, stay SAM 2's raw masks.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from masklet.io.masks import id_mask
from masklet.io.overlay import object_color


class FrameProvider(Protocol):
    """What an overlay writer needs of a video: its frames by index, size, rate and length."""

    width: int
    height: int

    @property
    def fps(self) -> float: ...

    @property
    def num_frames(self) -> int | None: ...

    def get(self, frame_idx: int) -> np.ndarray: ...


@dataclass(frozen=True)
class ObjectRecord:
    """One object on one frame. mask: `[H, W]` bool; score: predicted IoU (images) or
    visibility probability (video); label: the text phrase that found it, if any."""

    obj_id: int
    mask: np.ndarray
    score: float | None
    name: str
    color: tuple[int, int, int]
    label: str | None = None
    detection_score: float | None = None


@dataclass(frozen=True)
class FrameRecord:
    """Every object's record on one frame (or on an image: frame 0), in increasing id order.
    time: the frame's presentation time in seconds, when the source knows it."""

    frame_idx: int
    height: int
    width: int
    objects: tuple[ObjectRecord, ...]
    time: float | None = None

    @property
    def obj_ids(self) -> list[int]:
        return [o.obj_id for o in self.objects]

    def masks(self) -> dict[int, np.ndarray]:
        return {o.obj_id: o.mask for o in self.objects}

    def scores(self) -> dict[int, float]:
        return {o.obj_id: o.score for o in self.objects if o.score is not None}

    def names(self) -> dict[int, str]:
        return {o.obj_id: o.name for o in self.objects}

    def colors(self) -> dict[int, tuple[int, int, int]]:
        return {o.obj_id: o.color for o in self.objects}

    def id_map(self) -> np.ndarray:
        """`[H, W]` pixel value = object id (uint8, or uint16 past id 255)."""
        scores = self.scores()
        return id_mask(
            self.masks(),
            (self.height, self.width),
            scores if len(scores) == len(self.objects) else None,
        )


def default_name(obj_id: int) -> str:
    return f"object_{obj_id}"


def frame_record(
    frame_idx: int,
    shape: tuple[int, int],
    masks: Mapping[int, np.ndarray],
    scores: Mapping[int, float] | None = None,
    names: Mapping[int, str] | None = None,
    *,
    labels: Mapping[int, str] | None = None,
    detection_scores: Mapping[int, float] | None = None,
    colors: Mapping[int, tuple[int, int, int]] | None = None,
    time: float | None = None,
) -> FrameRecord:
    """A frame's records with overlaps resolved (see the module docstring).

    masks: object id -> `[H, W]` bool; scores: object id -> score (all or none)."""
    height, width = shape
    ids = sorted(masks)
    full_scores = scores if scores is not None and all(i in scores for i in ids) else None
    owner = id_mask(masks, shape, full_scores)  # [H, W]: who keeps each pixel
    objects = tuple(
        ObjectRecord(
            obj_id=i,
            mask=owner == i,
            score=None if scores is None or i not in scores else float(scores[i]),
            name=(names or {}).get(i) or default_name(i),
            color=(colors or {}).get(i) or object_color(i),
            label=(labels or {}).get(i),
            detection_score=None if detection_scores is None else detection_scores.get(i),
        )
        for i in ids
    )
    return FrameRecord(frame_idx, height, width, objects, time)
