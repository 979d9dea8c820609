"""The one rule set for user prompts: clicks, labels, boxes and masks.

Every place that takes a prompt (typed `ObjectPrompt`s, the pipelines, both predictors) checks
it with these functions, so a prompt is accepted or refused the same way whichever front end it
came through, and the error names the field the user wrote (`prompts[2].points[0]`).

Rules:
- Coordinates are finite pixels (no NaN or infinity), >= 0, and on the image or frame:
  x in [0, W], y in [0, H] (a click on the far edge is still on the image).
- Labels are 1 (include) or 0 (exclude). SAM 2 also uses -1 inside the model for padding
  points; it is accepted only where padding makes sense (the image predictor's batched
  `[B, N, 2]` input, as in the reference) and refused in user prompts, where it would be a
  click that silently does nothing.
- A box is x1, y1, x2, y2 with x2 > x1 and y2 > y1 (top-left then bottom-right corner).
- A mask is `[H, W]` at the image or frame's size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from masklet.errors import InvalidPromptError
from masklet.modeling.labels import NEGATIVE_LABEL, PADDING_LABEL, POSITIVE_LABEL

INCLUDE, EXCLUDE = POSITIVE_LABEL, NEGATIVE_LABEL  # a click on / off the object
PADDING = PADDING_LABEL  # SAM 2's label for a padding point (ignored by the prompt encoder)


def _error(field: str, message: str) -> InvalidPromptError:
    return InvalidPromptError(f"{field}: {message}", field=field)


def check_finite(values: np.ndarray, field: str) -> None:
    """Every value a real number: NaN and infinity are refused."""
    if not np.isfinite(values).all():
        raise _error(field, f"coordinates must be finite numbers, got {values.tolist()}")


def check_points(points: np.ndarray, field: str, names: Sequence[str] | None = None) -> np.ndarray:
    """Clicks `[N, 2]` (N >= 1), finite and >= 0; returns them as float32.

    names: the field of each point (default `{field}[j]`)."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim == 2 and len(array) and array.shape[1] != 2:  # name the first bad pair
        where = names[0] if names is not None else f"{field}[0]"
        raise _error(where, f"a point is [x, y], got {array[0].tolist()}")
    if array.ndim != 2 or len(array) == 0:
        raise _error(field, f"expected a non-empty list of [x, y] pairs, got shape {array.shape}")
    for j, (x, y) in enumerate(array.tolist()):
        where = names[j] if names is not None else f"{field}[{j}]"
        check_finite(np.array([x, y]), where)
        if x < 0 or y < 0:
            raise _error(where, f"pixel coordinates must be >= 0, got ({x:g}, {y:g})")
    return array.astype(np.float32)


def check_labels(labels: np.ndarray, count: int, field: str, allow_padding: bool = False) -> None:
    """One label per point, each 1 (include) or 0 (exclude); -1 only with `allow_padding`."""
    array = np.asarray(labels)
    if array.shape != (count,):
        raise _error(field, f"{count} points need {count} labels, got shape {array.shape}")
    valid = (INCLUDE, EXCLUDE, PADDING) if allow_padding else (INCLUDE, EXCLUDE)
    for j, label in enumerate(array.tolist()):
        if label not in valid:
            hint = " (-1 marks a padding point inside SAM 2; a click needs 1 or 0)"
            raise _error(
                f"{field}[{j}]",
                f"a label is 1 (include) or 0 (exclude), got {label:g}"
                + (hint if label == PADDING else ""),
            )


def check_box(box: np.ndarray, field: str) -> np.ndarray:
    """A box `[4]` x1, y1, x2, y2: finite, >= 0, x2 > x1 and y2 > y1; returns float32."""
    array = np.asarray(box, dtype=np.float64)
    if array.shape != (4,):
        raise _error(field, f"expected [x1, y1, x2, y2], got shape {array.shape}")
    check_finite(array, field)
    x1, y1, x2, y2 = array.tolist()
    shown = ", ".join(f"{v:g}" for v in (x1, y1, x2, y2))
    if min(x1, y1) < 0:
        raise _error(field, f"pixel coordinates must be >= 0, got [{shown}]")
    if not (x2 > x1 and y2 > y1):
        raise _error(
            field, f"needs x2 > x1 and y2 > y1 (top-left, then bottom-right), got [{shown}]"
        )
    return array.astype(np.float32)


def check_inside(
    xy: np.ndarray, width: int, height: int, field: str, surface: str = "image"
) -> None:
    """Coordinates `[..., 2]` (x, y) on a `width` x `height` surface: [0, W] x [0, H]."""
    pairs = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    for x, y in pairs.tolist():
        if not (0 <= x <= width and 0 <= y <= height):
            raise _error(
                field,
                f"({x:g}, {y:g}) is outside the {width}x{height} {surface} "
                f"(x must be in 0..{width}, y in 0..{height})",
            )


def check_box_inside(box: np.ndarray, width: int, height: int, field: str, surface: str) -> None:
    """Both corners of a box `[4]` on the `width` x `height` surface."""
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64).tolist()
    if not (0 <= x1 and 0 <= y1 and x2 <= width and y2 <= height):
        raise _error(
            field,
            f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) is outside the {width}x{height} {surface}",
        )


def check_mask_size(mask: np.ndarray, width: int, height: int, field: str) -> None:
    if mask.shape != (height, width):
        raise _error(
            field,
            f"the mask is {mask.shape[-1]}x{mask.shape[0]}, the image is {width}x{height}; "
            "resize it to the image's size",
        )


def check_model_points(
    points: np.ndarray, width: int, height: int, normalize: bool,
    what: str = "point", surface: str = "image",
) -> None:  # fmt: skip
    """The predictors' check of points `[..., 2]` (x, y): finite and on the `surface`,
    [0, W] x [0, H] pixels, or [0, 1] when already relative (`normalize=False`)."""
    array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(array).all():
        bad = array[~np.isfinite(array).all(axis=1)][0].tolist()
        raise InvalidPromptError(f"{what} coordinates must be finite numbers, got {bad}")
    limit = np.array([width, height], np.float64) if normalize else np.ones(2)
    outside = ((array < 0) | (array > limit)).any(axis=1)
    if outside.any():
        x, y = array[outside][0].tolist()
        where = (
            f"{width}x{height} {surface}" if normalize else "[0, 1] range (normalize_coords=False)"
        )
        raise InvalidPromptError(f"{what} ({x:g}, {y:g}) lies outside the {where}")


def check_label_values(labels: np.ndarray, allow_padding: bool) -> None:
    """The predictors' check of point labels: 1 / 0, and -1 (padding) with `allow_padding`."""
    values = np.unique(np.asarray(labels)).tolist()
    valid = (INCLUDE, EXCLUDE, PADDING) if allow_padding else (INCLUDE, EXCLUDE)
    bad = [v for v in values if v not in valid]
    if bad:
        extra = " (or -1 for a padding point)" if allow_padding else ""
        raise InvalidPromptError(
            f"point labels must be 1 (include) or 0 (exclude){extra}, got {bad}"
        )
