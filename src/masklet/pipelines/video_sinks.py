"""The output sinks a video request asks for, opened together and closed or aborted together."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from masklet.io.frame_images import FrameImageSink
from masklet.io.records import FrameProvider
from masklet.io.sinks import CocoJsonSink, FrameSink, IdPngSink, OverlayVideoSink
from masklet.pipelines.requests import VideoOutputs


class _Retimed:
    """A frame provider shown at another frame rate (Replicate's `video_fps`)."""

    def __init__(self, source: FrameProvider, fps: float) -> None:
        self._source = source
        self.width, self.height = source.width, source.height
        self.fps = fps
        self.num_frames = source.num_frames

    def get(self, frame_idx: int):  # type: ignore[no-untyped-def]
        return self._source.get(frame_idx)


@contextmanager
def open_sinks(
    outputs: VideoOutputs, source: FrameProvider, planned: range
) -> Iterator[list[FrameSink]]:
    """Every requested sink; on leaving, all are closed (published) or, after an exception
    (a cancel included), all aborted: nothing is left under a final name."""
    interval = outputs.output_frame_interval
    sinks: list[FrameSink] = []
    try:
        if outputs.overlay is not None:
            shown: FrameProvider = source
            if outputs.overlay_fps is not None:
                # the sink writes at fps / interval: this makes the MP4 play at overlay_fps
                shown = _Retimed(source, float(outputs.overlay_fps * interval))
            sinks.append(
                OverlayVideoSink(
                    outputs.overlay,
                    shown,
                    mask_type=outputs.mask_type,
                    output_frame_interval=interval,
                    tracked_frames=planned,
                    keep_audio=outputs.keep_audio and outputs.overlay_fps is None,
                    alpha=outputs.overlay_alpha,
                )  # fmt: skip
            )
        if outputs.masks_dir is not None:
            sinks.append(IdPngSink(outputs.masks_dir, output_frame_interval=interval))
        if outputs.json is not None:
            name = getattr(source, "path", None)
            file_name = Path(name).name if name is not None else None
            sinks.append(CocoJsonSink(outputs.json, source, file_name, interval))
        if outputs.frames_dir is not None:
            sinks.append(
                FrameImageSink(
                    outputs.frames_dir,
                    source,
                    mask_type=outputs.mask_type,
                    image_format=outputs.frame_format,
                    quality=outputs.frame_quality,
                    output_frame_interval=interval,
                )  # fmt: skip
            )
        yield sinks
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    for sink in sinks:
        sink.close()
