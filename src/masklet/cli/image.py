"""`masklet image INPUT --point X,Y[,LABEL] ... --box X1,Y1,X2,Y2 ... --text "a dog."`

Each `--box` is one object; `--point`s go with the single box if there is one, or form one
object on their own. `--text` adds one object per box GroundingDINO finds for its phrases,
numbered after the click/box objects and named with their phrase. Writes an overlay, an
id-valued mask PNG and COCO RLE JSON.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from masklet.cli.common import add_model_options, load_model_from_args
from masklet.cli.text_options import add_text_options, load_detector_from_args
from masklet.errors import InvalidPromptError

if TYPE_CHECKING:
    from masklet.image_predictor import ImagePredictor
    from masklet.text.detector import Detector
    from masklet.text.image import TextObject


@dataclass(frozen=True)
class ImageObject:
    """One object to segment: its prompts in image pixels."""

    obj_id: int
    points: np.ndarray | None  # [N, 2]
    labels: np.ndarray | None  # [N]
    box: np.ndarray | None  # [4]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("image", help="segment objects in an image from clicks and boxes")
    p.add_argument("input", help="JPEG, PNG or WebP image")
    p.add_argument(
        "--point", action="append", default=[], metavar="X,Y[,LABEL]",
        help="a click in pixels; LABEL 1 = include (default), 0 = exclude; repeatable",
    )  # fmt: skip
    p.add_argument(
        "--box", action="append", default=[], metavar="X1,Y1,X2,Y2",
        help="a box in pixels; each box is one object; repeatable",
    )  # fmt: skip
    p.add_argument("--mask-input", default=None, metavar="PNG", help="a rough mask as a prompt")
    p.add_argument("--multimask", action="store_true", help="pick the best of 3 candidate masks")
    p.add_argument("-o", "--output", default=None, metavar="PNG|JPG", help="overlay image")
    p.add_argument(
        "--masks", default=None, metavar="PNG", help="mask whose pixel value = object id"
    )
    p.add_argument("--json", default=None, metavar="JSON", help="COCO RLE masks with scores, boxes")
    add_text_options(p)
    add_model_options(p)
    p.set_defaults(run=run)


def parse_objects(points: list[str], boxes: list[str], has_text: bool = False) -> list[ImageObject]:
    """Group the command-line prompts into objects (validated, not yet bound to an image).
    With `has_text` (a --text prompt), no clicks or boxes is fine."""
    from masklet.prompts import parse_box, parse_point

    parsed_points = [parse_point(p) for p in points]
    parsed_boxes = [np.array(parse_box(b), dtype=np.float32) for b in boxes]
    if not parsed_points and not parsed_boxes:
        if has_text:
            return []
        raise InvalidPromptError(
            'give at least one --point X,Y[,LABEL], --box X1,Y1,X2,Y2 or --text "a dog."'
        )
    if parsed_points and len(parsed_boxes) > 1:
        raise InvalidPromptError(
            "--point with several --box is ambiguous (which box does a click refine?); "
            "segment one box with its clicks per run"
        )
    coords = np.array([p[:2] for p in parsed_points], dtype=np.float32) if parsed_points else None
    labels = np.array([p[2] for p in parsed_points], dtype=np.int32) if parsed_points else None
    if not parsed_boxes:
        return [ImageObject(1, coords, labels, None)]
    return [
        ImageObject(i + 1, coords if i == 0 else None, labels if i == 0 else None, box)
        for i, box in enumerate(parsed_boxes)
    ]


def mask_to_logits(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A binary mask [H, W] as low-res prompt logits [1, h, w] (+-10 around the boundary)."""
    import torch
    import torch.nn.functional as F

    m = torch.from_numpy(mask.astype(np.float32))[None, None]
    m = F.interpolate(m, size=size, mode="bilinear", align_corners=False, antialias=True)
    return ((m[0] * 2 - 1) * 10).numpy()


def run(args: argparse.Namespace) -> int:
    from masklet.image_predictor import ImagePredictor
    from masklet.io.images import read_image, read_mask, write_image
    from masklet.io.masks import id_mask, objects_to_coco, write_id_png, write_json
    from masklet.io.overlay import draw_overlay

    objects = parse_objects(args.point, args.box, has_text=args.text is not None)
    image = read_image(args.input)
    h, w = image.shape[:2]
    for obj in objects:
        _check_on_image(obj, w, h)
    mask_prompt = read_mask(args.mask_input, size=(h, w)) if args.mask_input else None
    # the detector loads first: a missing GroundingDINO fails before the SAM 2 model loads
    detector = load_detector_from_args(args) if args.text is not None else None

    model = load_model_from_args(args)
    predictor = ImagePredictor(model)
    predictor.set_image(image)
    low_res = model.sam_prompt_encoder.mask_input_size
    mask_logits = mask_to_logits(mask_prompt, low_res) if mask_prompt is not None else None

    masks: dict[int, np.ndarray] = {}
    scores: dict[int, float] = {}
    for obj in objects:
        pred = predictor.predict_full(
            point_coords=obj.points, point_labels=obj.labels, box=obj.box,
            mask_input=mask_logits, multimask_output=args.multimask,
        )  # fmt: skip
        best = int(pred.ious[0].argmax())
        masks[obj.obj_id] = pred.masks[0, best].cpu().numpy().astype(bool)
        scores[obj.obj_id] = float(pred.ious[0, best])
        print(
            f"object {obj.obj_id}: {int(masks[obj.obj_id].sum())} px, "
            f"predicted IoU {scores[obj.obj_id]:.3f}"
        )
    names: dict[int, str] = {}
    detection_scores: dict[int, float] = {}
    if detector is not None:
        for t in _segment_text(args, predictor, image, detector, first_id=len(objects) + 1):
            masks[t.obj_id], scores[t.obj_id] = t.mask, t.mask_iou
            names[t.obj_id], detection_scores[t.obj_id] = t.label, t.score
            print(
                f"object {t.obj_id} ({t.label}, detection score {t.score:.2f}): "
                f"{int(t.mask.sum())} px, predicted IoU {t.mask_iou:.3f}"
            )
    clicks = _clicks(objects)
    if args.output:
        write_image(args.output, draw_overlay(image, masks, points=clicks))
    if args.masks:
        write_id_png(args.masks, id_mask(masks, (h, w), scores=scores))
    if args.json:
        records = objects_to_coco(masks, scores=scores, names=names)
        for record in records:
            if record["id"] in detection_scores:
                record["detection_score"] = detection_scores[record["id"]]
        write_json(args.json, {
            "image": {"file_name": str(args.input), "height": h, "width": w},
            "annotations": records,
        })  # fmt: skip
    return 0


def _segment_text(
    args: argparse.Namespace,
    predictor: ImagePredictor,
    image: np.ndarray,
    detector: Detector,
    first_id: int,
) -> list[TextObject]:
    from masklet.text.image import segment_text

    found = segment_text(
        predictor, image, args.text, detector, box_threshold=args.box_threshold,
        text_threshold=args.text_threshold, max_objects=args.max_objects, first_id=first_id,
        image_is_set=True,
    )  # fmt: skip
    if not found:
        print(f"text: nothing found for {args.text!r} above box threshold {args.box_threshold}")
    return found


def _check_on_image(obj: ImageObject, w: int, h: int) -> None:
    if obj.points is not None:
        for x, y in obj.points:
            if not (0 <= x <= w and 0 <= y <= h):
                raise InvalidPromptError(f"point {x:g},{y:g} lies outside the {w}x{h} image")
    if obj.box is not None:
        x1, y1, x2, y2 = obj.box
        if min(x1, y1) < 0 or x2 > w or y2 > h:
            raise InvalidPromptError(
                f"box {x1:g},{y1:g},{x2:g},{y2:g} lies outside the {w}x{h} image"
            )


def _clicks(objects: list[ImageObject]) -> list[tuple[float, float, int]]:
    out: list[tuple[float, float, int]] = []
    for obj in objects:
        if obj.points is not None and obj.labels is not None:
            out += [(float(x), float(y), int(lab)) for (x, y), lab in zip(obj.points, obj.labels)]
    return out
