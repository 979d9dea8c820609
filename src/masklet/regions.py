"""Boxes, masks and names of found regions, shared by text prompts and segment everything."""

from __future__ import annotations

import numpy as np

# a found box overlapping every tracked object less than this is a new object
DEFAULT_NEW_OBJECT_IOU = 0.3


def label_to_name(label: str, k: int) -> str:
    """The name of the k-th object labelled `label`: ("red car", 2) -> "red_car_2"."""
    return f"{'_'.join(label.split()) or 'object'}_{k}"


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box pair: a [N, 4], b [M, 4] (x1, y1, x2, y2) -> [N, M]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)  # [N]
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)  # [M]
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])  # [N, M, 2]
    inter = (bottom_right - top_left).clip(0).prod(axis=-1)  # [N, M]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """Box [4] (x1, y1, x2, y2, exclusive ends like detector boxes) around a [H, W] bool mask;
    None when the mask is empty."""
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    if cols.size == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)
