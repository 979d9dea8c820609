"""`POST /predictions`: the Replicate / Cog call of `meta/sam-2-video`, served locally.

Takes the same input fields with the same defaults and answers a Cog-style prediction whose
`output` is a list of file URLs served by this app: one MP4 (`output_video=true`) or one image
per output frame. `input_video` is a `data:` URI in JSON, or a file in a multipart form
(other fields as form fields); URLs are refused, the server never fetches anything.
Differences: objects keep their own colours in "highlighted" output, and frames before the
first click are tracked too (backward), where Replicate's output leaves them empty.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from masklet.errors import InvalidInputError, MaskletError
from masklet.pipelines.limits import LimitExceededError
from masklet.server.context import Context, Owner, ServerContext
from masklet.server.errors import ApiError, PayloadTooLargeError, validation_error, with_field
from masklet.server.jobs import Job
from masklet.server.routes.common import ERROR_RESPONSES
from masklet.server.uploads import save_upload

if TYPE_CHECKING:
    from masklet.pipelines.requests import VideoOutputs
    from masklet.prompts import ParsedPrompts

router = APIRouter(tags=["replicate"], responses=ERROR_RESPONSES)
VIDEO_NAME = "input.video"
CLICK_FIELDS = ("click_coordinates", "click_labels", "click_frames", "click_object_ids")
_DATA_URI = re.compile(r"data:[\w.+/-]*(?:;[\w=.+-]+)*;base64,", re.ASCII)


class PredictionInput(BaseModel):
    """The `meta/sam-2-video` inputs, with its defaults."""

    model_config = ConfigDict(extra="forbid")

    input_video: str = Field(description="data: URI (JSON) or an uploaded file (multipart)")
    click_coordinates: str = Field(description="'[x,y],[x,y],...'; sets the number of clicks")
    click_labels: str = Field("1", description="'1,1,0,...' (1 include, 0 exclude)")
    click_frames: str = Field("0", description="'0,0,150,...' frame of each click")
    click_object_ids: str = Field("", description="'person,dog,...' object of each click")
    mask_type: Literal["binary", "highlighted", "greenscreen"] = "binary"
    output_video: bool = Field(False, description="an MP4 (true) or an image per frame")
    video_fps: int = Field(30, ge=1, le=60, description="frame rate of the MP4")
    output_format: Literal["webp", "jpg", "png"] = "webp"
    output_quality: int = Field(80, ge=0, le=100, description="JPEG / WebP quality")
    output_frame_interval: int = Field(1, ge=1, description="output every Nth frame")


class PredictionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # Cog clients also send id, webhook, ...

    input: PredictionInput
    id: str | None = None


class PredictionResponse(BaseModel):
    id: str
    status: Literal["succeeded"]
    input: dict[str, Any]
    output: list[str]
    error: None = None
    logs: str
    created_at: str
    completed_at: str
    metrics: dict[str, float]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


async def _read_request(request: Request, video_path: Path, max_bytes: int) -> PredictionRequest:
    """Parse a JSON or multipart prediction request; the video lands at `video_path`."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        fields: dict[str, Any] = {}
        for key, value in form.multi_items():
            if key == "input_video" and isinstance(value, UploadFile):
                await save_upload(value, video_path, max_bytes, "input_video")
                fields[key] = "upload"
            elif isinstance(value, str):
                fields[key] = value
        data: Any = {"input": fields}
    else:
        try:
            data = await request.json()
        except ValueError:
            raise ApiError(
                422, "invalid_request", 'expected JSON {"input": {...}} or a multipart form',
                field="body",
            ) from None  # fmt: skip
    try:
        parsed = PredictionRequest.model_validate(data)
    except ValidationError as error:
        raise validation_error(error) from None
    if not video_path.exists():
        _decode_data_uri(parsed.input.input_video, video_path, max_bytes)
    return parsed


def _decode_data_uri(value: str, path: Path, max_bytes: int) -> None:
    match = _DATA_URI.match(value)
    if match is None:
        what = "a URL" if re.match(r"[a-z]+://", value) else "not a data: URI"
        raise with_field(
            InvalidInputError(
                f"input_video is {what}: this server never fetches files; send the video as a "
                "'data:video/mp4;base64,...' URI or upload it in a multipart form"
            ),
            "input.input_video",
        )
    encoded = value[match.end() :]
    if len(encoded) * 3 // 4 > max_bytes:
        raise PayloadTooLargeError("input_video is larger than this server's upload limit")
    try:
        path.write_bytes(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as error:
        raise with_field(
            InvalidInputError(f"input_video: invalid base64 data ({error})"), "input.input_video"
        ) from None


PATH = "/predictions"
_REF = "#/components/schemas/{model}"
_REQUEST_SCHEMA = PredictionRequest.model_json_schema(ref_template=_REF)
# added to the OpenAPI components by the app (masklet.server.docs), so every $ref resolves
SCHEMAS: dict[str, dict[str, Any]] = {
    **_REQUEST_SCHEMA.pop("$defs", {}),
    PredictionRequest.__name__: _REQUEST_SCHEMA,
}


@router.post(
    PATH, response_model=PredictionResponse,
    openapi_extra={"requestBody": {"content": {
        "application/json": {"schema": {"$ref": _REF.format(model=PredictionRequest.__name__)}},
        "multipart/form-data": {"schema": {"type": "object", "description": (
            "the same input fields as form fields; input_video as a file")}},
    }, "required": True}},
)  # fmt: skip
async def predict(
    request: Request,
    ctx: Context,
    owner: Owner,
) -> PredictionResponse:
    """Run `meta/sam-2-video` on an uploaded video; outputs are links served by this app."""
    created = _now()
    began = time.monotonic()
    directory = ctx.files.new_directory()
    try:
        parsed = await _read_request(request, directory / VIDEO_NAME, ctx.settings.max_upload_bytes)
        outputs = await ctx.pool.run_job(
            lambda job: _run(ctx, directory, parsed.input, job),
            disconnected=request.is_disconnected,
            owner=owner,
        )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    urls = [ctx.link(ctx.files.register(path, owned_dir=directory)) for path in outputs]
    shown = parsed.input.model_dump()
    shown["input_video"] = "(uploaded)"
    return PredictionResponse(
        id=parsed.id or secrets.token_hex(12), status="succeeded", input=shown, output=urls,
        logs=f"tracked {len(outputs)} output(s)", created_at=created, completed_at=_now(),
        metrics={"predict_time": round(time.monotonic() - began, 3)},
    )  # fmt: skip


def _run(ctx: ServerContext, directory: Path, inputs: PredictionInput, job: Job) -> list[Path]:
    """The prediction as a pipeline video request: clicks -> objects, tracked both ways from
    the first clicked frame, written as one MP4 or one image per output frame."""
    from masklet.pipelines.requests import VideoRequest
    from masklet.pipelines.video import prepare_video, track_video
    from masklet.server.sessions import sniff_video

    video_path = directory / VIDEO_NAME
    clicks = _clicks(inputs)
    try:
        sniff_video(video_path)
        request = VideoRequest(
            source=video_path, prompts=clicks.prompts, names=clicks.names, direction="both",
            outputs=_outputs(directory, inputs), limits=ctx.limits,
        )  # fmt: skip
        prepared = prepare_video(request)
    except MaskletError as error:
        raise _tag(error, video_path) from None
    try:
        summary = track_video(prepared, ctx.models.video_predictor(), cancel=job)
    except MaskletError as error:
        raise _tag(error, video_path) from None
    finally:
        prepared.close()
    return summary.outputs


def _clicks(inputs: PredictionInput) -> ParsedPrompts:
    """The click strings as prompts; an error names the `input.click_*` field it is about."""
    from masklet.prompts import parse_click_strings

    try:
        return parse_click_strings(
            inputs.click_coordinates, inputs.click_labels, inputs.click_frames,
            inputs.click_object_ids or None,
        )  # fmt: skip
    except MaskletError as error:
        name = next((n for n in CLICK_FIELDS if str(error).startswith(n)), CLICK_FIELDS[0])
        raise with_field(error, f"input.{error.field or name}") from None


def _outputs(directory: Path, inputs: PredictionInput) -> VideoOutputs:
    """One overlay MP4 (`output_video`) or a folder of frames, in the prediction's folder."""
    from masklet.pipelines.requests import VideoOutputs

    return VideoOutputs(
        overlay=directory / "output.mp4" if inputs.output_video else None,
        frames_dir=None if inputs.output_video else directory / "frames",
        frame_format=inputs.output_format, frame_quality=max(1, inputs.output_quality),
        mask_type=inputs.mask_type, output_frame_interval=inputs.output_frame_interval,
        overlay_fps=float(inputs.video_fps) if inputs.output_video else None,
        keep_audio=False,
    )  # fmt: skip


def _tag(error: MaskletError, video_path: Path) -> MaskletError:
    """The error with the server's path hidden and the input field it concerns."""
    message = str(error).replace(str(video_path), "input_video")
    field = error.field or "input_video"
    if field in ("video", "image", "prompts"):
        field = "input_video"
    tagged = type(error)(message) if not isinstance(error, LimitExceededError) else error
    return with_field(tagged, field if field.startswith("input.") else f"input.{field}")
