"""Segment everything on a video: the automatic mask generator finds regions on a frame, they
become tracked objects, and every N frames regions no tracked object covers become new ones.

The rounds, segments and overlap test are `masklet.video.discovery`'s (shared with text
prompts); this module contributes the finder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from masklet.errors import InvalidInputError
from masklet.everything.generator import AutomaticMaskGenerator
from masklet.video.discovery import (
    DEFAULT_MAX_COVERED,
    Candidate,
    DiscoveryOptions,
    discover_and_track,
)
from masklet.video.predictor import VideoPredictor
from masklet.video.results import FrameResult
from masklet.video.session import VideoSession
from masklet.video.tracking import Direction

# objects found by segment everything are named object_1, object_2, ...
EVERYTHING_LABEL = "object"
# masks larger than this fraction of the frame are background or scene-sized, not objects
DEFAULT_MAX_AREA_FRACTION = 0.5


@dataclass(frozen=True)
class EverythingFinder:
    """The generator's masks on a frame, largest first, as candidates labelled "object".

    min_area: ignore masks smaller than this many pixels. max_area_fraction: ignore masks
    covering more than this fraction of the frame. Largest first, so that within a round a
    part of an object found together with the whole object is covered by it and skipped.
    """

    generator: AutomaticMaskGenerator
    min_area: int = 0
    max_area_fraction: float = DEFAULT_MAX_AREA_FRACTION

    def __post_init__(self) -> None:
        if not 0.0 < self.max_area_fraction <= 1.0:
            raise InvalidInputError(
                f"max_area_fraction must be in (0, 1], got {self.max_area_fraction}"
            )
        if self.generator.config.output_mode != "binary_mask":
            object.__setattr__(
                self, "generator", self.generator.with_options(output_mode="binary_mask")
            )

    def find(self, frame: np.ndarray, frame_idx: int) -> list[Candidate]:
        limit = self.max_area_fraction * frame.shape[0] * frame.shape[1]
        records = [r for r in self.generator.generate(frame) if self.min_area <= r["area"] <= limit]
        records.sort(key=lambda r: -r["area"])
        out = []
        for r in records:
            x, y, w, h = r["bbox"]
            # the record's box has inclusive ends; candidates use exclusive ends
            box = np.array([x, y, x + w + 1, y + h + 1], dtype=np.float32)
            out.append(Candidate(box, EVERYTHING_LABEL, r["segmentation"]))
        return out


def track_everything(
    predictor: VideoPredictor,
    session: VideoSession,
    generator: AutomaticMaskGenerator,
    *,
    start_frame: int = 0,
    every: int | None = None,
    max_covered: float = DEFAULT_MAX_COVERED,
    max_objects: int | None = None,
    min_area: int = 0,
    max_area_fraction: float = DEFAULT_MAX_AREA_FRACTION,
    direction: Direction = "forward",
    max_frames: int | None = None,
) -> Iterator[FrameResult]:
    """Segment everything on `start_frame` and track each region as an object (object_1, ...);
    with `every=N`, every N frames regions that tracked objects do not cover (more than
    `max_covered` of a region outside them) become new objects with new ids.

    Yields one `FrameResult` per frame in tracking order (see `masklet.video.discovery`)."""
    finder = EverythingFinder(generator, min_area, max_area_fraction)
    options = DiscoveryOptions(every=every, max_covered=max_covered, max_objects=max_objects)
    yield from discover_and_track(
        predictor, session, finder, options,
        start_frame=start_frame, direction=direction, max_frames=max_frames,
    )  # fmt: skip
