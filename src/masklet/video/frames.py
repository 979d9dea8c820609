"""Lazy frame sources: video files, image folders, in-memory arrays and live streams.

Every source hands out frames as `[H, W, 3]` uint8 RGB arrays on demand and keeps at most a
small, bounded number of decoded frames, so a two-hour video costs the same memory as a
two-second one. The video predictor asks for frames by index in any order (prompt frame,
forward propagation, then backward propagation), so random access must be correct and
sequential access must be cheap.
"""

from __future__ import annotations

import abc
import bisect
import collections
import itertools
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

import av
import numpy as np
from PIL import Image

from masklet.errors import InvalidInputError

DEFAULT_FPS = 30.0
# Decoded frames kept per source. Backward propagation re-reads the frames just before the one
# it asked for, so a few recent frames save re-decoding a whole GOP for each step back.
DEFAULT_CACHE_FRAMES = 8
# Frames a LiveSource keeps: the memory bank reads at most the last ~7 frames plus prompts.
DEFAULT_LIVE_WINDOW = 16
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class FrameIndexError(InvalidInputError, IndexError):
    """A frame index outside the frames a source can deliver."""


class FrameCache:
    """A bounded least-recently-used map `frame index -> [H, W, 3] uint8`."""

    def __init__(self, capacity: int = DEFAULT_CACHE_FRAMES) -> None:
        if capacity < 1:
            raise InvalidInputError(f"frame cache capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._frames: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._frames)

    def get(self, index: int) -> np.ndarray | None:
        frame = self._frames.get(index)
        if frame is not None:
            self._frames.move_to_end(index)
        return frame

    def put(self, index: int, frame: np.ndarray) -> None:
        self._frames[index] = frame
        self._frames.move_to_end(index)
        while len(self._frames) > self.capacity:
            self._frames.popitem(last=False)

    def clear(self) -> None:
        self._frames.clear()


class FrameSource(abc.ABC):
    """Random-access frames as `[H, W, 3]` uint8 RGB; `num_frames` is None while still growing."""

    fps: float
    height: int
    width: int

    @property
    @abc.abstractmethod
    def num_frames(self) -> int | None: ...

    @abc.abstractmethod
    def get(self, index: int) -> np.ndarray:
        """Return frame `index` as `[H, W, 3]` uint8 RGB. Do not modify it: it may be cached."""

    def close(self) -> None:  # noqa: B027 - only file-backed sources hold anything to release
        """Release files and decoders. Further `get` calls may fail."""

    def __len__(self) -> int:
        count = self.num_frames
        if count is None:
            raise TypeError(f"{type(self).__name__} is still growing and has no length yet")
        return count

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self.get(index)

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_index(self, index: int) -> int:
        count = len(self)
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise FrameIndexError(f"frame index must be an integer, got {index!r}")
        if not 0 <= index < count:
            valid = f"0..{count - 1}" if count else "none (no frames yet)"
            raise FrameIndexError(
                f"frame {index} is out of range for {self._describe()}: valid frames are {valid}"
            )
        return int(index)

    def _describe(self) -> str:
        return type(self).__name__


def _check_rgb(frame: object, what: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Validate one `[H, W, 3]` uint8 frame; `shape` is the `(H, W)` it must match, if any."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        got = getattr(frame, "shape", type(frame).__name__)
        raise InvalidInputError(f"{what}: expected an [H, W, 3] RGB array, got {got}")
    if frame.dtype != np.uint8:
        raise InvalidInputError(
            f"{what}: expected dtype uint8, got {frame.dtype}; convert with "
            "(frame * 255).clip(0, 255).astype(np.uint8) for floats in [0, 1]"
        )
    if shape is not None and frame.shape[:2] != shape:
        raise InvalidInputError(
            f"{what}: size {frame.shape[1]}x{frame.shape[0]} differs from the first frame's "
            f"{shape[1]}x{shape[0]}; all frames of a video must have the same size"
        )
    return frame


class ArraySource(FrameSource):
    """Frames already in memory: a `[T, H, W, 3]` uint8 array or a sequence of `[H, W, 3]`."""

    def __init__(self, frames: Sequence[np.ndarray] | np.ndarray, fps: float = DEFAULT_FPS) -> None:
        if isinstance(frames, np.ndarray) and frames.ndim != 4:
            raise InvalidInputError(f"expected a [T, H, W, 3] array, got shape {frames.shape}")
        if len(frames) == 0:
            raise InvalidInputError("expected at least one frame, got an empty array/list")
        first = _check_rgb(frames[0], "frame 0")
        for index in range(1, len(frames)):
            _check_rgb(frames[index], f"frame {index}", first.shape[:2])
        self._frames = frames
        self.fps = float(fps)
        self.height, self.width = first.shape[:2]

    @property
    def num_frames(self) -> int:
        return len(self._frames)

    def get(self, index: int) -> np.ndarray:
        return self._frames[self._check_index(index)]


class LiveSource(FrameSource):
    """Frames pushed one at a time (camera, stream); only the last `window` frames are kept.

    `num_frames` is None until `close()` says the stream ended; `len()` counts frames so far.
    """

    def __init__(self, fps: float = DEFAULT_FPS, window: int = DEFAULT_LIVE_WINDOW) -> None:
        if window < 1:
            raise InvalidInputError(f"live window must be >= 1 frame, got {window}")
        self.fps = float(fps)
        self.window = window
        self._frames: collections.deque[np.ndarray] = collections.deque(maxlen=window)
        self._count = 0
        self._closed = False
        self._shape: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int | None:
        return self._count if self._closed else None

    @property
    def height(self) -> int:  # type: ignore[override]
        return self._require_shape()[0]

    @property
    def width(self) -> int:  # type: ignore[override]
        return self._require_shape()[1]

    def _require_shape(self) -> tuple[int, int]:
        if self._shape is None:
            raise InvalidInputError("the live source has no frames yet; call add_frame() first")
        return self._shape

    def add_frame(self, frame: np.ndarray) -> int:
        """Append `[H, W, 3]` uint8 RGB; returns its frame index. Evicts the oldest frame."""
        if self._closed:
            raise InvalidInputError("cannot add a frame: the live source was closed")
        _check_rgb(frame, f"live frame {self._count}", self._shape)
        if self._shape is None:
            self._shape = (frame.shape[0], frame.shape[1])
        self._frames.append(frame)
        self._count += 1
        return self._count - 1

    @property
    def first_available(self) -> int:
        """Index of the oldest frame still held."""
        return self._count - len(self._frames)

    def get(self, index: int) -> np.ndarray:
        if 0 <= index < self.first_available:
            raise FrameIndexError(
                f"live frame {index} was evicted: only the last {self.window} frames are kept "
                f"(frames {self.first_available}..{self._count - 1}); raise `window` to keep more"
            )
        index = self._check_index(index)
        return self._frames[index - self.first_available]

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(self.first_available, self._count):
            yield self.get(index)

    def close(self) -> None:
        self._closed = True


def natural_key(name: str) -> list[int | str]:
    """Sort key putting `frame2.jpg` before `frame10.jpg` (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class FolderSource(FrameSource):
    """JPEG/PNG frames in a folder, in natural file-name order."""

    def __init__(
        self, path: str | Path, fps: float = DEFAULT_FPS, cache_frames: int = DEFAULT_CACHE_FRAMES
    ) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise InvalidInputError(f"frame folder {str(self.path)!r} does not exist")
        files = [p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise InvalidInputError(
                f"frame folder {str(self.path)!r} has no {'/'.join(IMAGE_SUFFIXES)} images"
            )
        self.files = sorted(files, key=lambda p: natural_key(p.name))
        # PIL reads only the header here, so checking every size up front is cheap and fails
        # before any model work instead of halfway through propagation.
        sizes = [self._read_size(p) for p in self.files]
        for file, size in zip(self.files, sizes, strict=True):
            if size != sizes[0]:
                raise InvalidInputError(
                    f"frame {file.name!r} is {size[0]}x{size[1]} but {self.files[0].name!r} is "
                    f"{sizes[0][0]}x{sizes[0][1]}; all frames must have the same size"
                )
        self.width, self.height = sizes[0]
        self.fps = float(fps)
        self.cache = FrameCache(cache_frames)

    @staticmethod
    def _read_size(file: Path) -> tuple[int, int]:
        try:
            with Image.open(file) as image:
                return image.size
        except (OSError, Image.DecompressionBombError) as error:
            raise InvalidInputError(f"cannot read image {str(file)!r}: {error}") from error

    @property
    def num_frames(self) -> int:
        return len(self.files)

    def get(self, index: int) -> np.ndarray:
        index = self._check_index(index)
        frame = self.cache.get(index)
        if frame is None:
            file = self.files[index]
            try:
                with Image.open(file) as image:
                    frame = np.asarray(image.convert("RGB"))
            except OSError as error:
                raise InvalidInputError(f"cannot decode image {str(file)!r}: {error}") from error
            self.cache.put(index, frame)
        return frame

    def _describe(self) -> str:
        return f"folder {str(self.path)!r}"


# Rotations PyAV reports are multiples of 90 degrees for every camera we know of; anything else
# is rounded to the nearest quarter turn, since a non-axis-aligned frame cannot be an array.
QUARTER_TURN_DEGREES = 90.0


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


def open_frames(
    source: str | Path | np.ndarray | Sequence[np.ndarray] | FrameSource,
    fps: float | None = None,
) -> FrameSource:
    """Open anything that holds frames.

    A folder becomes a FolderSource, a file a VideoFileSource (`fps`, if given, overrides the
    stream's), an array or list of arrays an ArraySource, and a FrameSource is returned as is.
    """
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            return FolderSource(path, fps=fps if fps is not None else DEFAULT_FPS)
        if path.is_file():
            video = VideoFileSource(path)
            if fps is not None:
                video.fps = float(fps)
            return video
        raise InvalidInputError(
            f"{str(path)!r} does not exist: expected a video file or a folder of JPEG/PNG frames"
        )
    if isinstance(source, (np.ndarray, list, tuple)):
        return ArraySource(source, fps=fps if fps is not None else DEFAULT_FPS)
    raise InvalidInputError(
        "expected a video path, a frame folder, a [T, H, W, 3] array, a list of frames or a "
        f"FrameSource, got {type(source).__name__}"
    )
