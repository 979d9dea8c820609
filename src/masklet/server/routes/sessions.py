"""Video sessions: create from an upload, describe, serve frames, rename / remove objects,
delete."""

from __future__ import annotations

import io
import shutil
import time
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Path, Response, UploadFile
from PIL import Image
from starlette.concurrency import run_in_threadpool

from masklet.errors import InvalidInputError
from masklet.pipelines.limits import LimitExceededError
from masklet.server.context import Context, Owner, ServerContext
from masklet.server.errors import with_field
from masklet.server.routes.common import ERROR_RESPONSES
from masklet.server.schemas import FrameMasks, ObjectInfo, RenameRequest, SessionInfo
from masklet.server.sessions import UPLOAD_NAME, ServerSession
from masklet.server.uploads import save_upload

router = APIRouter(tags=["video sessions"], responses=ERROR_RESPONSES)
JPEG_QUALITY = 90
SessionId = Annotated[str, Path(description="id returned by POST /v1/sessions")]
FrameIndex = Annotated[int, Path(ge=0, description="frame index, 0..num_frames - 1")]


def session_info(ctx: ServerContext, session: ServerSession) -> SessionInfo:
    idle = time.monotonic() - session.last_access
    return SessionInfo(
        id=session.id,
        num_frames=session.num_frames,
        fps=session.frames.fps,
        width=session.frames.width,
        height=session.frames.height,
        objects=[
            ObjectInfo(id=i, name=session.video.names.get(i, f"object_{i}"))
            for i in session.video.obj_ids
        ],  # fmt: skip
        frames_with_masks=sum(1 for records in session.masks.values() if records),
        expires_in_seconds=max(0.0, ctx.settings.session_ttl_seconds - idle),
        busy=session.lock.locked(),
    )


def check_index(session: ServerSession, index: int) -> None:
    """422 for a frame index outside the video."""
    if not 0 <= index < session.num_frames:
        raise with_field(
            InvalidInputError(f"frame {index} is outside the video (0..{session.num_frames - 1})"),
            "index",
        )


@router.post("/v1/sessions", response_model=SessionInfo, status_code=201)
async def create_session(
    video: Annotated[UploadFile, File(description="MP4/MOV/MKV/WebM/AVI (read by content)")],
    ctx: Context,
    owner: Owner,
) -> SessionInfo:
    """Upload a video and open a tracking session on it. Only this API key can see it."""
    session_id, directory = ctx.sessions.new_directory(owner)
    try:
        await save_upload(video, directory / UPLOAD_NAME, ctx.settings.max_upload_bytes, "video")
    except BaseException:
        ctx.sessions.release(session_id)
        shutil.rmtree(directory, ignore_errors=True)
        raise

    def open_session() -> ServerSession:
        try:
            return ctx.sessions.open(
                session_id, owner, directory,
                lambda path: ctx.models.video_predictor().init_state(path),
                ctx.limits,
            )  # fmt: skip
        except LimitExceededError:
            raise  # 413 naming the server flag
        except InvalidInputError as error:
            message = str(error).replace(str(directory / UPLOAD_NAME), "the uploaded video")
            raise with_field(InvalidInputError(message), "video") from None

    session = await run_in_threadpool(open_session)
    return session_info(ctx, session)


@router.get("/v1/sessions/{session_id}", response_model=SessionInfo)
def get_session(
    session_id: SessionId,
    ctx: Context,
    owner: Owner,
) -> SessionInfo:
    """Frames, frame rate, size and objects of a session."""
    return session_info(ctx, ctx.sessions.get(session_id, owner))


@router.get(
    "/v1/sessions/{session_id}/frames/{index}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "the frame as JPEG"}},
)
def get_frame(
    index: FrameIndex,
    session_id: SessionId,
    ctx: Context,
    owner: Owner,
) -> Response:
    """One frame as JPEG, decoded on demand (runs beside model work, not behind it)."""
    session = ctx.sessions.get(session_id, owner)
    check_index(session, index)
    with session.frames_lock:
        frame = session.frames.get(index)  # [H, W, 3] uint8
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return Response(
        buffer.getvalue(),
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=3600"},
    )


@router.get("/v1/sessions/{session_id}/masks/{index}", response_model=FrameMasks)
def get_masks(
    index: FrameIndex,
    session_id: SessionId,
    ctx: Context,
    owner: Owner,
) -> FrameMasks:
    """The latest masks recorded on a frame (empty when none were computed there)."""
    session = ctx.sessions.get(session_id, owner)
    check_index(session, index)
    records = session.masks.get(index, {})
    objects = [records[i] for i in sorted(records)]
    return FrameMasks(frame=index, time=session.frame_time(index), objects=objects)


@router.patch("/v1/sessions/{session_id}/objects/{object_id}", response_model=ObjectInfo)
def rename_object(
    object_id: int,
    body: RenameRequest,
    session_id: SessionId,
    ctx: Context,
    owner: Owner,
) -> ObjectInfo:
    """Rename an object (names appear in exports)."""
    session = ctx.sessions.get(session_id, owner)
    from masklet.errors import SessionNotFoundError

    if object_id not in session.video.objects:
        raise SessionNotFoundError(
            f"unknown object id {object_id}; this session has objects {session.video.obj_ids}"
        )
    ctx.models.video_predictor().set_object_name(session.video, object_id, body.name)
    session.journal({"op": "name", "obj_id": object_id, "name": body.name})
    return ObjectInfo(id=object_id, name=body.name)


@router.delete("/v1/sessions/{session_id}", status_code=204, response_class=Response)
async def delete_session(
    session_id: SessionId,
    ctx: Context,
    owner: Owner,
) -> Response:
    """Stop the session's work and delete it with all its files."""
    await run_in_threadpool(ctx.sessions.delete, session_id, owner)
    return Response(status_code=204)
