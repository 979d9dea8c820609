"""Textures for synthetic videos: procedural patterns and crops of real photos.

Photos come from scikit-image's bundled sample images (`skimage.data`), imported lazily: a
dev/train dependency. Without it every texture is procedural, so the same seed gives a
different (still deterministic) video with and without scikit-image installed.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image

# Bundled with scikit-image (no download): people, animals, objects, textures, micrographs.
PHOTO_NAMES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "coins",
    "moon",
    "brick",
    "grass",
    "gravel",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "cell",
    "clock",
)
PHOTO_MAX_SIDE = 384  # photos are stored downscaled: crops are small and this keeps them fast
_LOW_RES_NOISE = 6  # smooth noise: random values on a grid this many times coarser


@functools.lru_cache(maxsize=1)
def photos() -> tuple[np.ndarray, ...]:
    """The available sample photos as `[H, W, 3]` uint8, longest side <= PHOTO_MAX_SIDE."""
    try:
        from skimage import data
    except ImportError:  # scikit-image is optional: fall back to procedural textures
        return ()
    out = []
    for name in PHOTO_NAMES:
        try:
            image = np.asarray(getattr(data, name)())
        except Exception:  # a sample this scikit-image version lacks or must download
            continue
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        pil = Image.fromarray(np.ascontiguousarray(image[:, :, :3].astype(np.uint8)))
        pil.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE), Image.Resampling.BILINEAR)
        out.append(np.asarray(pil))
    return tuple(out)


def random_color(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float32)


def _two_colors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two colours far enough apart that the pattern is visible."""
    first = random_color(rng)
    second = random_color(rng)
    while np.abs(first - second).sum() < 120:
        second = random_color(rng)
    return first, second


def _blend(weight_hw: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Mix two colours per pixel: `[H, W]` weights in [0, 1] -> `[H, W, 3]` uint8."""
    w = weight_hw[:, :, None]
    return (first * (1 - w) + second * w).clip(0, 255).astype(np.uint8)


def _coordinates(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Pixel positions projected on a random direction: `[H, W]` float."""
    angle = rng.uniform(0, math.pi)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return x * math.cos(angle) + y * math.sin(angle)


def stripes(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Soft or hard stripes at a random angle and period: `[H, W, 3]` uint8."""
    period = rng.uniform(4, 24)
    wave = np.sin(_coordinates(h, w, rng) * (2 * math.pi / period)) * 0.5 + 0.5
    if rng.random() < 0.5:
        wave = (wave > 0.5).astype(np.float32)
    return _blend(wave, *_two_colors(rng))


def checkers(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A checkerboard with random cell size and rotation: `[H, W, 3]` uint8."""
    cell = rng.uniform(4, 20)
    angle = rng.uniform(0, math.pi / 2)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    u = x * math.cos(angle) + y * math.sin(angle)
    v = -x * math.sin(angle) + y * math.cos(angle)
    board = (np.floor(u / cell) + np.floor(v / cell)) % 2
    return _blend(board.astype(np.float32), *_two_colors(rng))


def noise(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth colour noise with fine grain on top: `[H, W, 3]` uint8."""
    coarse = rng.integers(0, 256, size=(h // _LOW_RES_NOISE + 2, w // _LOW_RES_NOISE + 2, 3))
    smooth = Image.fromarray(coarse.astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)
    grain = rng.normal(0, 12, size=(h, w, 1))
    return (np.asarray(smooth, dtype=np.float32) + grain).clip(0, 255).astype(np.uint8)


def gradient(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A linear gradient between two colours in a random direction: `[H, W, 3]` uint8."""
    t = _coordinates(h, w, rng)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    return _blend(t, *_two_colors(rng))


def photo_crop(h: int, w: int, rng: np.random.Generator) -> np.ndarray | None:
    """A random crop of a random photo, zoomed to `[H, W, 3]` uint8; None without photos."""
    available = photos()
    if not available:
        return None
    photo = available[int(rng.integers(len(available)))]
    ph, pw = photo.shape[:2]
    # Crop a window with the target's aspect ratio, 30-100 % of the largest that fits.
    fit = min(ph / h, pw / w)
    scale = fit * rng.uniform(0.3, 1.0)
    ch, cw = max(1, min(ph, round(h * scale))), max(1, min(pw, round(w * scale)))
    top = int(rng.integers(ph - ch + 1))
    left = int(rng.integers(pw - cw + 1))
    crop = Image.fromarray(photo[top : top + ch, left : left + cw])
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(crop.resize((w, h), Image.Resampling.BILINEAR))


PROCEDURAL = (stripes, checkers, noise, gradient)


def random_texture(
    h: int, w: int, rng: np.random.Generator, use_photos: bool, photo_prob: float = 0.5
) -> np.ndarray:
    """A photo crop (with probability `photo_prob` when allowed) or a procedural pattern."""
    if use_photos and rng.random() < photo_prob:
        crop = photo_crop(h, w, rng)
        if crop is not None:
            return crop
    make = PROCEDURAL[int(rng.integers(len(PROCEDURAL)))]
    return make(h, w, rng)
