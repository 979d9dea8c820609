"""Lazy frame sources: video files, image folders, in-memory arrays and live streams.

Every source hands out frames as `[H, W, 3]` uint8 RGB arrays on demand and keeps at most a
small, bounded number of decoded frames, so a two-hour video costs the same memory as a
two-second one. The video predictor asks for frames by index in any order (prompt frame,
forward propagation, then backward propagation), so random access must be correct and
sequential access must be cheap.

`frame_time(i)` gives when frame `i` is presented, in seconds: a video file's own timestamps
(variable frame rate and a late first frame kept, see `video_file`), `i / fps` for the others.
The base class lives in `frame_source`, the video-file source in `video_file`; import them
all from here.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from masklet.errors import InvalidInputError
from masklet.video.frame_source import (
    DEFAULT_CACHE_FRAMES,
    DEFAULT_FPS,
    DEFAULT_LIVE_WINDOW,
    FrameCache,
    FrameIndexError,
    FrameSource,
)
from masklet.video.video_file import VideoFileSource

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


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


def open_frames(
    source: str | Path | np.ndarray | Sequence[np.ndarray] | FrameSource,
    fps: float | None = None,
) -> FrameSource:
    """Open anything that holds frames.

    A folder becomes a FolderSource, a file a VideoFileSource (`fps`, if given, replaces the
    file's timing: frame `i` is then shown at `i / fps`), an array or list of arrays an
    ArraySource, and a FrameSource is returned as is.
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


__all__ = [
    "ArraySource",
    "FolderSource",
    "FrameCache",
    "FrameIndexError",
    "FrameSource",
    "LiveSource",
    "VideoFileSource",
    "open_frames",
]
