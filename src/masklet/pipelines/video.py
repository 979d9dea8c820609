"""Track a video: the one place that drives the video predictor for users.

`prepare_video` opens the source and checks everything that needs no model (options, outputs,
frame count and size against the limits, every prompt, the planned work); `track_video` runs
SAM 2 over the planned frames and streams each frame's records into the output sinks, with a
progress callback per frame and a cancel check per frame (a cancelled or failed run leaves no
file under a final name). `propagate_records` is the same loop for an interactive session.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from masklet.errors import InvalidInputError
from masklet.io.records import FrameProvider, FrameRecord, frame_record
from masklet.io.sinks import FrameSink
from masklet.pipelines.control import NEVER, CancelToken, Progress, ProgressFn, no_progress
from masklet.pipelines.requests import Direction, VideoOutputs, VideoRequest
from masklet.pipelines.validation import (
    check_everything,
    check_prompts,
    check_text,
    check_tracking,
    check_video_outputs,
)
from masklet.pipelines.video_sinks import open_sinks
from masklet.prompts import ObjectPrompt

if TYPE_CHECKING:
    from masklet.text.detector import Detector
    from masklet.video.frames import FrameSource
    from masklet.video.predictor import VideoPredictor
    from masklet.video.results import FrameResult
    from masklet.video.session import VideoSession


@dataclass(frozen=True)
class PreparedVideo:
    """A checked video request: the open source, the prompts merged per object and frame, the
    start frame and the frames tracking will visit (one ascending range)."""

    request: VideoRequest
    source: FrameSource
    prompts: list[ObjectPrompt]
    names: dict[int, str]
    start: int
    planned: range
    owns_source: bool

    def close(self) -> None:
        if self.owns_source:
            self.source.close()


@dataclass(frozen=True)
class VideoSummary:
    """What a finished run did: frames tracked, every object's name, the files written."""

    frames_tracked: int
    num_frames: int
    names: dict[int, str]
    outputs: list[Path]


def planned_frames(num_frames: int, start: int, max_frames: int | None, direction: str) -> range:
    """The frames a run visits, as one ascending range (SAM 2's processing order per side)."""
    from masklet.video.order import processing_order

    forward = processing_order(start, num_frames, max_frames, reverse=False)
    backward = processing_order(start, num_frames, max_frames, reverse=True)
    if direction == "forward":
        return forward
    if direction == "backward":
        return range(backward[-1], backward[0] + 1) if len(backward) else range(0)
    first = backward[-1] if len(backward) else start
    return range(first, forward[-1] + 1)


def prepare_video(request: VideoRequest) -> PreparedVideo:
    """Open the source and check the whole request; the caller closes it (`.close()`)."""
    from masklet.video.frames import FrameSource, open_frames

    check_tracking(request.direction, request.start_frame, request.max_frames, request.fps)
    check_video_outputs(request.outputs)
    owns = not isinstance(request.source, FrameSource)
    source = open_frames(request.source, fps=request.fps)  # type: ignore[arg-type]
    try:
        return _check_source(request, source, owns)
    except BaseException:
        if owns:
            source.close()
        raise


def _check_source(request: VideoRequest, source: FrameSource, owns: bool) -> PreparedVideo:
    limits = request.limits
    n = source.num_frames
    if n is None:
        raise InvalidInputError("a video job needs a source with a known length (not a stream)")
    limits.check("max_frames", n, what="frames in the video", setting="the max_frames limit",
                 field="video")  # fmt: skip
    limits.check("max_image_pixels", source.width * source.height,
                 what=f"pixels per frame ({source.width}x{source.height})",
                 setting="the max_image_pixels limit", field="video")  # fmt: skip
    check_everything(request.everything, request.text, n, limits)
    finder = request.text is not None or request.everything is not None
    merged = check_prompts(
        request.prompts, width=source.width, height=source.height, num_frames=n, limits=limits,
        names=request.names, has_text=finder, surface="frame",
    )  # fmt: skip
    names = {**request.names, **{p.obj_id: p.name for p in request.prompts if p.name}}
    first_text_id = max([*names, *(p.obj_id for p in merged), 0]) + 1
    check_text(request.text, limits, first_text_id)
    found_on = request.everything.frame if request.everything is not None else None
    first_prompt = min((p.frame for p in merged), default=found_on or 0)
    start = request.start_frame if request.start_frame is not None else first_prompt
    if start >= n:
        raise InvalidInputError(
            f"start_frame {start} is beyond the video, which has {n} frames (0..{n - 1})",
            field="start_frame",
        )
    planned = planned_frames(n, start, request.max_frames, request.direction)
    query = request.text or request.everything
    objects = len({p.obj_id for p in merged}) + (
        (query.max_objects or limits.max_objects or 0) if query is not None else 0
    )
    limits.check("max_frame_objects", len(planned) * max(objects, 1),
                 what=f"frames x objects ({len(planned)} x {objects})",
                 setting="the max_frame_objects limit", field="prompts")  # fmt: skip
    return PreparedVideo(request, source, merged, names, start, planned, owns)


def record_of(result: FrameResult, time: float | None = None) -> FrameRecord:
    """A tracking result as plain records (overlaps resolved, see `masklet.io.records`)."""
    shape = (int(result.mask_logits.shape[-2]), int(result.mask_logits.shape[-1]))
    return frame_record(
        result.frame_idx, shape, result.masks(), result.scores(), result.names, time=time
    )


def apply_prompts(
    predictor: VideoPredictor, session: VideoSession, prompts: list[ObjectPrompt],
    names: dict[int, str],
) -> None:  # fmt: skip
    """Send checked prompts to the session. A mask replaces clicks on the same frame (SAM 2
    takes one or the other), so a prompt with a mask and points is applied as the mask."""
    for obj_id, name in names.items():
        predictor.set_object_name(session, obj_id, name)
    for p in prompts:
        if p.mask is not None:
            predictor.add_new_mask(session, p.frame, p.obj_id, p.mask)
        else:
            predictor.add_new_points_or_box(
                session, p.frame, p.obj_id, points=p.points, labels=p.labels, box=p.box
            )


def _results(
    prepared: PreparedVideo,
    predictor: VideoPredictor,
    session: VideoSession,
    detector: Detector | None,
) -> Iterator[FrameResult]:
    request = prepared.request
    if request.everything is not None:
        from masklet.everything import AutomaticMaskGenerator
        from masklet.everything.video import track_everything

        e = request.everything
        generator = AutomaticMaskGenerator.from_config(predictor.model, e.generator_config())
        return track_everything(
            predictor, session, generator, start_frame=prepared.start, every=e.every,
            max_objects=e.max_objects or request.limits.max_objects,
            direction=request.direction, max_frames=request.max_frames,
        )  # fmt: skip
    if request.text is None:
        from masklet.video.tracking import track

        return track(predictor, session, request.direction, prepared.start, request.max_frames)
    if detector is None:
        raise InvalidInputError("a text prompt needs a detector (GroundingDINO)", field="text")
    from masklet.text.video import track_with_text

    t = request.text
    return track_with_text(
        predictor, session, detector, t.text, detect_frame=prepared.start,
        redetect_every=t.redetect_every, new_object_iou=t.new_object_iou,
        box_threshold=t.box_threshold, text_threshold=t.text_threshold,
        max_objects=t.max_objects, direction=request.direction, max_frames=request.max_frames,
    )  # fmt: skip


def track_video(
    prepared: PreparedVideo,
    predictor: VideoPredictor,
    *,
    detector: Detector | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER,
) -> VideoSummary:
    """Track every object over the planned frames and write the requested outputs.

    `progress` is called after every frame; `cancel` is checked before every frame, and a
    cancel (or any error) aborts the outputs: nothing is left under a final name."""
    cancel.check()
    session = predictor.init_state(prepared.source)
    apply_prompts(predictor, session, prepared.prompts, prepared.names)
    records = (
        record_of(result, _frame_time(prepared.source, result.frame_idx))
        for result in _results(prepared, predictor, session, detector)
    )
    with open_sinks(prepared.request.outputs, prepared.source, prepared.planned) as sinks:
        done = _write(records, sinks, len(prepared.planned), progress, cancel)
        outputs = [path for sink in sinks for path in sink.outputs]
    names = {i: session.names.get(i, f"object_{i}") for i in session.obj_ids}
    return VideoSummary(done, len(prepared.source), {**prepared.names, **names}, outputs)


def _frame_time(source: FrameSource, frame_idx: int) -> float | None:
    """The frame's presentation time in seconds, when the source knows it."""
    time_of = getattr(source, "frame_time", None)
    return None if time_of is None else time_of(frame_idx)


def propagate_records(
    predictor: VideoPredictor,
    session: VideoSession,
    *,
    direction: Direction,
    start: int | None,
    max_frames: int | None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER,
    total: int | None = None,
) -> Iterator[FrameRecord]:
    """Track an interactive session's objects; yields each frame's records as computed."""
    from masklet.video.tracking import track

    cancel.check()
    done = 0
    for result in track(predictor, session, direction, start, max_frames):
        record = record_of(result, _frame_time(session.source, result.frame_idx))
        done += 1
        progress(Progress(done, total or done, frame=result.frame_idx, objects=len(record.objects)))
        yield record
        cancel.check()


def export_records(
    records: Iterable[FrameRecord],
    outputs: VideoOutputs,
    source: FrameProvider,
    *,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER,
) -> list[Path]:
    """Write records computed earlier (an interactive session's) through the same sinks as
    `track_video`; frames without a record are written without masks. Returns the paths."""
    check_video_outputs(outputs)
    n = source.num_frames or 0
    with open_sinks(outputs, source, range(n)) as sinks:
        _write(records, sinks, n, progress, cancel)
        paths = [path for sink in sinks for path in sink.outputs]
    return paths


def _write(
    records: Iterable[FrameRecord],
    sinks: list[FrameSink],
    total: int,
    progress: ProgressFn,
    cancel: CancelToken,
) -> int:
    """Every record into every sink, progress after each frame and a cancel check before and
    after it (the sinks' owner aborts them on the way out); returns the frames written."""
    done = 0
    cancel.check()
    for record in records:
        cancel.check()
        for sink in sinks:
            sink.write(record)
        done += 1
        progress(Progress(done, total, frame=record.frame_idx, objects=len(record.objects)))
        cancel.check()
    return done


__all__ = [
    "PreparedVideo",
    "export_records",
    "VideoSummary",
    "prepare_video",
    "propagate_records",
    "record_of",
    "track_video",
]
