"""Read and write still images and binary masks.

Every image comes back as an upright `[H, W, 3]` uint8 RGB array whatever its file stores
(grayscale, 16-bit, RGBA, palette, EXIF rotation), so the rest of masklet sees one format.
Any problem with a file becomes an `InvalidInputError` naming the file and the problem.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from masklet.errors import InvalidInputError
from masklet.io.atomic import atomic_output

# Encoder names PIL understands, by file suffix.
_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
DEFAULT_QUALITY = 95  # JPEG / WebP quality: visually lossless, still much smaller than PNG
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")
_UINT16_TO_UINT8 = 257.0  # 65535 / 255


def _open_upright(path: str | os.PathLike[str]) -> Image.Image:
    """Open and fully decode `path`, with EXIF orientation applied."""
    p = Path(path)
    if not p.exists():
        raise InvalidInputError(f"image file not found: {p}; check the path")
    if p.is_dir():
        raise InvalidInputError(f"expected an image file, got a directory: {p}")
    try:
        with warnings.catch_warnings():
            # A decompression-bomb warning becomes an error below only past PIL's hard limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as opened:
                opened.load()  # decode now so truncated / corrupt data fails here
                # Rotate/flip as the camera recorded; returns a copy (the file can close).
                image = ImageOps.exif_transpose(opened)
    except UnidentifiedImageError:
        raise InvalidInputError(
            f"cannot read {p}: not a recognised image format (expected JPEG, PNG or WebP)"
        ) from None
    except Image.DecompressionBombError as e:
        raise InvalidInputError(f"cannot read {p}: image too large ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InvalidInputError(f"cannot read {p}: corrupt or unreadable image ({e})") from None
    return image


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL mode -> `[H, W, 3]` uint8 RGB."""
    if image.mode in _SIXTEEN_BIT_MODES:
        # PIL's convert("RGB") clips 16-bit values at 255 instead of rescaling them.
        wide = np.asarray(image).astype(np.float64)
        if wide.max(initial=0) > 255:
            wide = wide / _UINT16_TO_UINT8
        gray = np.clip(np.rint(wide), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "P":
        # Palette transparency must go through RGBA or PIL warns; alpha is then dropped.
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"))


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as an upright RGB array.

    JPEG, PNG and WebP are supported (other formats PIL decodes work too). EXIF orientation
    is applied; grayscale, 16-bit, palette and RGBA images are converted to RGB (alpha is
    dropped, not composited).

    Returns:
      `[H, W, 3]` uint8 RGB.
    """
    return _to_rgb(_open_upright(path))


def read_mask(path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask image: every nonzero pixel is foreground.

    A palette image is read as its indices (index 0 = background, as in DAVIS); in colour
    images a pixel is foreground when any colour channel is nonzero; pixels with alpha 0 are
    background. EXIF orientation is applied, as for `read_image`.

    Arguments:
      size: expected (height, width); a mismatch raises `InvalidInputError`.

    Returns:
      `[H, W]` bool.
    """
    image = _open_upright(path)
    values = np.asarray(image)  # palette images give their indices, not colours
    h, w = values.shape[:2]
    if image.mode in ("RGBA", "LA", "PA"):
        opaque = values[..., -1] > 0
        values = values[..., :-1]
    else:
        opaque = np.ones((h, w), dtype=bool)
    mask: np.ndarray = values.reshape(h, w, -1).any(axis=2) & opaque  # [H, W, C] -> [H, W]
    if size is not None and tuple(mask.shape) != tuple(size):
        raise InvalidInputError(
            f"mask {path} has size (height, width) {tuple(mask.shape)} but {tuple(size)} was "
            "expected; resize the mask to the image it belongs to"
        )
    return mask


def write_image(
    path: str | os.PathLike[str], image: np.ndarray, quality: int = DEFAULT_QUALITY
) -> None:
    """Write an image atomically; the format follows the suffix (.png, .jpg/.jpeg, .webp).

    Arguments:
      image: `[H, W, 3]` uint8 RGB, `[H, W]` uint8 grayscale, or `[H, W]` bool (0 / 255).
      quality: JPEG / WebP quality (1-100); ignored for PNG.
    """
    p = Path(path)
    fmt = _WRITE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise InvalidInputError(
            f"cannot write {p}: unknown image suffix {p.suffix!r}; use one of "
            f"{', '.join(sorted(_WRITE_FORMATS))}"
        )
    if not 1 <= quality <= 100:
        raise InvalidInputError(f"image quality must be in 1..100, got {quality}")
    array = np.asarray(image)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    valid_shape = array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)
    if array.dtype != np.uint8 or not valid_shape:
        raise InvalidInputError(
            "expected an image of shape [H, W, 3] or [H, W] and dtype uint8 (or a bool mask), "
            f"got shape {array.shape} and dtype {array.dtype}"
        )
    options = {} if fmt == "PNG" else {"quality": quality}
    pil = Image.fromarray(np.ascontiguousarray(array))
    with atomic_output(p) as tmp:
        pil.save(tmp, format=fmt, **options)
