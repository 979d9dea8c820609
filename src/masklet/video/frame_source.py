"""The frame-source contract every source implements, and the small pieces they share.

A source hands out frames as `[H, W, 3]` uint8 RGB arrays by index, and says when each frame is
presented (`frame_time`, seconds). Kept apart from the concrete sources so that `frames.py`
(arrays, folders, live streams, `open_frames`) and `video_file.py` both build on it without
importing each other.
"""

from __future__ import annotations

import abc
import collections
from collections.abc import Iterator

import numpy as np

from masklet.errors import InvalidInputError

DEFAULT_FPS = 30.0
# Decoded frames kept per source. Backward propagation re-reads the frames just before the one
# it asked for, so a few recent frames save re-decoding a whole GOP for each step back.
DEFAULT_CACHE_FRAMES = 8
# Frames a LiveSource keeps: the memory bank reads at most the last ~7 frames plus prompts.
DEFAULT_LIVE_WINDOW = 16


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
    """Random-access frames as `[H, W, 3]` uint8 RGB; `num_frames` is None while still growing.

    `fps` is the nominal (average) rate; `frame_time(i)` is the exact presentation time of frame
    `i`, which is what results and written videos carry.
    """

    fps: float
    height: int
    width: int

    @property
    @abc.abstractmethod
    def num_frames(self) -> int | None: ...

    @abc.abstractmethod
    def get(self, index: int) -> np.ndarray:
        """Return frame `index` as `[H, W, 3]` uint8 RGB. Do not modify it: it may be cached."""

    def frame_time(self, index: int) -> float:
        """When frame `index` is presented, in seconds: `index / fps` unless the source knows
        better (a video file's own timestamps, variable frame rate and start offset included)."""
        return self._check_index(index) / self.fps

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
