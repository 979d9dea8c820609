"""Segment an image: the one place that drives the image predictor for users.

`prepare_image` reads and checks everything that needs no model (the image header against
the pixel limit, then the pixels, every prompt, the outputs); `segment_image` runs SAM 2 (and
GroundingDINO for a text prompt) and returns plain records; `write_image_outputs` writes the
files. The CLI, the server and batch work call these three and nothing below them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from masklet.errors import InvalidInputError
from masklet.io.records import FrameRecord, frame_record
from masklet.pipelines.control import NEVER, CancelToken, Progress, ProgressFn, no_progress
from masklet.pipelines.requests import EverythingQuery, ImageOutputs, ImageRequest, TextQuery
from masklet.pipelines.validation import (
    check_everything,
    check_image_outputs,
    check_prompts,
    check_text,
)
from masklet.prompts import ObjectPrompt

if TYPE_CHECKING:
    from masklet.modeling.sam2 import SAM2Model
    from masklet.text.detector import Detector


@dataclass(frozen=True)
class PreparedImage:
    """An image request checked and read: the pixels and the prompts merged per object."""

    request: ImageRequest
    image: np.ndarray  # [H, W, 3] uint8 RGB
    prompts: list[ObjectPrompt]
    names: dict[int, str]
    file_name: str | None

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class Detection:
    """An object a text prompt found: the detector's box `[4]` x1, y1, x2, y2 and score."""

    obj_id: int
    name: str
    label: str
    box: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True)
class ImageResult:
    """Masks of every object (overlaps resolved, see `masklet.io.records`), the prompts to draw
    and the text detections."""

    image: np.ndarray  # [H, W, 3] uint8
    record: FrameRecord
    clicks: list[tuple[float, float, int]]
    boxes: list[tuple[float, float, float, float]]
    detections: list[Detection] = field(default_factory=list)
    file_name: str | None = None

    def overlay(self, mask_type: str = "highlighted") -> np.ndarray:
        """`[H, W, 3]` uint8: the image with masks, clicks and prompt boxes drawn."""
        from masklet.io.overlay import render_mask_type

        return render_mask_type(
            self.image, self.record.masks(), mask_type, colors=self.record.colors(),
            points=self.clicks, boxes=self.boxes,
        )  # fmt: skip

    def coco(self) -> dict[str, Any]:
        """COCO-style JSON: the image's size and one record per object."""
        from masklet.io.masks import objects_to_coco

        r = self.record
        records = objects_to_coco(r.masks(), scores=r.scores(), names=r.names())
        for rec, obj in zip(records, r.objects, strict=True):
            if obj.label is not None:
                rec["label"] = obj.label
            if obj.detection_score is not None:
                rec["detection_score"] = obj.detection_score
        return {
            "image": {"file_name": self.file_name, "height": r.height, "width": r.width},
            "annotations": records,
        }


def read_checked_image(source: str | Path | np.ndarray, max_pixels: int | None) -> np.ndarray:
    """The image's pixels, its size checked against `max_pixels` from the header first."""
    from masklet.io.images import read_image
    from masklet.pipelines.limits import LimitExceededError

    if isinstance(source, np.ndarray):
        image = source
    else:
        if max_pixels is not None:
            width, height = image_header_size(source)
            if width * height > max_pixels:
                raise LimitExceededError(
                    f"the image is {width}x{height} = {width * height} pixels, over the limit "
                    f"of {max_pixels}",
                    limit="max_image_pixels", field="image",
                )  # fmt: skip
        image = read_image(source)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidInputError(
            f"expected an RGB image [H, W, 3] uint8, got shape {image.shape} and {image.dtype}",
            field="image",
        )
    return image


def image_header_size(path: str | Path) -> tuple[int, int]:
    """(width, height) read from the file's header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except FileNotFoundError:
        raise InvalidInputError(f"{str(path)!r} does not exist", field="image") from None
    except (UnidentifiedImageError, OSError) as error:
        raise InvalidInputError(
            f"{str(path)!r} is not an image PIL can read (JPEG, PNG or WebP): {error}",
            field="image",
        ) from None


def prepare_image(request: ImageRequest, outputs: ImageOutputs | None = None) -> PreparedImage:
    """Everything a request needs checked before any model work."""
    if outputs is not None:
        check_image_outputs(outputs)
    image = read_checked_image(request.image, request.limits.max_image_pixels)
    h, w = image.shape[:2]
    check_everything(request.everything, request.text, None, request.limits)
    merged = check_prompts(
        request.prompts, width=w, height=h, num_frames=None, limits=request.limits,
        names=request.names, has_text=request.text is not None or request.everything is not None,
    )  # fmt: skip
    names = {**request.names, **{p.obj_id: p.name for p in request.prompts if p.name}}
    check_text(request.text, request.limits, first_id=max(names, default=0) + 1)
    file_name = None if isinstance(request.image, np.ndarray) else Path(request.image).name
    return PreparedImage(request, image, merged, names, file_name)


def text_object_names(labels: Sequence[str], taken: Sequence[str]) -> list[str]:
    """`{label}_{k}` names ("red_car_1"), k counting up per label past the names in use."""
    from masklet.text.detector import label_to_name

    used = set(taken)
    names = []
    for label in labels:
        k = 1
        while label_to_name(label, k) in used:
            k += 1
        used.add(label_to_name(label, k))
        names.append(label_to_name(label, k))
    return names


def segment_image(
    prepared: PreparedImage,
    model: SAM2Model,
    *,
    detector: Detector | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER,
) -> ImageResult:
    """Run SAM 2 on every prompted object (and the text prompt's objects); progress counts
    objects, `cancel` is checked before each."""
    from masklet.image_predictor import ImagePredictor
    from masklet.transforms import mask_to_logits

    request = prepared.request
    if request.text is not None and detector is None:
        raise InvalidInputError("a text prompt needs a detector (GroundingDINO)", field="text")
    cancel.check()
    predictor = ImagePredictor(model)
    predictor.set_image(prepared.image)
    low_res = model.sam_prompt_encoder.mask_input_size
    masks: dict[int, np.ndarray] = {}
    scores: dict[int, float] = {}
    total = len(prepared.prompts) + (1 if request.text is not None else 0)
    for done, p in enumerate(prepared.prompts, start=1):
        cancel.check()
        pred = predictor.predict_full(
            point_coords=p.points, point_labels=p.labels, box=p.box,
            mask_input=None if p.mask is None else mask_to_logits(p.mask, low_res),
            multimask_output=request.multimask,
        )  # fmt: skip
        best = int(pred.ious[0].argmax())
        masks[p.obj_id] = pred.masks[0, best].cpu().numpy().astype(bool)
        scores[p.obj_id] = float(pred.ious[0, best])
        progress(Progress(done, total, objects=len(masks)))
    names = dict(prepared.names)
    labels: dict[int, str] = {}
    detection_scores: dict[int, float] = {}
    detections: list[Detection] = []
    if request.text is not None and detector is not None:
        cancel.check()
        detections = _segment_text(
            predictor, prepared, request.text, detector, masks, scores, names, labels
        )
        detection_scores = {d.obj_id: d.score for d in detections}
        progress(Progress(total, total, objects=len(masks)))
    if request.everything is not None:
        _segment_everything(model, prepared, request.everything, masks, scores, names,
                            progress, cancel)  # fmt: skip
    record = frame_record(
        0, (prepared.height, prepared.width), masks, scores, names,
        labels=labels, detection_scores=detection_scores,
    )  # fmt: skip
    clicks = [
        (float(x), float(y), int(label))
        for p in prepared.prompts
        if p.points is not None and p.labels is not None
        for (x, y), label in zip(p.points.tolist(), p.labels.tolist(), strict=True)
    ]
    boxes = [
        (float(p.box[0]), float(p.box[1]), float(p.box[2]), float(p.box[3]))
        for p in prepared.prompts
        if p.box is not None
    ]
    return ImageResult(prepared.image, record, clicks, boxes, detections, prepared.file_name)


def _segment_text(
    predictor: Any,
    prepared: PreparedImage,
    text: TextQuery,
    detector: Detector,
    masks: dict[int, np.ndarray],
    scores: dict[int, float],
    names: dict[int, str],
    labels: dict[int, str],
) -> list[Detection]:
    from masklet.text.image import segment_text

    found = segment_text(
        predictor, prepared.image, text.text, detector, box_threshold=text.box_threshold,
        text_threshold=text.text_threshold, max_objects=text.max_objects,
        first_id=max([*masks, *names, 0]) + 1, image_is_set=True,
    )  # fmt: skip
    new_names = text_object_names([t.label for t in found], list(names.values()))
    detections = []
    for t, name in zip(found, new_names, strict=True):
        masks[t.obj_id], scores[t.obj_id] = t.mask, t.mask_iou
        names[t.obj_id], labels[t.obj_id] = name, t.label
        box = (float(t.box[0]), float(t.box[1]), float(t.box[2]), float(t.box[3]))
        detections.append(Detection(t.obj_id, name, t.label, box, float(t.score)))
    return detections


def _segment_everything(
    model: SAM2Model,
    prepared: PreparedImage,
    query: EverythingQuery,
    masks: dict[int, np.ndarray],
    scores: dict[int, float],
    names: dict[int, str],
    progress: ProgressFn,
    cancel: CancelToken,
) -> None:
    """Every region the automatic mask generator finds, as new objects named `region_{k}`
    (best predicted IoU first, ids after the prompted ones, regions mostly covered by the
    prompted objects or better regions skipped), at most `query.max_objects` / the limit."""
    from masklet.pipelines.everything import find_regions, region_names

    def step(p: Progress) -> None:
        progress(Progress(p.done, p.total, objects=len(masks)))

    regions = find_regions(
        model, prepared.image, query, known=list(masks.values()),
        cap=prepared.request.limits.max_objects, progress=step, cancel=cancel,
    )  # fmt: skip
    first = max([*masks, *names, 0]) + 1
    new_names = region_names(len(regions), list(names.values()))
    for k, (region, name) in enumerate(zip(regions, new_names, strict=True)):
        masks[first + k], scores[first + k], names[first + k] = region.mask, region.score, name


def write_image_outputs(result: ImageResult, outputs: ImageOutputs) -> list[Path]:
    """Write the requested files (each atomically); returns their paths."""
    from masklet.io.images import write_image
    from masklet.io.masks import write_json, write_palette_png

    written = []
    if outputs.overlay is not None:
        write_image(outputs.overlay, result.overlay())
        written.append(outputs.overlay)
    if outputs.id_png is not None:
        write_palette_png(outputs.id_png, result.record.id_map())
        written.append(outputs.id_png)
    if outputs.json is not None:
        write_json(outputs.json, result.coco())
        written.append(outputs.json)
    return written
