"""Text prompts on an image: detector boxes -> SAM 2 masks, one labelled object per box."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from masklet.errors import InvalidInputError
from masklet.image_predictor import ImagePredictor
from masklet.text.detector import (
    DEFAULT_BOX_THRESHOLD,
    DEFAULT_TEXT_THRESHOLD,
    Detections,
    Detector,
    suppress_duplicates,
)


@dataclass
class TextObject:
    """One object found from a text prompt.

    box: [4] x1, y1, x2, y2 pixels (the detector's). score: detection score in [0, 1].
    mask: [H, W] bool. mask_iou: SAM 2's predicted IoU of the mask.
    """

    obj_id: int
    label: str
    box: np.ndarray
    score: float
    mask: np.ndarray
    mask_iou: float


def detect_objects(
    detector: Detector,
    image: np.ndarray,
    text: str,
    box_threshold: float = DEFAULT_BOX_THRESHOLD,
    text_threshold: float = DEFAULT_TEXT_THRESHOLD,
    max_objects: int | None = None,
) -> Detections:
    """The detector's boxes for `text`, duplicates (same object found twice) removed, best
    first, at most `max_objects`."""
    if max_objects is not None and max_objects < 1:
        raise InvalidInputError(f"max_objects must be at least 1, got {max_objects}")
    dets = suppress_duplicates(detector.detect(image, text, box_threshold, text_threshold))
    h, w = image.shape[:2]
    dets = dets.clipped(w, h)
    return dets if max_objects is None else dets.take(np.arange(min(max_objects, len(dets))))


def segment_boxes(predictor: ImagePredictor, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks for boxes [N, 4] on the predictor's current image, in one batched decoder call.

    Returns (masks [N, H, W] bool, predicted IoUs [N]). One mask per box: a box is an
    unambiguous prompt, so SAM 2's single-mask output is the right one.
    """
    if len(boxes) == 0:
        h, w = predictor.orig_hw[-1]
        return np.zeros((0, h, w), dtype=bool), np.zeros(0, dtype=np.float32)
    pred = predictor.predict_full(box=boxes, multimask_output=False)
    masks = pred.masks[:, 0].cpu().numpy().astype(bool)  # [N, 1, H, W] -> [N, H, W]
    return masks, pred.ious[:, 0].cpu().numpy()


def segment_text(
    predictor: ImagePredictor,
    image: np.ndarray,
    text: str,
    detector: Detector,
    box_threshold: float = DEFAULT_BOX_THRESHOLD,
    text_threshold: float = DEFAULT_TEXT_THRESHOLD,
    max_objects: int | None = None,
    first_id: int = 1,
    image_is_set: bool = False,
) -> list[TextObject]:
    """Every object `text` names in `image`: ids first_id, first_id + 1, ... in score order,
    each labelled with its phrase, with SAM 2 masks from the boxes.

    image_is_set: the predictor already holds this image (skips a second encoder run).
    Duplicate boxes (IoU above `detector.DUPLICATE_IOU`) count once.
    """
    dets = detect_objects(detector, image, text, box_threshold, text_threshold, max_objects)
    if not image_is_set:
        predictor.set_image(image)
    masks, ious = segment_boxes(predictor, dets.boxes)
    return [
        TextObject(
            obj_id=first_id + i,
            label=dets.labels[i],
            box=dets.boxes[i],
            score=float(dets.scores[i]),
            mask=masks[i],
            mask_iou=float(ious[i]),
        )
        for i in range(len(dets))
    ]
