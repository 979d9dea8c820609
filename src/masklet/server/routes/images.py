"""`POST /v1/images:segment`: masks for prompted objects on one uploaded image."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, UploadFile
from PIL import Image

from masklet.errors import InvalidPromptError
from masklet.io.images import read_image, read_mask
from masklet.io.masks import id_mask
from masklet.io.overlay import draw_overlay
from masklet.server.context import Context, Owner, ServerContext
from masklet.server.errors import with_field
from masklet.server.routes.common import ERROR_RESPONSES
from masklet.server.routes.text import check_text, detected, object_names
from masklet.server.routes.text import router as text_router
from masklet.server.schemas import ImagePrompts, ImageResult, object_masks
from masklet.server.uploads import parse_json_field, read_uploaded, save_upload, scratch_file

router = APIRouter(tags=["images"])
MASK_PROMPT_LOGIT = 10.0  # a binary mask prompt becomes +-10 logits, like the CLI's --mask-input

PROMPTS_HELP = (
    'JSON: {"objects": [{"id": 1, "points": [[x, y]], "labels": [1], "box": [x1, y1, x2, y2], '
    '"mask": false}], "multimask": false, "outputs": ["overlay", "id_mask"], '
    '"text": "a dog. a red car.", "box_threshold": 0.35, "text_threshold": 0.25, '
    '"max_objects": null} (objects, text, or both)'
)


@router.post(
    "/v1/images:segment", response_model=ImageResult,
    responses=ERROR_RESPONSES | text_router.responses, summary="Segment objects in an image",
)  # fmt: skip
async def segment_image(
    image: Annotated[UploadFile, File(description="JPEG, PNG or WebP (read by content)")],
    prompts: Annotated[str, Form(description=PROMPTS_HELP)],
    ctx: Context,
    _owner: Owner,
    mask: Annotated[
        UploadFile | None, File(description="rough mask for the object with mask=true")
    ] = None,
) -> ImageResult:
    """Per-object masks (COCO RLE), scores (predicted IoU) and boxes. `outputs` adds a coloured
    overlay and / or an id mask (pixel value = object id) as base64 PNG in the JSON. A `text`
    prompt adds one object per detected box (ids after the largest given id, names
    `{phrase}_{k}`, records labelled with the phrase); 503 when the detector is unavailable."""
    parsed = parse_json_field(prompts, ImagePrompts, "prompts")
    if parsed.text is not None:
        check_text(parsed.text, "prompts.text")
    if mask is None and any(o.mask for o in parsed.objects):
        raise with_field(
            InvalidPromptError("an object has mask=true but no mask file was sent"), "mask"
        )
    if mask is not None and not any(o.mask for o in parsed.objects):
        if len(parsed.objects) != 1:
            raise with_field(
                InvalidPromptError('a mask file was sent: mark its object with "mask": true'),
                "prompts.objects",
            )
        parsed.objects[0].mask = True
    limit = ctx.settings.max_upload_bytes
    with (
        scratch_file(ctx.data_dir / "tmp") as image_path,
        scratch_file(ctx.data_dir / "tmp") as mask_path,
    ):
        await save_upload(image, image_path, limit, "image")
        if mask is not None:
            await save_upload(mask, mask_path, limit, "mask")
        return await ctx.pool.run(
            lambda: _segment(ctx, image_path, mask_path if mask is not None else None, parsed)
        )


def _segment(
    ctx: ServerContext, image_path: Path, mask_path: Path | None, parsed: ImagePrompts
) -> ImageResult:
    from masklet.cli.image import mask_to_logits
    from masklet.image_predictor import ImagePredictor
    from masklet.text import segment_text

    image = read_uploaded(read_image, image_path, "the uploaded image", "image")
    h, w = image.shape[:2]
    mask_logits = None
    model = ctx.models.model()
    if mask_path is not None:
        prompt = read_uploaded(
            lambda p: read_mask(p, size=(h, w)), mask_path, "the uploaded mask", "mask"
        )
        mask_logits = mask_to_logits(prompt, model.sam_prompt_encoder.mask_input_size)
    for index, obj in enumerate(parsed.objects):
        _check_inside(obj.points, obj.box, w, h, f"prompts.objects[{index}]")
    predictor = ImagePredictor(model)  # per request: a predictor holds one image's features
    predictor.set_image(image)
    masks: dict[int, np.ndarray] = {}
    scores: dict[int, float] = {}
    for obj in parsed.objects:
        pred = predictor.predict_full(
            point_coords=obj.points_array(), point_labels=obj.labels_array(),
            box=obj.box_array(), mask_input=mask_logits if obj.mask else None,
            multimask_output=parsed.multimask,
        )  # fmt: skip
        best = int(pred.ious[0].argmax())
        masks[obj.id] = pred.masks[0, best].cpu().numpy().astype(bool)
        scores[obj.id] = float(pred.ious[0, best])
    names = {o.id: o.name for o in parsed.objects if o.name}
    labels: dict[int, str] = {}
    detections = []
    if parsed.text is not None:
        found = segment_text(
            predictor, image, parsed.text, ctx.models.detector(),
            box_threshold=parsed.box_threshold, text_threshold=parsed.text_threshold,
            max_objects=parsed.max_objects,
            first_id=max((o.id for o in parsed.objects), default=0) + 1, image_is_set=True,
        )  # fmt: skip
        text_names = object_names([o.label for o in found], names.values())
        for text_obj, name in zip(found, text_names, strict=True):
            masks[text_obj.obj_id], scores[text_obj.obj_id] = text_obj.mask, text_obj.mask_iou
            names[text_obj.obj_id], labels[text_obj.obj_id] = name, text_obj.label
        detections = detected(
            [o.obj_id for o in found], text_names, [o.label for o in found],
            np.asarray([o.box for o in found], np.float32).reshape(-1, 4),
            [o.score for o in found],
        )  # fmt: skip
    result = ImageResult(
        width=w, height=h, objects=object_masks(masks, scores, names, labels),
        detections=detections, overlay_png=None, id_mask_png=None,
    )  # fmt: skip
    if "overlay" in parsed.outputs:
        clicks = [
            (float(x), float(y), int(label))
            for o in parsed.objects
            for (x, y), label in zip(o.points or [], o.labels or [1] * len(o.points or []))
        ]
        result.overlay_png = _png_base64(draw_overlay(image, masks, points=clicks))
    if "id_mask" in parsed.outputs:
        result.id_mask_png = _png_base64(id_mask(masks, (h, w), scores=scores))
    return result


def _check_inside(
    points: list[tuple[float, float]] | None,
    box: tuple[float, float, float, float] | None,
    w: int,
    h: int,
    field: str,
) -> None:
    for k, (x, y) in enumerate(points or []):
        if x > w or y > h:
            raise with_field(
                InvalidPromptError(
                    f"{field}.points[{k}] ({x:g}, {y:g}) is outside the {w}x{h} image"
                ),
                f"{field}.points[{k}]",
            )
    if box is not None and (box[2] > w or box[3] > h):
        raise with_field(
            InvalidPromptError(f"{field}.box {list(box)} is outside the {w}x{h} image"),
            f"{field}.box",
        )


def _png_base64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
