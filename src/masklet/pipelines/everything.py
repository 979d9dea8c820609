"""Segment everything on one picture: the regions SAM 2's automatic mask generator finds that
no known object already covers, best first.

Images (`masklet.pipelines.image`) and a frame of a server session both use `find_regions`, so
a region means the same thing wherever it is asked for; videos tracked end to end use the
discovery rounds of `masklet.everything.video` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from masklet.pipelines.control import NEVER, CancelToken, Progress, ProgressFn, no_progress
from masklet.pipelines.requests import EverythingQuery

if TYPE_CHECKING:
    from masklet.modeling.sam2 import SAM2Model

REGION_LABEL = "region"  # objects segment-everything found: region_1, region_2, ...
MAX_COVERED = 0.5  # a region with more of its pixels under better regions is not a new object


@dataclass(frozen=True, eq=False)
class Region:
    """A region found on a picture.

    mask: [H, W] bool. score: the decoder's predicted IoU. box: [4] x1, y1, x2, y2 pixels with
    exclusive ends (a valid box prompt for the region).
    """

    mask: np.ndarray
    score: float
    box: tuple[float, float, float, float]


def find_regions(
    model: SAM2Model,
    image: np.ndarray,
    query: EverythingQuery,
    *,
    known: Iterable[np.ndarray] = (),
    cap: int | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER,
) -> list[Region]:
    """The generator's regions on `image` ([H, W, 3] uint8) that `known` masks ([H, W] bool
    each) and better regions leave mostly uncovered (at most `MAX_COVERED` of a region under
    them), best predicted IoU first, at most `cap` and `query.max_objects`. Progress counts
    point batches; `cancel` is checked between them."""
    from masklet.everything import AutomaticMaskGenerator

    generator = AutomaticMaskGenerator.from_config(model, query.generator_config())

    def step(done: int, total: int) -> None:
        cancel.check()  # raising here stops the generator between point batches
        progress(Progress(done, total))

    found = generator.generate(image, progress=step)
    found.sort(key=lambda r: -float(r["predicted_iou"]))
    limits = [c for c in (query.max_objects, cap) if c is not None]
    most = min(limits) if limits else len(found)
    claimed = np.zeros(image.shape[:2], dtype=bool)
    for mask in known:
        claimed |= mask
    regions: list[Region] = []
    for record in found:
        if len(regions) >= most:
            break
        mask = np.asarray(record["segmentation"], dtype=bool)
        # a region mostly under better ones is a part or a duplicate of them (as on video)
        if (mask & ~claimed).sum() <= MAX_COVERED * mask.sum():
            continue
        x, y, w, h = (float(v) for v in record["bbox"])
        # the record's box has inclusive ends: the pixel x + w is still in the region
        box = (x, y, min(x + w + 1, image.shape[1]), min(y + h + 1, image.shape[0]))
        regions.append(Region(mask, float(record["predicted_iou"]), box))
        claimed |= mask
    return regions


def region_names(count: int, taken: Sequence[str]) -> list[str]:
    """`region_{k}` names for `count` new regions, k counting up past the names in use."""
    from masklet.pipelines.image import text_object_names

    return text_object_names([REGION_LABEL] * count, taken)
