"""Prompts, propagation (Server-Sent Events), cancel, clear, remove object, export."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import APIRouter, Body
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from masklet.errors import InvalidInputError, InvalidPromptError, MaskletError
from masklet.pipelines.validation import check_prompts
from masklet.pipelines.video import planned_frames, propagate_records
from masklet.server.context import Context, Owner, ServerContext
from masklet.server.errors import with_field
from masklet.server.exports import export_session, publish_export
from masklet.server.jobs import Job, JobCancelledError
from masklet.server.persist import prompt_entry
from masklet.server.routes.common import ERROR_RESPONSES
from masklet.server.routes.sessions import SessionId
from masklet.server.schemas import (
    ClearRequest,
    ExportRequest,
    ExportResult,
    FrameEvent,
    FrameMasks,
    FramePrompt,
    PropagateRequest,
)
from masklet.server.sessions import ServerSession

if TYPE_CHECKING:
    from masklet.video.predictor import VideoPredictor

log = logging.getLogger("masklet.server")
router = APIRouter(tags=["video sessions"], responses=ERROR_RESPONSES)
T = TypeVar("T")


async def run_locked(
    ctx: ServerContext, session: ServerSession, work: Callable[[], T], job: Job | None = None
) -> T:
    """`work()` on the worker pool while holding the session's lock."""

    def locked() -> T:
        session.acquire()
        session.job = job
        try:
            if job is not None:
                job.check()  # cancelled while it waited (shutdown)
            return work()
        finally:
            session.job = None
            session.lock.release()

    if job is not None:
        ctx.pool.track(job)  # a shutdown cancels it
    try:
        return await ctx.pool.run(locked, session.owner)
    finally:
        if job is not None:
            ctx.pool.untrack(job)


def _check_frame(session: ServerSession, frame: int, field: str = "frame") -> None:
    if frame >= session.num_frames:
        raise with_field(
            InvalidPromptError(
                f"{field} {frame} is outside the video, which has {session.num_frames} frames "
                f"(0..{session.num_frames - 1})"
            ),
            field,
        )


@router.post("/v1/sessions/{session_id}/prompts", response_model=FrameMasks)
async def add_prompt(
    body: FramePrompt,
    session_id: SessionId,
    ctx: Context,
    owner: Owner,
) -> FrameMasks:
    """Clicks and / or a box for one object on one frame; returns that frame's masks of every
    object at once. A prompt on a tracked frame corrects the track (propagate again)."""
    session = ctx.sessions.get(session_id, owner)
    _check_frame(session, body.frame)
    if body.points is None and body.box is None:
        raise with_field(InvalidPromptError("give points (with labels) or a box, or both"), "body")
    prompt = body.prompt(
        frame=body.frame, obj_id=body.object_id, name=body.name or "", where="body"
    )
    check_prompts(
        [prompt], width=session.frames.width, height=session.frames.height,
        num_frames=session.num_frames, limits=ctx.limits, surface="frame",
    )  # fmt: skip
    predictor = ctx.models.video_predictor()

    def work() -> FrameMasks:
        if body.name:
            predictor.set_object_name(session.video, body.object_id, body.name)
        frame, ids, logits = predictor.add_new_points_or_box(
            session.video, body.frame, body.object_id, points=prompt.points,
            labels=prompt.labels, clear_old_points=body.clear_old_points, box=prompt.box,
        )  # fmt: skip
        session.journal(prompt_entry(
            body.frame, body.object_id, prompt.points, prompt.labels, prompt.box,
            clear_old_points=body.clear_old_points, name=body.name or "",
        ))  # fmt: skip
        objects = session.store_logits(frame, ids, logits)
        return FrameMasks(frame=frame, time=session.frame_time(frame), objects=objects)

    return await run_locked(ctx, session, work)


def planned_total(session: ServerSession, body: PropagateRequest) -> tuple[int, int]:
    """(start frame, frames the propagation will visit), as `tracking.track` orders them."""
    prompted = [f for t in session.video.objects.values() for f in t.prompted_frames()]
    if not prompted:
        raise with_field(
            InvalidPromptError("add a prompt (POST .../prompts) before propagating"), "prompts"
        )
    start = body.start_frame if body.start_frame is not None else min(prompted)
    _check_frame(session, start, "start_frame")
    total = len(planned_frames(session.num_frames, start, body.max_frames, body.direction))
    return start, total


class _CancellingStream(StreamingResponse):
    """Cancels its job however the response ends: finished, failed or client gone."""

    def __init__(self, content: AsyncIterator[str], job: Job) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.job = job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.cancel()


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.post(
    "/v1/sessions/{session_id}/propagate",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": (
        "Server-Sent Events: `frame` (data: FrameEvent) per tracked frame, then one of `done`, "
        "`cancelled` or `error` ({code, message})"
    )}},
)  # fmt: skip
async def propagate(
    body: Annotated[PropagateRequest, Body(default_factory=PropagateRequest)],
    session_id: SessionId,
    ctx: Context,
    owner: Owner,
) -> StreamingResponse:
    """Track every object through the video; each frame's masks stream as they are computed.
    Stops on `POST .../cancel` or when the client disconnects."""
    session = ctx.sessions.get(session_id, owner)
    start, total = planned_total(session, body)
    predictor = ctx.models.video_predictor()
    job = Job()
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[str | None] = asyncio.Queue()

    def emit(item: str | None) -> None:
        loop.call_soon_threadsafe(events.put_nowait, item)

    def tracked() -> None:
        try:
            _Propagation(predictor, session, body, start, total, job, emit).run()
        finally:
            ctx.pool.untrack(job)

    ctx.pool.track(job)  # a shutdown cancels it
    try:
        ctx.pool.submit(tracked, session.owner)  # BusyError (429) here, before any byte is streamed
    except BaseException:
        ctx.pool.untrack(job)
        raise

    async def stream() -> AsyncIterator[str]:
        yield sse("start", {"total": total, "start": start, "direction": body.direction})
        while (item := await events.get()) is not None:
            yield item

    return _CancellingStream(stream(), job)


@dataclass
class _Propagation:
    """The propagation job: each frame's records kept and sent as a `frame` event, then one
    `done`, `cancelled` or `error` event, then None (the end of the stream)."""

    predictor: VideoPredictor
    session: ServerSession
    body: PropagateRequest
    start: int
    total: int  # frames it will visit
    job: Job
    emit: Callable[[str | None], None]

    def run(self) -> None:
        session = self.session
        try:
            self.job.check()  # the client may have left while the job waited for a worker
            session.acquire()
        except (JobCancelledError, MaskletError) as error:
            self.emit(_end_event(error, 0))
            self.emit(None)
            return
        session.job = self.job
        try:
            self.emit(self._track())
        finally:
            session.job = None
            session.lock.release()
            self.emit(None)

    def _track(self) -> str:
        """Track (holding the session), emitting a `frame` event per frame; returns the
        closing `done`, `cancelled` or `error` event."""
        done, began = 0, time.monotonic()
        try:
            records = propagate_records(
                self.predictor, self.session.video, direction=self.body.direction,
                start=self.start, max_frames=self.body.max_frames, cancel=self.job,
            )  # fmt: skip
            for record in records:
                objects = self.session.store(record)
                done += 1
                event = FrameEvent(
                    frame=record.frame_idx, time=record.time, done=done, total=self.total,
                    objects=objects,
                )  # fmt: skip
                self.emit(sse("frame", event.model_dump(mode="json")))
        except (JobCancelledError, MaskletError) as error:
            return _end_event(error, done)
        except Exception:  # the stream has started: report in-band, keep the server up
            log.exception("propagation failed")
            return sse("error", {"code": "internal", "message": "propagation failed"})
        return sse("done", {"frames": done, "seconds": round(time.monotonic() - began, 3)})


def _end_event(error: BaseException, done: int) -> str:
    if isinstance(error, JobCancelledError):
        return sse("cancelled", {"frames": done})
    return sse("error", {"code": type(error).__name__, "message": str(error)})


@router.post("/v1/sessions/{session_id}/cancel", status_code=202)
def cancel(
    session_id: SessionId,
    ctx: Context,
    owner: Owner,
) -> dict[str, bool]:
    """Stop the running propagation or export (it ends after the current frame)."""
    session = ctx.sessions.get(session_id, owner)
    job = session.job
    if job is not None:
        job.cancel()
    return {"cancelled": job is not None}


@router.post("/v1/sessions/{session_id}/clear", response_model=FrameMasks)
async def clear(
    body: ClearRequest,
    session_id: SessionId,
    ctx: Context,
    owner: Owner,
) -> FrameMasks:
    """Remove one object's prompts on one frame; returns the frame's masks after it."""
    session = ctx.sessions.get(session_id, owner)
    _check_frame(session, body.frame)
    predictor = ctx.models.video_predictor()

    def work() -> FrameMasks:
        out = predictor.clear_all_prompts_in_frame(session.video, body.frame, body.object_id)
        assert out is not None  # need_output=True always returns the frame's masks
        session.journal({"op": "clear", "frame": body.frame, "obj_id": body.object_id})
        frame, ids, logits = out
        objects = session.store_logits(frame, ids, logits)
        return FrameMasks(frame=frame, time=session.frame_time(frame), objects=objects)

    return await run_locked(ctx, session, work)


@router.delete("/v1/sessions/{session_id}/objects/{object_id}", response_model=list[FrameMasks])
async def remove_object(
    object_id: int,
    session_id: SessionId,
    ctx: Context,
    owner: Owner,
) -> list[FrameMasks]:
    """Remove an object everywhere; returns the updated masks of the frames it had prompts on."""
    session = ctx.sessions.get(session_id, owner)
    predictor = ctx.models.video_predictor()

    def work() -> list[FrameMasks]:
        ids, updated = predictor.remove_object(session.video, object_id, strict=True)
        session.journal({"op": "remove", "obj_id": object_id})
        session.forget_object(object_id)
        return [
            FrameMasks(
                frame=f, time=session.frame_time(f), objects=session.store_logits(f, ids, logits)
            )
            for f, logits in updated
        ]

    return await run_locked(ctx, session, work)


@router.post("/v1/sessions/{session_id}/export", response_model=ExportResult)
async def export(
    body: ExportRequest,
    session_id: SessionId,
    ctx: Context,
    owner: Owner,
) -> ExportResult:
    """Write the session's masks as an overlay MP4, a zip of id PNGs or COCO JSON; returns a
    download link (valid while the session lives, across restarts)."""
    session = ctx.sessions.get(session_id, owner)
    if not any(session.masks.values()):
        raise with_field(
            InvalidInputError("nothing to export yet: add prompts and propagate first"), "format"
        )
    job = Job()

    def work() -> str:
        path = export_session(session, body.format, body.rgb_colors(), body.alpha, job)
        return publish_export(ctx.files, session, path)  # a link that survives a restart

    link = await run_locked(ctx, session, work, job)
    return ExportResult(format=body.format, url=ctx.link(link), frames=session.num_frames)
