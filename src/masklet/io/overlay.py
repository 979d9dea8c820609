"""Visualisations: tinted masks with outlines, click markers, and Replicate's mask renderings.

Everything is vectorised numpy on `[H, W, 3]` uint8 RGB images; outlines come from binary
erosion / dilation (scipy), so no OpenCV is needed.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from masklet.errors import InvalidInputError, InvalidPromptError

# A fixed qualitative palette for the first objects (well separated, readable on photos);
# ids past its end get golden-ratio hues, which never repeat and stay far apart.
_QUALITATIVE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),  # blue
    (255, 127, 14),  # orange
    (44, 160, 44),  # green
    (214, 39, 40),  # red
    (148, 103, 189),  # purple
    (23, 190, 207),  # cyan
    (227, 119, 194),  # pink
    (188, 189, 34),  # olive
    (140, 86, 75),  # brown
    (255, 221, 0),  # yellow
    (0, 128, 128),  # teal
    (174, 199, 232),  # light blue
    (255, 152, 150),  # salmon
    (152, 223, 138),  # light green
    (197, 176, 213),  # lavender
    (128, 0, 0),  # maroon
    (0, 0, 128),  # navy
    (255, 187, 120),  # peach
    (170, 255, 195),  # mint
    (128, 128, 128),  # gray
)
_GOLDEN_RATIO_CONJUGATE = 0.618033988749895
_GENERATED_SATURATION = 0.75
_GENERATED_VALUE = 0.95

OUTLINE_WIDTH = 2  # pixels of coloured line, inside the mask edge
HALO_WIDTH = 1  # pixels of dark / white border just outside the line
_LIGHT_LUMINANCE = 0.6  # a line lighter than this gets a dark border, else a white one
_DARK_HALO = (0, 0, 0)
_LIGHT_HALO = (255, 255, 255)

POSITIVE_CLICK_COLOR = (0, 255, 0)
NEGATIVE_CLICK_COLOR = (255, 0, 0)
_MIN_CLICK_RADIUS = 3
_CLICK_RADIUS_DIVISOR = 150  # radius grows with the image: min(H, W) / 150

GREEN_SCREEN = (0, 255, 0)
MASK_TYPES = ("binary", "highlighted", "greenscreen")

_EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def object_color(obj_id: int) -> tuple[int, int, int]:
    """A stable RGB colour per object id: ids 1..20 from a qualitative palette, then
    golden-ratio hues (distinct for every id)."""
    if obj_id < 0:
        raise InvalidInputError(f"object ids must be >= 0, got {obj_id}")
    if 1 <= obj_id <= len(_QUALITATIVE):
        return _QUALITATIVE[obj_id - 1]
    hue = (obj_id * _GOLDEN_RATIO_CONJUGATE) % 1.0
    rgb = colorsys.hsv_to_rgb(hue, _GENERATED_SATURATION, _GENERATED_VALUE)
    return (round(rgb[0] * 255), round(rgb[1] * 255), round(rgb[2] * 255))


def _check_image(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise InvalidInputError(
            f"expected an RGB image of shape [H, W, 3] and dtype uint8, got shape "
            f"{array.shape} and dtype {array.dtype}"
        )
    return array


def _check_masks(masks: Mapping[int, np.ndarray], hw: tuple[int, int]) -> dict[int, np.ndarray]:
    """Masks as bool arrays in increasing id order, each checked against the image size."""
    checked = {}
    for obj_id in sorted(masks):
        mask = np.asarray(masks[obj_id]).astype(bool, copy=False)
        if mask.shape != hw:
            raise InvalidInputError(
                f"the mask of object {obj_id} has shape {mask.shape} but the image is {hw}; "
                "masks must be at the image's resolution"
            )
        checked[obj_id] = mask
    return checked


def _check_color(color: Sequence[int]) -> tuple[int, int, int]:
    rgb = tuple(int(c) for c in color)
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise InvalidInputError(f"colours must be (r, g, b) with values in 0..255, got {color}")
    return rgb  # type: ignore[return-value]


def _luminance(color: tuple[int, int, int]) -> float:
    r, g, b = (c / 255.0 for c in color)
    return 0.299 * r + 0.587 * g + 0.114 * b  # ITU-R BT.601 luma weights


def _outline(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(line, halo) pixels of a mask's edge: `OUTLINE_WIDTH` px inside, `HALO_WIDTH` outside.

    `border_value=1` in the erosion keeps the image frame from being outlined where a mask
    runs off the image.
    """
    inner = ndimage.binary_erosion(
        mask, structure=_EIGHT_NEIGHBOURS, iterations=OUTLINE_WIDTH, border_value=1
    )
    outer = ndimage.binary_dilation(mask, structure=_EIGHT_NEIGHBOURS, iterations=HALO_WIDTH)
    return mask & ~inner, outer & ~mask


def _draw_clicks(canvas: np.ndarray, points: Sequence[tuple[float, float, int]]) -> None:
    """Draw clicks in place: green (label 1) or red (label 0) discs with a white rim."""
    h, w = canvas.shape[:2]
    radius = max(_MIN_CLICK_RADIUS, round(min(h, w) / _CLICK_RADIUS_DIVISOR))
    rim = radius + 1
    for x, y, label in points:
        if label not in (0, 1):
            raise InvalidPromptError(
                f"click labels must be 1 (foreground) or 0 (background), got {label}"
            )
        cx, cy = round(float(x)), round(float(y))
        y0, y1 = max(cy - rim, 0), min(cy + rim + 1, h)
        x0, x1 = max(cx - rim, 0), min(cx + rim + 1, w)
        if y0 >= y1 or x0 >= x1:
            continue  # entirely outside the image
        yy, xx = np.ogrid[y0:y1, x0:x1]
        dist2 = (yy - cy) ** 2 + (xx - cx) ** 2  # [h', w'] squared distance to the click
        window = canvas[y0:y1, x0:x1]
        window[dist2 <= rim**2] = _LIGHT_HALO
        color = POSITIVE_CLICK_COLOR if label == 1 else NEGATIVE_CLICK_COLOR
        window[dist2 <= radius**2] = color


BOX_COLOR = (255, 255, 255)  # prompt boxes: a white frame with a dark border
BOX_WIDTH = 2


def _draw_box(canvas: np.ndarray, box: Sequence[float]) -> None:
    """A prompt box x1, y1, x2, y2 (pixels) as a `BOX_WIDTH`-px frame, in place."""
    h, w = canvas.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, x2 = max(0, min(x1, w - 1)), max(0, min(x2, w - 1))
    y1, y2 = max(0, min(y1, h - 1)), max(0, min(y2, h - 1))
    frame = np.zeros((h, w), dtype=bool)
    frame[y1 : y2 + 1, x1 : x2 + 1] = True
    inner = np.zeros_like(frame)
    inner[y1 + BOX_WIDTH : y2 + 1 - BOX_WIDTH, x1 + BOX_WIDTH : x2 + 1 - BOX_WIDTH] = True
    line = frame & ~inner
    canvas[ndimage.binary_dilation(line) & ~line] = _DARK_HALO
    canvas[line] = BOX_COLOR


def draw_overlay(
    image: np.ndarray,
    masks: Mapping[int, np.ndarray],
    alpha: float = 0.5,
    outline: bool = True,
    colors: Mapping[int, tuple[int, int, int]] | None = None,
    points: Sequence[tuple[float, float, int]] | None = None,
) -> np.ndarray:
    """Tint each object's pixels toward its colour and outline it.

    Objects are drawn in increasing id order, so where masks overlap the larger id is on top
    (both tints apply; the larger id's line covers the smaller's). Borders are drawn under
    every line.

    Arguments:
      image: `[H, W, 3]` uint8 RGB (not modified).
      masks: object id -> `[H, W]` mask (nonzero = object).
      alpha: tint strength, 0 (none) .. 1 (solid colour).
      outline: draw a `OUTLINE_WIDTH`-px line in the object colour inside the mask edge, with a
        `HALO_WIDTH`-px dark or white border outside it (whichever contrasts with the line).
      colors: object id -> RGB; missing ids use `object_color`.
      points: clicks (x, y, label) in image pixels, label 1 = foreground (green dot),
        0 = background (red dot).

    Returns:
      `[H, W, 3]` uint8 RGB.
    """
    base = _check_image(image)
    if not 0.0 <= alpha <= 1.0:
        raise InvalidInputError(f"alpha must be in [0, 1], got {alpha}")
    checked = _check_masks(masks, base.shape[:2])
    palette = {i: _check_color((colors or {}).get(i) or object_color(i)) for i in checked}

    canvas = base.astype(np.float32)
    for obj_id, mask in checked.items():
        tint = np.asarray(palette[obj_id], dtype=np.float32)
        canvas[mask] = canvas[mask] * (1.0 - alpha) + tint * alpha
    out = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)

    if outline:
        edges = {obj_id: _outline(mask) for obj_id, mask in checked.items()}
        # All halos first, then all lines: a neighbour's halo never hides an object's line.
        for obj_id, (_, halo) in edges.items():
            light_line = _luminance(palette[obj_id]) > _LIGHT_LUMINANCE
            out[halo] = _DARK_HALO if light_line else _LIGHT_HALO
        for obj_id, (line, _) in edges.items():
            out[line] = palette[obj_id]
    if points:
        _draw_clicks(out, points)
    return out


def render_mask_type(
    image: np.ndarray,
    masks: Mapping[int, np.ndarray],
    mask_type: str = "highlighted",
    *,
    colors: Mapping[int, tuple[int, int, int]] | None = None,
    alpha: float = 0.5,
    points: Sequence[tuple[float, float, int]] | None = None,
    boxes: Sequence[Sequence[float]] | None = None,
) -> np.ndarray:
    """Render one frame: the one overlay function of every output (images, videos, server).

    `mask_type` is Replicate's sam-2-video option:
    - "binary": white foreground (all objects merged) on black.
    - "highlighted": the original with coloured overlays (`draw_overlay`, with `colors`,
      `alpha`, click `points` and prompt `boxes` drawn).
    - "greenscreen": foreground pixels kept, background pure green (0, 255, 0).

    Returns:
      `[H, W, 3]` uint8 RGB.
    """
    if mask_type not in MASK_TYPES:
        raise InvalidInputError(
            f"unknown mask_type {mask_type!r}; valid values are {', '.join(MASK_TYPES)}"
        )
    base = _check_image(image)
    if mask_type == "highlighted":
        out = draw_overlay(base, masks, alpha=alpha, colors=colors, points=points)
        for box in boxes or ():
            _draw_box(out, box)
        return out
    checked = _check_masks(masks, base.shape[:2])
    foreground = np.zeros(base.shape[:2], dtype=bool)
    for mask in checked.values():
        foreground |= mask
    if mask_type == "binary":
        out = np.zeros_like(base)
        out[foreground] = 255
        return out
    out = base.copy()
    out[~foreground] = GREEN_SCREEN
    return out
