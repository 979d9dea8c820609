"""Frames of a video file through PyAV: indexed once from packets, decoded lazily, seeking for
random access.

Frame `i` is the i-th picture a decoder presents, in presentation order, and
`frame_time(i)` is its presentation time in seconds from the file's own timestamps (variable
frame rate and a first frame that starts late included): see `frame_index` for how edit
lists, stream-copy cuts and duplicate timestamps are read without decoding the file.

Damaged files: an MP4/MOV whose data stops before the frames its index lists (a truncated
download or an interrupted recording) is refused when it is opened, with the number of frames
its data still holds and the command that keeps them; a packet cut short by the end of any
file is refused the same way. Formats without an index (MKV/WebM/TS) cut between packets
simply end where their data ends, every listed frame decodable. The CLI, the Python API and
the server all open videos here, so they behave the same: nothing is tracked on a file that
would fail part-way.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from masklet.errors import InvalidInputError
from masklet.video.frame_index import FrameTable, KeyFrame, PacketScan, scan_packets
from masklet.video.frame_source import DEFAULT_CACHE_FRAMES, DEFAULT_FPS, FrameCache, FrameSource

# Rotations PyAV reports are multiples of 90 degrees for every camera we know of; anything else
# is rounded to the nearest quarter turn, since a non-axis-aligned frame cannot be an array.
QUARTER_TURN_DEGREES = 90.0
# How far past a wanted frame decoding continues before deciding it is lost. Frames normally
# arrive in order; only timestamps that step back (broken VFR recordings) reorder them.
MAX_REORDER_FRAMES = 16
# Demuxers that read still images: an image given as a video is a different mistake.
IMAGE_FORMATS = frozenset({"image2", "gif_pipe", "apng"})
REENCODE_HINT = "re-encode it (e.g. ffmpeg -i in.mp4 out.mp4)"


def _open_container(path: Path) -> av.container.InputContainer:
    """`av.open` with errors that say what the file is, not FFmpeg's errno."""
    name = str(path)
    try:
        if path.stat().st_size == 0:
            raise InvalidInputError(f"{name!r} is empty (0 bytes): expected a video file")
        container = av.open(name)
    except (PermissionError, IsADirectoryError) as error:
        raise InvalidInputError(f"cannot read {name!r}: {error.strerror}") from error
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise InvalidInputError(
            f"{name!r} is not a video FFmpeg can read: no audio/video format was recognised in "
            "it (it may be a different kind of file, or a video whose index is missing because "
            "the file is truncated); expected an MP4/MOV/MKV/WebM/AVI file"
        ) from error
    format_name = container.format.name
    if format_name in IMAGE_FORMATS or format_name.endswith("_pipe"):
        container.close()
        kind = path.suffix.lstrip(".").upper() or format_name.removesuffix("_pipe")
        raise InvalidInputError(
            f"{name!r} is an image ({kind}), not a video: segment "
            "it with `masklet image` (or ImagePredictor in Python); for a video made of images "
            "give a folder of JPEG/PNG frames"
        )
    return container


class VideoFileSource(FrameSource):
    """A video file (MP4/MOV/MKV/WebM/AVI) decoded lazily through PyAV.

    Opening demuxes the stream once *without decoding* to learn each frame's timestamp and the
    keyframes, then decodes the first frame (which tells where presentation starts). Reading
    frame `i` continues the open decoder when `i` is just ahead; going backwards, or past a
    keyframe, seeks to the last keyframe at or before `i` and decodes forward. Only the last
    `cache_frames` decoded frames are kept. A display rotation in the stream's side data (phone
    videos) is applied, so `height`/`width` are those of the upright picture. Setting `fps`
    replaces the file's timing: `frame_time(i)` becomes `i / fps`. Not thread-safe.
    """

    def __init__(self, path: str | Path, cache_frames: int = DEFAULT_CACHE_FRAMES) -> None:
        self.path = Path(path)
        self.cache = FrameCache(cache_frames)
        self.seek_count = 0  # decoder repositionings; sequential reading should need one
        self._fps_override: float | None = None
        self._container = _open_container(self.path)
        self._decoder: Iterator[av.VideoFrame] | None = None
        self._start_index = 0  # frames the decoder emits below this index are dropped
        self._frontier = 0  # 1 + the highest frame index emitted since the last seek
        self._emitted_below = 0  # every frame below this was emitted since the last seek
        self._emitted_ahead: set[int] = set()  # emitted frames above it (reordered streams)
        self._seen: collections.Counter[int] = collections.Counter()  # timestamps since seek
        try:
            if not self._container.streams.video:
                kinds = sorted({str(stream.type) for stream in self._container.streams})
                kinds = kinds or ["no"]
                raise InvalidInputError(
                    f"{str(self.path)!r} has no video stream (it holds {'/'.join(kinds)} "
                    "streams only); expected a video file"
                )
            self._stream = self._container.streams.video[0]
            self._stream_fps = self._read_fps(self._stream)
            scan = scan_packets(self._container, self._stream)
            self._check_complete(scan)
            self.time_base = Fraction(self._stream.time_base or Fraction(1, 1))
            self.table = FrameTable(scan, self.time_base)
            first = self._first_frame()
        except BaseException:
            self._container.close()
            raise
        self.height, self.width = first.shape[:2]

    @property
    def fps(self) -> float:  # type: ignore[override]
        """The stream's average frame rate, or the rate set by the caller."""
        return self._fps_override if self._fps_override is not None else self._stream_fps

    @fps.setter
    def fps(self, value: float) -> None:
        if not value > 0:
            raise InvalidInputError(f"fps must be positive, got {value}")
        self._fps_override = float(value)

    def frame_time(self, index: int) -> float:
        index = self._check_index(index)
        time = self.table.time(index)
        if self._fps_override is not None or time is None:
            return index / self.fps
        return time

    @staticmethod
    def _read_fps(stream: av.video.stream.VideoStream) -> float:
        for rate in (stream.average_rate, stream.guessed_rate):
            if rate is not None and float(rate) > 0:
                return float(rate)
        return DEFAULT_FPS

    def _check_complete(self, scan: PacketScan) -> None:
        name = str(self.path)
        if not scan.stamps:
            raise InvalidInputError(f"video {name!r} contains no frames")
        if scan.truncated:
            listed = f" of the {scan.expected} its index lists" if scan.expected else ""
            complete = scan.complete
            if complete == 0:
                raise InvalidInputError(
                    f"video {name!r} is truncated: its data stops before the first complete "
                    f"frame{listed}; copy or download the file again"
                )
            raise InvalidInputError(
                f"video {name!r} is truncated or damaged: its data stops after {complete} "
                f"frames{listed}. Tracking would fail there, so the file is refused; keep the "
                "frames that remain by re-encoding them (e.g. ffmpeg -i in.mp4 repaired.mp4) "
                "and use the new file"
            )

    def _first_frame(self) -> np.ndarray:
        self._rotation_turns = 0
        self._coded_size = (0, 0)
        self._seek(None)
        decoder = self._decoder or iter(())
        first = next(decoder, None)
        if first is None:
            raise InvalidInputError(
                f"video {str(self.path)!r}: its {self.table.count} frames could not be decoded "
                f"(damaged data or an unsupported codec variant); {REENCODE_HINT}"
            )
        if first.pts is not None:
            self.table.drop_before(first.pts)  # frames a stream-copy cut left undecodable
        self._seen.clear()
        self._coded_size = (first.width, first.height)
        self._rotation_turns = round(getattr(first, "rotation", 0) / QUARTER_TURN_DEGREES) % 4
        self._decoder = itertools.chain([first], decoder)  # put it back: get(0) reads it
        return self.get(0)

    @property
    def num_frames(self) -> int:
        return self.table.count

    def _describe(self) -> str:
        return f"video {str(self.path)!r}"

    def _seek(self, key: KeyFrame | None) -> None:
        try:
            if key is None:
                self._container.seek(0)  # the very start, whatever the first timestamp
            else:
                self._container.seek(key.stamp, stream=self._stream, backward=True)
        except av.FFmpegError:
            key = None  # raw streams (.h264) cannot seek: reopen the file to start over
            self._container.close()
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
        self.seek_count += 1
        self._start_index = self.table.first_index(key)
        self._frontier = self._emitted_below = self._start_index
        self._emitted_ahead = set()
        self._seen = collections.Counter()
        if key is not None and key.index is not None:
            # Frames sharing the keyframe's timestamp before it are not decoded from here.
            self._seen[key.stamp] = key.index - self.table.slots(key.stamp).start
        self._decoder = self._decode_packets()

    def _decode_packets(self) -> Iterator[av.VideoFrame]:
        try:
            for packet in self._container.demux(self._stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    continue  # a damaged packet: skip it, later keyframes may still decode
                yield from frames
        except av.FFmpegError:
            return  # unreadable data: the stream ends here

    def _index_of(self, frame: av.VideoFrame) -> int | None:
        """Frame index of a decoded picture; None for one that is not a presented frame."""
        if self.table.stamps is None or frame.pts is None:
            return self._frontier  # no timestamps: frames counted in decode order
        slots = self.table.slots(frame.pts)
        occurrence = self._seen[frame.pts]
        self._seen[frame.pts] += 1
        if occurrence >= len(slots):
            return None  # hidden by an edit list, or more pictures than packets at this time
        position = slots[occurrence]
        return position if position >= self._start_index else None

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        width, height = self._coded_size  # a mid-stream size change is scaled back
        rgb: np.ndarray = frame.to_ndarray(format="rgb24", width=width, height=height)  # [H, W, 3]
        if self._rotation_turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, self._rotation_turns))  # counter-clockwise
        return rgb

    def _mark_emitted(self, position: int) -> None:
        self._frontier = max(self._frontier, position + 1)
        self._emitted_ahead.add(position)
        if len(self._emitted_ahead) > MAX_REORDER_FRAMES:
            # A frame this far behind will not come any more (a damaged packet): passed.
            self._emitted_below = min(self._emitted_ahead)
        while self._emitted_below in self._emitted_ahead:  # bounded by the reordering depth
            self._emitted_ahead.remove(self._emitted_below)
            self._emitted_below += 1

    def _was_emitted(self, index: int) -> bool:
        """Whether the open decoder already passed frame `index` (then only a seek brings it
        back); frames a reordered stream has not sent yet are still to come."""
        return (
            index < self._start_index or index < self._emitted_below or index in self._emitted_ahead
        )

    def _decode_until(self, index: int) -> np.ndarray | None:
        """Advance the open decoder to frame `index`; None if the decoder passed or lost it."""
        keep_from = index - self.cache.capacity + 1  # older frames would be evicted at once
        keep_until = index + self.cache.capacity // 2  # frames a reordered stream sends early
        for frame in self._decoder or ():
            position = self._index_of(frame)
            if position is None:
                continue
            self._mark_emitted(position)
            if keep_from <= position <= keep_until:
                self.cache.put(position, self._to_rgb(frame))
            if position == index:
                return self.cache.get(index)
            if position > index + MAX_REORDER_FRAMES:
                return None
        self._decoder = None
        return None

    def get(self, index: int) -> np.ndarray:
        index = self._check_index(index)
        frame = self.cache.get(index)
        if frame is not None:
            return frame
        key = self.table.key_before(index)
        key_index = self.table.first_index(key)
        if self._decoder is None or self._was_emitted(index) or key_index > self._frontier:
            self._seek(key)
        frame = self._decode_until(index)
        if frame is None and key is not None:
            # The seek landed after the wanted frame (keyframe tables that disagree with the
            # demuxer's index): decoding from the very start always reaches it.
            self._seek(None)
            frame = self._decode_until(index)
        if frame is None:
            raise InvalidInputError(
                f"frame {index} of {self._describe()} could not be decoded: the file is damaged "
                f"there; {REENCODE_HINT}"
            )
        return frame

    def close(self) -> None:
        self._decoder = None
        self.cache.clear()
        self._container.close()
