"""Text prompts: `POST /v1/sessions/{id}/text`, and the helpers `images:segment` uses for its
`text` field. The detector (GroundingDINO) loads on the first text request; when it cannot
(no transformers, no weights) the answer is 503 `detector_unavailable` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from fastapi import APIRouter

from masklet.errors import InvalidPromptError
from masklet.pipelines.image import text_object_names
from masklet.server.context import DETECTOR_UNAVAILABLE_STATUS, Context, Owner
from masklet.server.errors import with_field
from masklet.server.persist import prompt_entry
from masklet.server.routes.common import ERROR_RESPONSES
from masklet.server.routes.sessions import SessionId
from masklet.server.routes.tracking import _check_frame, run_locked
from masklet.server.schemas import (
    DetectedObject,
    ErrorBody,
    ObjectMask,
    TextQuery,
    TextRequest,
    TextResult,
)

if TYPE_CHECKING:
    from masklet.text import Detections, Detector

router = APIRouter(
    tags=["text prompts"],
    responses={
        **ERROR_RESPONSES,
        DETECTOR_UNAVAILABLE_STATUS: {
            "model": ErrorBody,
            "description": "the text detector cannot be loaded (transformers or weights missing)",
        },
    },
)


def check_text(text: str, field: str) -> None:
    """422 naming `field` for a prompt without phrases ("..."), before any model work."""
    from masklet.text import split_phrases

    try:
        split_phrases(text)
    except InvalidPromptError as error:
        raise with_field(error, field) from None


def detected(
    ids: Sequence[int],
    names: Sequence[str],
    labels: Sequence[str],
    boxes: np.ndarray,
    scores: Sequence[float],
) -> list[DetectedObject]:
    """API records of detections; boxes [N, 4] x1, y1, x2, y2."""
    return [
        DetectedObject(
            id=int(i), name=n, label=lab, box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            score=float(s),
        )
        for i, n, lab, b, s in zip(ids, names, labels, boxes, scores, strict=True)
    ]  # fmt: skip


@router.post("/v1/sessions/{session_id}/text", response_model=TextResult)
async def add_text_objects(
    body: TextRequest, session_id: SessionId, ctx: Context, owner: Owner
) -> TextResult:
    """Find what `text` names on one frame and add each box as a new object (a box prompt),
    named `{phrase}_{k}`; returns that frame's masks of every object and the new objects.
    Track them with `POST .../propagate` like clicked objects."""
    session = ctx.sessions.get(session_id, owner)
    _check_frame(session, body.frame)
    check_text(body.text, "text")
    detector = await ctx.pool.run(
        ctx.models.detector, owner
    )  # loading may take a while: off the loop
    predictor = ctx.models.video_predictor()

    def work() -> TextResult:
        with session.frames_lock:
            image = session.frames.get(body.frame)  # [H, W, 3] uint8
        dets = detect(detector, image, body)
        video = session.video
        first_id = max(video.obj_ids, default=0) + 1
        ids = list(range(first_id, first_id + len(dets)))
        names = text_object_names(dets.labels, list(video.names.values()))
        records: list[ObjectMask] = list(session.masks.get(body.frame, {}).values())
        for obj_id, name, box in zip(ids, names, dets.boxes, strict=True):
            predictor.set_object_name(video, obj_id, name)
            _, obj_ids, logits = predictor.add_new_points_or_box(
                video, body.frame, obj_id, points=None, labels=None, box=box
            )  # logits [N, 1, H, W] of every object on the frame
            session.journal(prompt_entry(body.frame, obj_id, None, None, box, name=name))
            records = session.store_logits(body.frame, obj_ids, logits)
        added = detected(ids, names, dets.labels, dets.boxes, dets.scores.tolist())
        return TextResult(frame=body.frame, objects=records, added=added)

    return await run_locked(ctx, session, work)


def detect(detector: Detector, image: np.ndarray, query: TextQuery) -> Detections:
    """The detector's boxes for the query's text on `image` ([H, W, 3] uint8): duplicates
    removed, best first, at most `max_objects`."""
    from masklet.text import detect_objects

    if query.text is None:
        return _empty_detections()
    return detect_objects(
        detector, image, query.text, query.box_threshold, query.text_threshold, query.max_objects
    )


def _empty_detections() -> Detections:
    from masklet.text import Detections

    return Detections.empty()
