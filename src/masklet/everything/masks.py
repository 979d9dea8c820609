"""Mask helpers for automatic mask generation: run-length encoding, boxes, stability.

Masks are held as uncompressed RLEs (COCO's column-major runs) between the generator's stages,
so a record costs a few hundred integers instead of H x W bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from masklet.everything.grids import CropBox

# A box closer than this (pixels) to a crop edge that is not an image edge was cut by the crop.
CROP_EDGE_TOLERANCE = 20.0


@dataclass(frozen=True, eq=False)
class Rle:
    """Uncompressed run-length encoding of one [height, width] mask in column-major order.

    counts: [R] int64 run lengths, alternating background / foreground, starting with
    background (0 when the first pixel is foreground). Same layout as COCO's uncompressed RLE.
    """

    height: int
    width: int
    counts: np.ndarray

    @property
    def area(self) -> int:
        return int(self.counts[1::2].sum())

    def to_mask(self) -> np.ndarray:
        """[height, width] bool."""
        values = np.zeros(len(self.counts), dtype=bool)
        values[1::2] = True
        flat = np.repeat(values, self.counts)  # column-major pixels
        return flat.reshape(self.width, self.height).T

    def to_dict(self) -> dict[str, Any]:
        """{"size": [h, w], "counts": [int, ...]}: pycocotools' uncompressed RLE."""
        return {"size": [self.height, self.width], "counts": self.counts.tolist()}

    def to_coco(self) -> dict[str, Any]:
        """pycocotools' compressed RLE, counts as a str (JSON-ready)."""
        from pycocotools import mask as mask_utils

        rle = mask_utils.frPyObjects(self.to_dict(), self.height, self.width)
        rle["counts"] = rle["counts"].decode("utf-8")
        return rle


def masks_to_rles(masks: Tensor, crop: CropBox, image_hw: tuple[int, int]) -> list[Rle]:
    """Encode crop masks as RLEs of the whole image (zero outside the crop), without ever
    building the full-size masks.

    masks: [K, h, w] bool, (h, w) = crop.hw. Returns K RLEs of size image_hw.
    """
    height, width = image_hw
    total = height * width
    k = masks.shape[0]
    if k == 0:
        return []
    cols = masks.transpose(1, 2).to(torch.uint8)  # [K, h, w] -> [K, w, h] column-major
    # a zero pixel above and below each column, so runs start and end inside the column
    padded = F.pad(cols, (1, 1))  # [K, w, h + 2]
    change = (padded[..., 1:] != padded[..., :-1]).nonzero()  # [C, 3] (mask, column, row)
    change_np = change.cpu().numpy()
    # boundary in the whole image, column-major: run starts / ends alternate per column
    bounds = (change_np[:, 1] + crop.x0) * height + change_np[:, 2] + crop.y0  # [C]
    splits = np.searchsorted(change_np[:, 0], np.arange(1, k))
    out = []
    for b in np.split(bounds.astype(np.int64), splits):
        # a run ending at a column's last pixel and one starting at the next column's first
        # are one run in the whole image (only when the crop spans the image height)
        if len(b) > 1:
            joined = b[1:] == b[:-1]
            keep = np.ones(len(b), dtype=bool)
            keep[1:][joined] = False
            keep[:-1][joined] = False
            b = b[keep]
        if len(b) and b[-1] == total:
            b = b[:-1]  # the mask runs to the last pixel: no trailing empty run
        edges = np.concatenate([[0], b, [total]])
        out.append(Rle(height, width, np.diff(edges)))
    return out


def masks_to_boxes(masks: Tensor) -> Tensor:
    """[K, h, w] bool -> [K, 4] int64 (x0, y0, x1, y1), max coordinates inclusive;
    (0, 0, 0, 0) for an empty mask."""
    k, h, w = masks.shape
    if k == 0:
        return torch.zeros(0, 4, dtype=torch.int64, device=masks.device)
    rows = masks.any(dim=-1)  # [K, h]
    cols = masks.any(dim=-2)  # [K, w]
    # argmax returns the first maximum: the first True from either end
    top = rows.to(torch.uint8).argmax(dim=-1)
    bottom = h - 1 - rows.flip(-1).to(torch.uint8).argmax(dim=-1)
    left = cols.to(torch.uint8).argmax(dim=-1)
    right = w - 1 - cols.flip(-1).to(torch.uint8).argmax(dim=-1)
    boxes = torch.stack([left, top, right, bottom], dim=-1)  # [K, 4]
    return boxes * rows.any(dim=-1, keepdim=True)  # empty masks -> zeros


def stability_scores(logits: Tensor, mask_threshold: float, offset: float) -> Tensor:
    """IoU of the masks thresholded at `mask_threshold +- offset`: [K, h, w] -> [K] float.

    The high-threshold mask lies inside the low-threshold one, so the IoU is a ratio of areas.
    """
    inner = (logits > mask_threshold + offset).sum(dim=(-2, -1))
    outer = (logits > mask_threshold - offset).sum(dim=(-2, -1))
    return inner / outer


def near_crop_edge(boxes: Tensor, crop: CropBox, image_hw: tuple[int, int]) -> Tensor:
    """[K] bool: the box (image pixels, xyxy) touches an edge of the crop that is not an edge
    of the image, i.e. the crop probably cut the object.

    boxes: [K, 4] in image coordinates.
    """
    crop_t = torch.tensor(crop.xyxy, dtype=torch.float, device=boxes.device)
    image_t = torch.tensor([0, 0, image_hw[1], image_hw[0]], dtype=torch.float, device=boxes.device)
    b = boxes.float()
    at_crop = (b - crop_t).abs() <= CROP_EDGE_TOLERANCE
    at_image = (b - image_t).abs() <= CROP_EDGE_TOLERANCE
    return (at_crop & ~at_image).any(dim=-1)
