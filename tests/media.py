"""Small media files made by tests (encoded with PyAV directly, not through masklet)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_square_clip(
    path: Path,
    num_frames: int,
    size: tuple[int, int],
    fps: int,
    step: int = 2,
    x0: int = 10,
    background: int = 30,
    color: tuple[int, int, int] = (220, 200, 40),
) -> Path:
    """An H.264 MP4 of `num_frames` frames of `size` (width, height): a 20x20 square at
    rows 10..30 moving right by `step` pixels a frame over a flat background."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(num_frames):
            array = np.full((height, width, 3), background, np.uint8)
            array[10:30, x0 + step * i : x0 + 20 + step * i] = color
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_two_squares_clip(path: Path, num_frames: int, size: tuple[int, int], fps: int) -> Path:
    """Like `write_square_clip` plus a blue 14x16 square at rows 26..42 moving left from
    x = 48: two objects the bundled nano model tracks with non-empty masks on every frame."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(num_frames):
            array = np.full((height, width, 3), 30, np.uint8)
            array[10:30, 10 + 2 * i : 30 + 2 * i] = (220, 200, 40)
            array[26:42, 48 - 2 * i : 62 - 2 * i] = (40, 90, 220)
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
