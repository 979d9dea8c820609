"""Frames of a video file through PyAV: demuxed once, decoded lazily, seeking for random access."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import av
import numpy as np

from masklet.errors import InvalidInputError
from masklet.video.frames import (
    DEFAULT_CACHE_FRAMES,
    DEFAULT_FPS,
    QUARTER_TURN_DEGREES,
    FrameCache,
    FrameSource,
)


class VideoFileSource(FrameSource):
    """A video file (MP4/MOV/MKV/WebM/AVI) decoded lazily through PyAV.

    Opening demuxes the stream once *without decoding* to learn each frame's timestamp and which
    frames are keyframes; container metadata is often missing or wrong, the packets are not.
    Reading frame `i` continues the open decoder when `i` is just ahead; going backwards, or past
    a keyframe, seeks to the last keyframe at or before `i` and decodes forward. Only the last
    `cache_frames` decoded frames are kept. A display rotation in the stream's side data (phone
    videos) is applied, so `height`/`width` are those of the upright picture. Not thread-safe.
    """

    def __init__(self, path: str | Path, cache_frames: int = DEFAULT_CACHE_FRAMES) -> None:
        self.path = Path(path)
        self.cache = FrameCache(cache_frames)
        self.seek_count = 0  # decoder repositionings; sequential reading should need one
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
            raise InvalidInputError(
                f"cannot open video {str(self.path)!r}: {error}; expected a readable "
                "MP4/MOV/MKV/WebM/AVI file (is it corrupt or truncated?)"
            ) from error
        self._decoder: Iterator[av.VideoFrame] | None = None
        self._next_index = 0  # index of the frame the open decoder will produce next
        self._start_index = 0  # keyframe the decoder was last positioned on
        try:
            if not self._container.streams.video:
                raise InvalidInputError(f"{str(self.path)!r} has no video stream")
            self._stream = self._container.streams.video[0]
            self.fps = self._read_fps(self._stream)
            self._index_packets()
            first = self._first_frame()
        except BaseException:
            self._container.close()
            raise
        self.height, self.width = first.shape[:2]

    @staticmethod
    def _read_fps(stream: av.video.stream.VideoStream) -> float:
        for rate in (stream.average_rate, stream.guessed_rate):
            if rate is not None and float(rate) > 0:
                return float(rate)
        return DEFAULT_FPS

    def _index_packets(self) -> None:
        """Fill the presentation-ordered timestamp table and the keyframe indices."""
        stamps: list[int | None] = []
        keyframe_stamps: list[int | None] = []
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:  # the end-of-stream flush packet carries no frame
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                stamps.append(stamp)
                if packet.is_keyframe:
                    keyframe_stamps.append(stamp)
        except av.FFmpegError:
            pass  # a truncated file: keep the frames whose packets could be read
        if not stamps:
            raise InvalidInputError(f"video {str(self.path)!r} contains no frames")
        self._count = len(stamps)
        if any(stamp is None for stamp in stamps):
            # No timestamps (some AVI files): frames are counted from the start instead, and
            # every backward step re-decodes from the beginning.
            self._stamps: list[int] | None = None
            self._keyframes = [0]
        else:
            self._stamps = sorted(cast(list[int], stamps))
            keys = {
                bisect.bisect_left(self._stamps, key) for key in cast(list[int], keyframe_stamps)
            }
            self._keyframes = sorted(keys | {0})

    def _first_frame(self) -> np.ndarray:
        self._rotation_turns = 0
        self._coded_size = (0, 0)
        self._seek(0)
        decoder = self._decoder or iter(())
        first = next(decoder, None)
        if first is None:
            raise InvalidInputError(
                f"video {str(self.path)!r}: no frame could be decoded; the file is damaged"
            )
        self._coded_size = (first.width, first.height)
        self._rotation_turns = round(getattr(first, "rotation", 0) / QUARTER_TURN_DEGREES) % 4
        self._decoder = itertools.chain([first], decoder)  # put it back: get(0) reads it
        return self.get(0)

    @property
    def num_frames(self) -> int:
        return self._count

    def _describe(self) -> str:
        return f"video {str(self.path)!r}"

    def _keyframe_before(self, index: int) -> int:
        return self._keyframes[bisect.bisect_right(self._keyframes, index) - 1]

    def _seek(self, key_index: int) -> None:
        if self._stamps is None or key_index == 0:
            self._container.seek(0)  # the very start, whatever the stream's first timestamp
        else:
            self._container.seek(
                self._stamps[key_index], stream=self._stream, backward=True, any_frame=False
            )
        self.seek_count += 1
        self._start_index = key_index
        self._next_index = key_index
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
            return  # unreadable data (truncation): the stream ends here

    def _index_of(self, frame: av.VideoFrame) -> int | None:
        """Frame index of a decoded frame, or None for frames before the seek's keyframe."""
        if self._stamps is None or frame.pts is None:
            return self._next_index
        position = bisect.bisect_left(self._stamps, frame.pts)
        if position == len(self._stamps) or self._stamps[position] != frame.pts:
            return self._next_index
        # Open-GOP streams emit a few frames from before the keyframe after a seek; they
        # reference pictures the decoder never saw, so they are garbage and dropped.
        return position if position >= self._start_index else None

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        width, height = self._coded_size  # a mid-stream size change is scaled back
        rgb: np.ndarray = frame.to_ndarray(format="rgb24", width=width, height=height)  # [H, W, 3]
        if self._rotation_turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, self._rotation_turns))  # counter-clockwise
        return rgb

    def _decode_until(self, index: int) -> np.ndarray | None:
        """Advance the open decoder to frame `index`; None if the decoder passed or lost it."""
        keep_from = index - self.cache.capacity + 1  # older frames would be evicted at once
        for frame in self._decoder or ():
            position = self._index_of(frame)
            if position is None:
                continue
            self._next_index = position + 1
            if position >= keep_from and position <= index:
                self.cache.put(position, self._to_rgb(frame))
            if position >= index:
                return self.cache.get(index)
        self._decoder = None
        return None

    def get(self, index: int) -> np.ndarray:
        index = self._check_index(index)
        frame = self.cache.get(index)
        if frame is not None:
            return frame
        key = self._keyframe_before(index)
        if self._decoder is None or index < self._next_index or key > self._next_index:
            self._seek(key)
        frame = self._decode_until(index)
        if frame is None and key != 0:
            # The seek landed after the wanted frame (keyframe tables that disagree with the
            # demuxer's index): decoding from the very start always reaches it.
            self._seek(0)
            frame = self._decode_until(index)
        if frame is None:
            raise InvalidInputError(
                f"frame {index} of {self._describe()} could not be decoded: the file is damaged "
                "or truncated there; re-encode it (e.g. ffmpeg -i in.mp4 out.mp4)"
            )
        return frame

    def close(self) -> None:
        self._decoder = None
        self.cache.clear()
        self._container.close()
