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


def structured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """[H, W, 3] uint8: smooth gradients, a few flat shapes and mild noise (not pure noise, so
    masks and attention look like a real photo's)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack(
        [120 + 80 * np.sin(xx / 90.0), 110 + 70 * np.cos(yy / 70.0), 100 + 0.05 * (xx + yy)],
        axis=-1,
    )
    for _ in range(6):
        y0, x0 = rng.integers(0, height * 3 // 4), rng.integers(0, width * 3 // 4)
        h, w = rng.integers(height // 10, height // 3), rng.integers(width // 10, width // 3)
        img[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 256, 3)
    img += rng.normal(0.0, 6.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
