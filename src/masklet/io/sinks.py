"""Per-frame output writers: they consume `FrameRecord`s one by one as tracking produces them.

Three sinks share one protocol (`write(result)`, `close()`, `abort()`, context manager):

- `OverlayVideoSink`: an MP4 of the source with the masks drawn in (Replicate's `mask_type`).
- `IdPngSink`: one id-valued PNG per frame, DAVIS layout (`00000.png`, ...).
- `CocoJsonSink`: one JSON document with COCO RLE masks per frame and object.

Memory stays constant in the video's length. Tracking delivers frames out of order ("backward"
yields descending frames; "both" yields the forward frames, then the backward ones), while an
MP4 and a sorted JSON need frame order. Results that cannot be written yet wait in a `_Spool`:
an unnamed temporary file holding each frame's masks as COCO RLE (typically a few kB per object,
against H*W bytes raw), with only `frame -> (offset, length)` kept in RAM. So a sink holds at
most one frame's masks in memory whatever the order; the spool's disk use is bounded by the RLE
of the frames still waiting. Nothing appears under a final name until `close()` succeeds;
`abort()`, or an exception in the `with` block, removes the partial output.
"""

from __future__ import annotations

import abc
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from masklet.errors import InvalidInputError
from masklet.io.atomic import Publishing, atomic_output
from masklet.io.masks import (
    decode_rle,
    encode_rle,
    objects_to_coco,
    write_id_png,
    write_palette_png,
)
from masklet.io.overlay import MASK_TYPES, render_mask_type
from masklet.io.records import FrameProvider, FrameRecord
from masklet.io.spool import Spool
from masklet.io.video import SOURCE_TIME_BASE, VideoWriter, frame_rate

PNG_NAME = "{:05d}.png"  # DAVIS frame naming: 00000.png, 00001.png, ...


def check_interval(interval: int) -> int:
    if isinstance(interval, bool) or not isinstance(interval, (int, np.integer)) or interval < 1:
        raise InvalidInputError(
            f"output_frame_interval must be a whole number >= 1 (1 = every frame, 2 = every "
            f"other frame, ...), got {interval!r}"
        )
    return int(interval)


class FrameSink(Publishing, abc.ABC):
    """Consumes tracking results frame by frame; `close()` publishes, `abort()` discards."""

    output_frame_interval: int = 1

    @abc.abstractmethod
    def write(self, result: FrameRecord) -> None:
        """Take one frame's result (any frame order unless the sink says otherwise)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Finish the output and move it under its final name."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Drop the unfinished output: nothing is left under the final name. Idempotent."""

    @property
    @abc.abstractmethod
    def outputs(self) -> list[Path]:
        """The final paths this sink writes (a folder for PNG sinks)."""

    def wants(self, frame_idx: int) -> bool:
        """Whether this frame is an output frame (Replicate's "output every Nth frame")."""
        return frame_idx % self.output_frame_interval == 0

    def discard(self, error: BaseException) -> None:
        self.abort()


def _masks_to_bytes(result: FrameRecord) -> bytes:
    """A frame's masks and colours as JSON `{id: [RLE, colour]}` (what the overlay needs
    later, compressed)."""
    return json.dumps(
        {str(o.obj_id): [encode_rle(o.mask), list(o.color)] for o in result.objects}
    ).encode()


def _masks_from_bytes(data: bytes) -> tuple[dict[int, np.ndarray], dict[int, tuple[int, int, int]]]:
    items = json.loads(data).items()
    masks = {int(i): decode_rle(rle) for i, (rle, _) in items}
    colors = {int(i): (int(c[0]), int(c[1]), int(c[2])) for i, (_, c) in items}
    return masks, colors


class OverlayVideoSink(FrameSink):
    """An MP4 of the whole source with each frame's masks rendered (`mask_type`).

    The output has the source's size and timing: each frame is shown at the source's
    `frame_time` (variable frame rate and a late first frame kept; see `io.video`); with
    `output_frame_interval` N only frames 0, N, 2N, ... are written (as Replicate's sam-2-video
    does), each at its own time, so the duration and the audio's sync are kept. Audio comes
    from `audio_from`, by default the source's own file when it is a video file (silent
    sources give silent output); `keep_audio=False` drops it.

    `tracked_frames` are the frames that will receive a result (the planned tracking range);
    every other frame is written without masks as soon as the frames before it are written.
    A tracked frame waits for its result; results arriving ahead of a missing one are spooled as
    RLE on disk (see the module docstring), so RAM stays flat for every tracking direction.
    `None` means every frame expects a result. Tracked frames whose result never came are
    written without masks by `close()`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        source: FrameProvider,
        mask_type: str = "highlighted",
        output_frame_interval: int = 1,
        audio_from: str | os.PathLike[str] | None = None,
        keep_audio: bool = True,
        tracked_frames: range | None = None,
        alpha: float = 0.5,
    ) -> None:
        if mask_type not in MASK_TYPES:
            raise InvalidInputError(
                f"unknown mask type {mask_type!r}; valid values are {', '.join(MASK_TYPES)}"
            )
        if source.num_frames is None:
            raise InvalidInputError(
                "an overlay video needs a source with a known length (a file, folder or "
                "array); a live stream's frames are evicted before they could be written"
            )
        self.path = Path(path)
        self.source = source
        self.mask_type = mask_type
        self.alpha = alpha
        self.output_frame_interval = check_interval(output_frame_interval)
        self.num_frames = source.num_frames
        self.tracked_frames = tracked_frames
        self.next_frame = 0  # every frame before this one is written (or skipped by interval)
        self.frames_written = 0
        if audio_from is None and keep_audio:
            own = getattr(source, "path", None)  # a video file's own audio (not a folder's)
            audio_from = own if own is not None and Path(own).is_file() else None
        fps: Fraction = frame_rate(source.fps) / self.output_frame_interval
        self._spool = Spool(self.path.parent if self.path.parent.is_dir() else None)
        try:
            self._writer = VideoWriter(
                self.path,
                fps=fps,
                size=(source.width, source.height),
                audio_from=Path(audio_from) if keep_audio and audio_from is not None else None,
                time_base=SOURCE_TIME_BASE,
            )
        except BaseException:
            self._spool.close()
            raise

    @property
    def outputs(self) -> list[Path]:
        return [self.path]

    def write(self, result: FrameRecord) -> None:
        i = result.frame_idx
        if not 0 <= i < self.num_frames:
            raise InvalidInputError(
                f"frame {i} is outside the source's frames 0..{self.num_frames - 1}"
            )
        if not self.wants(i):
            return
        if i < self.next_frame or i in self._spool:
            raise InvalidInputError(
                f"frame {i} arrived after it was written to {str(self.path)!r} (frames outside "
                "tracked_frames are written without masks at once); an overlay video takes one "
                "result per frame"
            )
        if i == self.next_frame:
            self._render(i, result.masks(), result.colors())  # in order: nothing spooled
            self.next_frame += 1
        else:
            self._spool.put(i, _masks_to_bytes(result))
        self._flush(final=False)

    def _flush(self, final: bool) -> None:
        """Write frames in order while their result is here or none is expected."""
        while self.next_frame < self.num_frames:
            i = self.next_frame
            if not self.wants(i):
                pass
            elif i in self._spool:
                self._render(i, *_masks_from_bytes(self._spool.pop(i)))
            elif final or (self.tracked_frames is not None and i not in self.tracked_frames):
                self._render(i, {}, {})
            else:
                return  # its result is still to come
            self.next_frame += 1

    def _render(
        self,
        frame_idx: int,
        masks: dict[int, np.ndarray],
        colors: dict[int, tuple[int, int, int]],
    ) -> None:
        image = self.source.get(frame_idx)
        image = render_mask_type(image, masks, self.mask_type, colors=colors, alpha=self.alpha)
        time_of = getattr(self.source, "frame_time", None)  # a source's own timing, if it has
        self._writer.write(image, time=None if time_of is None else time_of(frame_idx))
        self.frames_written += 1

    @property
    def buffered_frames(self) -> int:
        """Results waiting in the spool for an earlier frame (for tests and progress)."""
        return len(self._spool)

    def close(self) -> None:
        try:
            self._flush(final=True)
            self._writer.close()
        except BaseException:
            self.abort()
            raise
        finally:
            self._spool.close()

    def abort(self) -> None:
        reason = RuntimeError(f"writing {str(self.path)!r} was aborted")
        self._writer.__exit__(RuntimeError, reason, None)  # deletes the partial file
        self._spool.close()


class FolderSink(FrameSink):
    """One file per written frame in `folder`, staged in a hidden folder beside it and moved in
    (one atomic rename each) by `close()`: an interrupted run adds nothing to `folder`, and
    files of an earlier run there are only replaced by complete ones. Results may come in any
    order; a frame written twice keeps its newest result."""

    what = "per-frame files"

    def __init__(self, folder: str | os.PathLike[str], output_frame_interval: int = 1) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InvalidInputError(
                f"{str(self.folder)!r} is a file; give a folder for the {self.what}"
            )
        self.output_frame_interval = check_interval(output_frame_interval)
        self.written: set[int] = set()
        parent = self.folder.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        self._staging: Path | None = Path(
            tempfile.mkdtemp(prefix=f".{self.folder.name}.", suffix=".partial", dir=parent)
        )

    @abc.abstractmethod
    def file_name(self, frame_idx: int) -> str:
        """The name of a frame's file."""

    @abc.abstractmethod
    def write_file(self, path: Path, result: FrameRecord) -> None:
        """Write one frame's file at `path` (in the staging folder)."""

    def path_of(self, frame_idx: int) -> Path:
        """Final path of a frame's file."""
        return self.folder / self.file_name(frame_idx)

    def write(self, result: FrameRecord) -> None:
        if self._staging is None:
            raise InvalidInputError(f"cannot write to {str(self.folder)!r}: the sink is closed")
        if not self.wants(result.frame_idx):
            return
        self.write_file(self._staging / self.file_name(result.frame_idx), result)
        self.written.add(result.frame_idx)

    def close(self) -> None:
        if self._staging is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for frame_idx in sorted(self.written):
                name = self.file_name(frame_idx)
                os.replace(self._staging / name, self.folder / name)
        finally:
            self.abort()

    def abort(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


class IdPngSink(FolderSink):
    """One PNG per written frame, `{frame:05d}.png`, pixel value = object id (0 = background).

    `palette=True` writes DAVIS palette PNGs (16-bit grayscale when an id exceeds 255, which
    palettes cannot hold); `palette=False` writes plain 8/16-bit grayscale. Where objects
    overlap, the pixel is the record's (see `masklet.io.records`). Frames outside the tracked
    range get no PNG.
    """

    what = "per-frame mask PNGs"

    def __init__(
        self, folder: str | os.PathLike[str], palette: bool = True, output_frame_interval: int = 1
    ) -> None:
        super().__init__(folder, output_frame_interval)
        self.palette = palette

    @property
    def outputs(self) -> list[Path]:
        return [self.folder]

    def file_name(self, frame_idx: int) -> str:
        return PNG_NAME.format(frame_idx)

    def write_file(self, path: Path, result: FrameRecord) -> None:
        write = write_palette_png if self.palette else write_id_png
        write(path, result.id_map())  # [H, W] uint8 / uint16


class CocoJsonSink(FrameSink):
    """COCO-style RLE masks of every frame and object in one JSON file, written at `close()`.

    Layout (frames sorted by index; one annotation per tracked object, empty masks included)::

        {
          "video": {"file_name": str | null, "fps": float | null, "width": int,
                    "height": int, "num_frames": int | null},
          "objects": [{"id": 1, "name": "dog"}, ...],
          "frames": [
            {"frame": 0, "time": 0.0,   # presentation time, seconds (absent when unknown)
             "annotations": [
              {"id": 1, "name": "dog", "score": 0.97,          # P(object visible)
               "bbox": [x, y, w, h], "area": 1234,            # pixels, COCO xywh
               "segmentation": {"size": [H, W], "counts": "..."}}]},   # COCO compressed RLE
            ...]
        }

    Each frame's record is serialised on arrival and spooled to an unnamed temporary file, so
    memory stays flat; a frame written twice keeps its newest result.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        source: FrameProvider | None = None,
        file_name: str | None = None,
        output_frame_interval: int = 1,
    ) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise InvalidInputError(f"--json {str(self.path)!r} is a folder; give a file name")
        self.source = source
        self.file_name = file_name
        self.output_frame_interval = check_interval(output_frame_interval)
        self.names: dict[int, str] = {}
        self.size: tuple[int, int] | None = None  # (H, W) from the masks when no source
        self._spool = Spool(self.path.parent if self.path.parent.is_dir() else None)
        self._closed = False

    @property
    def outputs(self) -> list[Path]:
        return [self.path]

    def write(self, result: FrameRecord) -> None:
        if not self.wants(result.frame_idx):
            return
        self.names.update(result.names())
        self.size = (result.height, result.width)
        record: dict[str, Any] = {"frame": result.frame_idx}
        if result.time is not None:
            record["time"] = result.time
        record["annotations"] = objects_to_coco(
            result.masks(), scores=result.scores(), names=self.names
        )
        self._spool.put(result.frame_idx, json.dumps(record).encode())

    def _header(self) -> dict[str, Any]:
        s = self.source
        height, width = (s.height, s.width) if s is not None else (self.size or (None, None))
        video = {
            "file_name": self.file_name,
            "fps": None if s is None else float(s.fps),
            "width": width,
            "height": height,
            "num_frames": None if s is None else s.num_frames,
        }
        objects = [{"id": i, "name": self.names[i]} for i in sorted(self.names)]
        return {"video": video, "objects": objects}

    def _chunks(self) -> Iterator[bytes]:
        head = json.dumps(self._header(), ensure_ascii=False)
        yield head[:-1].encode() + b', "frames": ['  # reopen the header object for "frames"
        for n, frame_idx in enumerate(self._spool.keys()):
            yield (b", " if n else b"") + self._spool.get(frame_idx)
        yield b"]}\n"

    def close(self) -> None:
        if self._closed:
            return
        try:
            with atomic_output(self.path) as tmp, open(tmp, "wb") as out:
                for chunk in self._chunks():
                    out.write(chunk)
        finally:
            self._closed = True
            self._spool.close()

    def abort(self) -> None:
        self._closed = True
        self._spool.close()
