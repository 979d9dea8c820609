"""Mask outputs: id-valued PNGs, DAVIS palette PNGs, COCO RLE and JSON records.

An "id map" is a `[H, W]` integer array whose pixel value is the object id (0 = background).
Ids run from 1 to 65535 so that every map fits a 16-bit grayscale PNG.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from masklet.errors import InvalidInputError
from masklet.io.atomic import atomic_output
from masklet.io.images import _open_upright

MAX_OBJECT_ID = 65535  # largest id a 16-bit PNG can hold
_MAX_UINT8 = 255
_PALETTE_SIZE = 256


def _davis_palette() -> np.ndarray:
    """The PASCAL VOC / DAVIS colour map: `[256, 3]` uint8.

    Bits of the index are dealt round-robin to R, G, B and written from the most significant
    bit down, so small ids get strong, well-separated colours (1 = dark red, 2 = green, ...).
    """
    index = np.arange(_PALETTE_SIZE)
    palette = np.zeros((_PALETTE_SIZE, 3), dtype=np.int64)
    for level in range(8):  # three bits of the index per level: one each for R, G, B
        for channel in range(3):
            bit = (index >> (3 * level + channel)) & 1
            palette[:, channel] |= bit << (7 - level)
    out = palette.astype(np.uint8)
    out.flags.writeable = False
    return out


DAVIS_PALETTE: np.ndarray = _davis_palette()


def _as_bool(mask: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise InvalidInputError(f"expected {what} of shape [H, W], got shape {array.shape}")
    return array.astype(bool, copy=False)


def _check_id(obj_id: int) -> None:
    if not 1 <= int(obj_id) <= MAX_OBJECT_ID:
        raise InvalidInputError(
            f"object ids must be integers in 1..{MAX_OBJECT_ID} (0 is the background), got {obj_id}"
        )


def id_mask(
    masks: Mapping[int, np.ndarray],
    shape: tuple[int, int],
    scores: Mapping[int, float] | None = None,
) -> np.ndarray:
    """Merge per-object masks into one id map.

    Where objects overlap, the object with the higher score wins. Without scores, or on equal
    scores, the larger id wins (objects are painted in increasing id order), independent of
    the mapping's order.

    Arguments:
      masks: object id -> `[H, W]` mask (nonzero = foreground).
      shape: (H, W) of the map.
      scores: object id -> score; required for every object when given.

    Returns:
      `[H, W]` uint8 when the largest id is <= 255, else uint16.
    """
    for obj_id in masks:
        _check_id(obj_id)
    if scores is not None:
        missing = sorted(set(masks) - set(scores))
        if missing:
            raise InvalidInputError(f"scores given but missing for object ids {missing}")
    max_id = max(masks, default=0)
    out = np.zeros(tuple(shape), dtype=np.uint8 if max_id <= _MAX_UINT8 else np.uint16)

    def paint_key(obj_id: int) -> tuple[float, int]:
        return (float(scores[obj_id]) if scores is not None else 0.0, obj_id)

    for obj_id in sorted(masks, key=paint_key):  # the last painted wins
        mask = _as_bool(masks[obj_id], f"the mask of object {obj_id}")
        if mask.shape != out.shape:
            raise InvalidInputError(
                f"the mask of object {obj_id} has shape {mask.shape}, expected {out.shape}"
            )
        out[mask] = obj_id
    return out


def _id_map_array(id_map: np.ndarray) -> np.ndarray:
    """Validate an id map and return it as uint8 or uint16."""
    array = np.asarray(id_map)
    if array.ndim != 2 or not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise InvalidInputError(
            f"expected an id map of shape [H, W] with integer values, got shape {array.shape} "
            f"and dtype {array.dtype}"
        )
    if array.dtype in (np.uint8, np.uint16):
        return array
    if array.size and (array.min() < 0 or array.max() > MAX_OBJECT_ID):
        raise InvalidInputError(
            f"id map values must be in 0..{MAX_OBJECT_ID}, got {array.min()}..{array.max()}"
        )
    return array.astype(np.uint8 if array.max(initial=0) <= _MAX_UINT8 else np.uint16)


def write_id_png(path: str | os.PathLike[str], id_map: np.ndarray) -> None:
    """Write an id map as a grayscale PNG, atomically.

    uint8 maps become 8-bit PNGs and uint16 maps 16-bit PNGs; other integer dtypes use 8 bits
    when every value fits, else 16.
    """
    array = _id_map_array(id_map)
    with atomic_output(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


def read_id_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an id map written by `write_id_png` or `write_palette_png`.

    Returns:
      `[H, W]` uint8 (8-bit grayscale or palette indices) or uint16 (16-bit grayscale).
    """
    image = _open_upright(path)
    if image.mode in ("L", "P", "1"):
        return np.asarray(image).astype(np.uint8)
    if image.mode.startswith("I"):
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > MAX_OBJECT_ID):
            raise InvalidInputError(f"{path} holds values outside 0..{MAX_OBJECT_ID}")
        return values.astype(np.uint16)
    raise InvalidInputError(
        f"{path} is a {image.mode} image, not an id map (expected a grayscale or palette PNG); "
        "read binary masks with masklet.io.images.read_mask"
    )


def _palette_image(id_map: np.ndarray) -> Image.Image:
    """An id map as a DAVIS palette image ("P"), or 16-bit grayscale past id 255."""
    array = _id_map_array(id_map)
    if array.max(initial=0) > _MAX_UINT8:
        return Image.fromarray(np.ascontiguousarray(array))
    image = Image.fromarray(np.ascontiguousarray(array.astype(np.uint8)))  # mode "L"
    # On an "L" image putpalette switches the mode to "P" and keeps the values as indices
    # (no colour quantisation), so pixel value = palette index = object id.
    image.putpalette(DAVIS_PALETTE.tobytes())
    return image


def write_palette_png(path: str | os.PathLike[str], id_map: np.ndarray) -> None:
    """Write an id map as a palette PNG with `DAVIS_PALETTE` (the DAVIS benchmark format),
    masklet's one id-PNG format for images and videos.

    Palette PNGs hold at most 256 indices: a map with an id above 255 is written as a 16-bit
    grayscale PNG instead (same as `write_id_png`); `read_palette_png` reads both.
    """
    image = _palette_image(id_map)
    with atomic_output(path) as tmp:
        image.save(tmp, format="PNG")


def palette_png_bytes(id_map: np.ndarray) -> bytes:
    """The bytes `write_palette_png` would write."""
    buffer = io.BytesIO()
    _palette_image(id_map).save(buffer, format="PNG")
    return buffer.getvalue()


def read_palette_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read the id map of a palette PNG (or of the 16-bit fallback of `write_palette_png`)."""
    return read_id_png(path)


# ----- COCO ----------------------------------------------------------------------------------


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of a `[H, W]` mask (nonzero = foreground).

    Returns:
      `{"size": [H, W], "counts": str}`, JSON-ready.
    """
    binary = _as_bool(mask, "a mask")
    rle = coco_mask.encode(np.asfortranarray(binary.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode COCO RLE (compressed string/bytes counts, or uncompressed list counts).

    Returns:
      `[H, W]` bool.
    """
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise InvalidInputError(
            f"expected a COCO RLE dict with 'size' and 'counts', got {type(rle).__name__}"
        )
    try:
        h, w = (int(s) for s in rle["size"])
        counts = rle["counts"]
        if isinstance(counts, list):
            compressed = coco_mask.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        else:
            raw = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
            compressed = {"size": [h, w], "counts": raw}
        with warnings.catch_warnings():
            # pycocotools' Cython decoder trips a numpy 2 `copy=` DeprecationWarning; harmless.
            warnings.simplefilter("ignore", DeprecationWarning)
            return coco_mask.decode(compressed).astype(bool)
    except (TypeError, ValueError, UnicodeEncodeError) as e:
        raise InvalidInputError(f"cannot decode COCO RLE with size {rle['size']!r}: {e}") from e


def mask_to_box(mask: np.ndarray) -> list[float]:
    """Tight box (x0, y0, x1, y1) around a mask, in inclusive pixel indices.

    x1 / y1 are the last foreground column / row (as the reference's `mask_to_box`), so a
    single pixel at (3, 5) gives [3, 5, 3, 5]. An empty mask gives [0, 0, 0, 0].
    """
    binary = _as_bool(mask, "a mask")
    cols = np.flatnonzero(binary.any(axis=0))
    rows = np.flatnonzero(binary.any(axis=1))
    if cols.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])]


def bbox_xywh(mask: np.ndarray) -> list[float]:
    """COCO box (x, y, width, height) in pixels: a single pixel has width 1. Empty -> zeros."""
    x0, y0, x1, y1 = mask_to_box(mask)
    if not np.asarray(mask).any():
        return [0.0, 0.0, 0.0, 0.0]
    return [x0, y0, x1 - x0 + 1.0, y1 - y0 + 1.0]


def area(mask: np.ndarray) -> int:
    """Number of foreground pixels."""
    return int(np.count_nonzero(_as_bool(mask, "a mask")))


def objects_to_coco(
    masks: Mapping[int, np.ndarray],
    scores: Mapping[int, float] | None = None,
    names: Mapping[int, str] | None = None,
    frame_index: int | None = None,
) -> list[dict[str, Any]]:
    """One COCO-style record per object, in increasing id order.

    Each record: `id`, `name` (default "object_<id>"), `score` (None without scores), `bbox`
    (COCO xywh), `area`, `segmentation` (compressed RLE); plus `frame_index` when given.
    """
    records = []
    for obj_id in sorted(masks):
        _check_id(obj_id)
        mask = _as_bool(masks[obj_id], f"the mask of object {obj_id}")
        record: dict[str, Any] = {
            "id": int(obj_id),
            "name": names.get(obj_id, f"object_{obj_id}") if names else f"object_{obj_id}",
            "score": float(scores[obj_id]) if scores and obj_id in scores else None,
            "bbox": bbox_xywh(mask),
            "area": area(mask),
            "segmentation": encode_rle(mask),
        }
        if frame_index is not None:
            record["frame_index"] = int(frame_index)
        records.append(record)
    return records


def _json_default(value: Any) -> Any:
    """Serialise the numpy and path values that records commonly carry."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = None) -> None:
    """Write `obj` as UTF-8 JSON, atomically (numpy scalars / arrays and paths allowed)."""
    try:
        text = json.dumps(obj, default=_json_default, indent=indent, ensure_ascii=False)
    except TypeError as e:
        raise InvalidInputError(f"cannot write {path} as JSON: {e}") from e
    with atomic_output(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
