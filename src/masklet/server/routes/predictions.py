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
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from masklet.errors import InvalidInputError, MaskletError
from masklet.server.context import Context, Owner, ServerContext
from masklet.server.errors import ApiError, PayloadTooLargeError, validation_error, with_field
from masklet.server.routes.common import ERROR_RESPONSES
from masklet.server.uploads import save_upload

router = APIRouter(tags=["replicate"], responses=ERROR_RESPONSES)
VIDEO_NAME = "input.video"
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


@router.post(
    "/predictions", response_model=PredictionResponse,
    openapi_extra={"requestBody": {"content": {
        "application/json": {"schema": PredictionRequest.model_json_schema(
            ref_template="#/components/schemas/{model}")},
        "multipart/form-data": {"schema": {"type": "object", "description": (
            "the same input fields as form fields; input_video as a file")}},
    }, "required": True}},
)  # fmt: skip
async def predict(
    request: Request,
    ctx: Context,
    _owner: Owner,
) -> PredictionResponse:
    """Run `meta/sam-2-video` on an uploaded video; outputs are links served by this app."""
    created = _now()
    began = time.monotonic()
    directory = ctx.files.new_directory()
    try:
        parsed = await _read_request(request, directory / VIDEO_NAME, ctx.settings.max_upload_bytes)
        outputs = await ctx.pool.run(lambda: _run(ctx, directory, parsed.input))
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    base = str(request.base_url).rstrip("/")
    urls = [base + ctx.files.register(path, owned_dir=directory) for path in outputs]
    shown = parsed.input.model_dump()
    shown["input_video"] = "(uploaded)"
    return PredictionResponse(
        id=parsed.id or secrets.token_hex(12), status="succeeded", input=shown, output=urls,
        logs=f"tracked {len(outputs)} output(s)", created_at=created, completed_at=_now(),
        metrics={"predict_time": round(time.monotonic() - began, 3)},
    )  # fmt: skip


def _run(ctx: ServerContext, directory: Path, inputs: PredictionInput) -> list[Path]:
    from masklet.io.images import write_image
    from masklet.io.overlay import render_mask_type
    from masklet.io.sinks import OverlayVideoSink
    from masklet.prompts import parse_click_strings
    from masklet.server.sessions import sniff_video
    from masklet.video.frames import VideoFileSource
    from masklet.video.tracking import apply_prompts, track

    video_path = directory / VIDEO_NAME
    try:
        parsed = parse_click_strings(
            inputs.click_coordinates, inputs.click_labels, inputs.click_frames,
            inputs.click_object_ids or None,
        )  # fmt: skip
    except MaskletError as error:
        raise _tag(error, video_path) from None
    try:
        sniff_video(video_path)
        source = VideoFileSource(video_path)
    except MaskletError as error:
        raise _tag(error, video_path, "input.input_video") from None
    try:
        n = len(source)
        if n > ctx.settings.max_video_frames:
            raise PayloadTooLargeError(
                f"the video has {n} frames; this server accepts at most "
                f"{ctx.settings.max_video_frames}"
            )
        for prompt in parsed:
            if prompt.frame >= n:
                raise with_field(
                    InvalidInputError(
                        f"click_frames: frame {prompt.frame} is beyond the video's {n} frames "
                        f"(0..{n - 1})"
                    ),
                    "input.click_frames",
                )
        predictor = ctx.models.video_predictor()
        session = predictor.init_state(source)
        try:
            apply_prompts(predictor, session, parsed.prompts, parsed.names)
        except MaskletError as error:
            raise _tag(error, video_path) from None
        start = min(p.frame for p in parsed)
        interval = inputs.output_frame_interval
        results = track(predictor, session, "both", start)
        if inputs.output_video:
            # the sink writes at fps / interval: this makes the MP4 play at video_fps
            source.fps = float(inputs.video_fps * interval)
            out = directory / "output.mp4"
            with OverlayVideoSink(
                out, source, inputs.mask_type, interval, keep_audio=False
            ) as sink:
                for result in results:
                    sink.write(result)
            return [out]
        written: dict[int, Path] = {}
        ext = inputs.output_format
        for result in results:
            if result.frame_idx % interval:
                continue
            image = render_mask_type(source.get(result.frame_idx), result.masks(), inputs.mask_type)
            path = directory / f"frame_{result.frame_idx:05d}.{ext}"
            write_image(path, image, quality=max(1, inputs.output_quality))
            written[result.frame_idx] = path
        return [written[i] for i in sorted(written)]
    finally:
        source.close()


def _tag(error: MaskletError, video_path: Path, field: str | None = None) -> MaskletError:
    """The error with the server's path hidden and the input field it concerns."""
    message = str(error).replace(str(video_path), "input_video")
    if field is None:
        field = "input.click_coordinates"
        for name in ("click_labels", "click_frames", "click_object_ids"):
            if message.startswith(name):
                field = f"input.{name}"
    return with_field(type(error)(message), field)
