"""`POST /v1/images:segment`: masks for prompted objects on one uploaded image.

The route translates the form into a pipeline `ImageRequest` (object `i` of the JSON is
`prompts[i]` in error fields) and the result into the API's JSON; `masklet.pipelines.image`
does the work, with the server's `Limits`.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, Request, UploadFile
from PIL import Image

from masklet.errors import InvalidPromptError
from masklet.pipelines.image import ImageResult as PipelineResult
from masklet.pipelines.requests import EverythingQuery, ImageRequest, TextQuery
from masklet.server.context import Context, Owner, ServerContext
from masklet.server.errors import ApiError, with_field
from masklet.server.jobs import Job
from masklet.server.routes.common import ERROR_RESPONSES
from masklet.server.routes.text import check_text, detected
from masklet.server.routes.text import router as text_router
from masklet.server.schemas import ImagePrompts, ImageResult, api_objects
from masklet.server.uploads import parse_json_field, read_uploaded, save_upload, scratch_file

router = APIRouter(tags=["images"])

PROMPTS_HELP = (
    'JSON: {"objects": [{"id": 1, "points": [[x, y]], "labels": [1], "box": [x1, y1, x2, y2], '
    '"mask": false}], "multimask": false, "outputs": ["overlay", "id_mask"], '
    '"text": "a dog. a red car.", "box_threshold": 0.35, "text_threshold": 0.25, '
    '"max_objects": null} (objects, text, or both). Errors about objects[i] name it prompts[i].'
)


@router.post(
    "/v1/images:segment", response_model=ImageResult,
    responses=ERROR_RESPONSES | text_router.responses, summary="Segment objects in an image",
)  # fmt: skip
async def segment_image(
    request: Request,
    image: Annotated[UploadFile, File(description="JPEG, PNG or WebP (read by content)")],
    prompts: Annotated[str, Form(description=PROMPTS_HELP)],
    ctx: Context,
    owner: Owner,
    mask: Annotated[
        UploadFile | None, File(description="rough mask for the object with mask=true")
    ] = None,
) -> ImageResult:
    """Per-object masks (COCO RLE), scores (predicted IoU), boxes and colours. `outputs` adds a
    coloured overlay and / or an id mask (DAVIS palette PNG, pixel value = object id) as base64
    PNG in the JSON. A `text` prompt adds one object per detected box (ids after the largest
    given id, names `{phrase}_{k}`, records labelled with the phrase); 503 when the detector is
    unavailable. Where objects overlap, the higher score keeps the pixel in every output."""
    parsed = _parse_prompts(prompts, ctx, mask_sent=mask is not None)
    limit = ctx.settings.max_upload_bytes
    with (
        scratch_file(ctx.data_dir / "tmp") as image_path,
        scratch_file(ctx.data_dir / "tmp") as mask_path,
    ):
        await save_upload(image, image_path, limit, "image")
        if mask is not None:
            await save_upload(mask, mask_path, limit, "mask")
        mask_file = mask_path if mask is not None else None
        return await ctx.pool.run_job(
            lambda job: _segment(ctx, image_path, mask_file, parsed, job),
            disconnected=request.is_disconnected,
            owner=owner,
        )


def _parse_prompts(text: str, ctx: ServerContext, mask_sent: bool) -> ImagePrompts:
    """The `prompts` form field, checked; the uploaded mask goes to the object marked
    `"mask": true`, or to the only object."""
    try:
        parsed = parse_json_field(text, ImagePrompts, "prompts", ctx.limits)
    except ApiError as error:  # one naming for the form: objects[i] is the request's prompts[i]
        error.field = _object_field(error.field)
        error.message = error.message.replace("prompts.objects[", "prompts[")
        raise
    if parsed.text is not None:
        check_text(parsed.text, "prompts.text")
    marked = any(o.mask for o in parsed.objects)
    if marked and not mask_sent:
        raise with_field(
            InvalidPromptError("an object has mask=true but no mask file was sent"), "mask"
        )
    if mask_sent and not marked:
        if len(parsed.objects) != 1:
            raise with_field(
                InvalidPromptError('a mask file was sent: mark its object with "mask": true'),
                "prompts.objects",
            )
        parsed.objects[0].mask = True
    return parsed


def _segment(
    ctx: ServerContext,
    image_path: Path,
    mask_path: Path | None,
    parsed: ImagePrompts,
    job: Job,
) -> ImageResult:
    from masklet.io.images import read_mask
    from masklet.pipelines.image import prepare_image, segment_image

    mask = None
    if mask_path is not None:
        mask = read_uploaded(read_mask, mask_path, "the uploaded mask", "mask")
    request = ImageRequest(
        image=image_path,
        prompts=[
            o.prompt(frame=0, obj_id=o.id, name=o.name or "", where=f"prompts[{i}]",
                     mask=mask if o.mask else None)
            for i, o in enumerate(parsed.objects)
        ],  # fmt: skip
        text=None if parsed.text is None else TextQuery(
            parsed.text, parsed.box_threshold, parsed.text_threshold, parsed.max_objects
        ),
        everything=None if parsed.everything is None else EverythingQuery(
            **parsed.everything.model_dump()
        ),
        multimask=parsed.multimask,
        limits=ctx.limits,
    )  # fmt: skip
    prepared = read_uploaded(
        lambda _: prepare_image(request), image_path, "the uploaded image", "image"
    )
    detector = ctx.models.detector() if request.text is not None else None
    result = segment_image(prepared, ctx.models.model(), detector=detector, cancel=job)
    return _response(result, parsed.outputs)


def _object_field(field: str | None) -> str | None:
    return None if field is None else field.replace("prompts.objects[", "prompts[")


def _response(result: PipelineResult, outputs: Sequence[str]) -> ImageResult:
    record = result.record
    detections = detected(
        [d.obj_id for d in result.detections], [d.name for d in result.detections],
        [d.label for d in result.detections],
        np.asarray([d.box for d in result.detections], np.float32).reshape(-1, 4),
        [d.score for d in result.detections],
    )  # fmt: skip
    return ImageResult(
        width=record.width, height=record.height, objects=api_objects(record),
        detections=detections,
        overlay_png=_png_base64(result.overlay()) if "overlay" in outputs else None,
        id_mask_png=_png_base64(record.id_map(), palette=True) if "id_mask" in outputs else None,
    )  # fmt: skip


def _png_base64(array: np.ndarray, palette: bool = False) -> str:
    from masklet.io.masks import palette_png_bytes

    data = palette_png_bytes(array) if palette else _png_bytes(array)
    return base64.b64encode(data).decode("ascii")


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()
