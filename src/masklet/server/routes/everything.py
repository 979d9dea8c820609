"""Segment everything on a video frame: `POST /v1/sessions/{id}/everything`.

The pipeline's `find_regions` finds the regions (the same as on an image); each becomes a new
object of the session prompted with its mask, named `region_{k}`, so it is tracked, renamed,
corrected and removed like a clicked object. Images take `"everything"` in
`POST /v1/images:segment` instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from masklet.errors import MaskletError
from masklet.io.masks import decode_rle
from masklet.pipelines.everything import Region, find_regions, region_names
from masklet.pipelines.limits import LimitExceededError
from masklet.pipelines.requests import EverythingQuery
from masklet.pipelines.validation import check_everything
from masklet.server.context import Context, Owner
from masklet.server.errors import with_field
from masklet.server.jobs import Job
from masklet.server.persist import mask_entry
from masklet.server.routes.common import ERROR_RESPONSES
from masklet.server.routes.sessions import SessionId
from masklet.server.routes.tracking import _check_frame, run_locked
from masklet.server.schemas import EverythingRequest, EverythingResult, FoundRegion, ObjectMask
from masklet.server.sessions import ServerSession

if TYPE_CHECKING:
    from masklet.video.predictor import VideoPredictor

router = APIRouter(tags=["video sessions"], responses=ERROR_RESPONSES)


@router.post("/v1/sessions/{session_id}/everything", response_model=EverythingResult)
async def add_everything_objects(
    body: EverythingRequest, session_id: SessionId, ctx: Context, owner: Owner
) -> EverythingResult:
    """Segment everything on one frame: every region that the session's objects on that frame
    do not already cover becomes a new object (its mask is its prompt), named `region_{k}`,
    best predicted IoU first; returns the frame's masks of every object and the new objects.
    Track them with `POST .../propagate`; correct one with `POST .../prompts` on its id. The
    parameters and their defaults are the reference generator's (see `EverythingSettings`);
    regions beyond the server's --max-objects (counting the session's objects) are left out,
    and a session already at the limit answers 413, as does a request for more point prompts
    than the server's limit (points_per_side² on each of the 1 + 4 + ... crops)."""
    session = ctx.sessions.get(session_id, owner)
    _check_frame(session, body.frame)
    room = _room(len(session.video.obj_ids), ctx.limits.max_objects)
    query = EverythingQuery(**body.model_dump(exclude={"frame"}))
    try:  # the generator's own checks of its parameters, and the work they ask for
        check_everything(query, None, session.num_frames, ctx.limits)
    except MaskletError as error:  # named as this body's field
        raise with_field(
            error, (getattr(error, "field", None) or "body").replace("everything.", "body.")
        ) from None
    model, predictor = ctx.models.model(), ctx.models.video_predictor()
    job = Job()

    def work() -> EverythingResult:
        with session.frames_lock:
            image = session.frames.get(body.frame)  # [H, W, 3] uint8
        kept = session.masks.get(body.frame, {}).values()
        known = [decode_rle(r.mask.model_dump()) for r in kept if r.area > 0]  # [H, W] bool
        regions = find_regions(model, image, query, known=known, cap=room, cancel=job)
        return _add_regions(session, predictor, body.frame, regions)

    return await run_locked(ctx, session, work, job)


def _add_regions(
    session: ServerSession, predictor: VideoPredictor, frame: int, regions: list[Region]
) -> EverythingResult:
    """Each region as a new mask-prompted object on `frame`, journaled like any prompt."""
    video = session.video
    first_id = max(video.obj_ids, default=0) + 1
    names = region_names(len(regions), list(video.names.values()))
    records: list[ObjectMask] = list(session.masks.get(frame, {}).values())
    added = []
    for k, (region, name) in enumerate(zip(regions, names, strict=True)):
        obj_id = first_id + k
        predictor.set_object_name(video, obj_id, name)
        _, obj_ids, logits = predictor.add_new_mask(video, frame, obj_id, region.mask)
        session.journal(mask_entry(frame, obj_id, region.mask, name))
        records = session.store_logits(frame, obj_ids, logits)
        added.append(FoundRegion(id=obj_id, name=name, score=region.score, box=region.box))
    return EverythingResult(frame=frame, objects=records, added=added)


def _room(objects: int, limit: int | None) -> int | None:
    """How many more objects the session may take (None: unbounded); 413 when none."""
    if limit is None:
        return None
    if objects >= limit:
        raise LimitExceededError(
            f"the session has {objects} objects, the limit is {limit}: remove some before "
            "segmenting everything (--max-objects raises it)",
            limit="max_objects",
        )
    return limit - objects
