"""Where the automatic mask generator prompts: point grids and the crop boxes of each layer.

Layer 0 is the whole image; layer i (1-based) cuts the image into 2**i x 2**i overlapping crops
and prompts each with its own grid, so small objects get more points per pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from masklet.errors import InvalidInputError


def point_grid(points_per_side: int) -> np.ndarray:
    """[n*n, 2] (x, y) points in [0, 1], at the centres of an n x n grid of cells, row by row
    (x varies fastest)."""
    if points_per_side < 1:
        raise InvalidInputError(f"points_per_side must be >= 1, got {points_per_side}")
    half_cell = 1.0 / (2 * points_per_side)
    side = np.linspace(half_cell, 1.0 - half_cell, points_per_side)  # [n]
    xs, ys = np.meshgrid(side, side)  # [n, n] each; rows vary in y
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)  # [n, n, 2] -> [n*n, 2]


def layer_point_grids(
    points_per_side: int, crop_n_layers: int, downscale_factor: int
) -> list[np.ndarray]:
    """One grid per layer (0..crop_n_layers); layer i has points_per_side / factor**i points
    per side, rounded down."""
    if downscale_factor < 1:
        raise InvalidInputError(
            f"crop_n_points_downscale_factor must be >= 1, got {downscale_factor}"
        )
    return [
        point_grid(int(points_per_side / downscale_factor**layer))
        for layer in range(crop_n_layers + 1)
    ]


@dataclass(frozen=True)
class CropBox:
    """A crop of the image in pixels, x0, y0 inclusive and x1, y1 exclusive, and its layer."""

    x0: int
    y0: int
    x1: int
    y1: int
    layer: int

    @property
    def xyxy(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1

    @property
    def xywh(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1 - self.x0, self.y1 - self.y0

    @property
    def hw(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def area(self) -> int:
        return (self.x1 - self.x0) * (self.y1 - self.y0)


def crop_boxes(
    image_hw: tuple[int, int], crop_n_layers: int, overlap_ratio: float
) -> list[CropBox]:
    """The whole image, then for each layer i >= 1 its 2**i x 2**i crops, column by column
    (all crops of the first column of x0, top to bottom, then the next).

    Neighbouring crops of layer i overlap by `overlap_ratio * short_side * 2 / 2**i` pixels
    (rounded down); crops are equal-sized, the last ones clipped to the image.
    """
    height, width = image_hw
    boxes = [CropBox(0, 0, width, height, 0)]
    short_side = min(height, width)
    for layer in range(1, crop_n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * short_side * (2 / per_side))
        crop_w = _crop_length(width, per_side, overlap)
        crop_h = _crop_length(height, per_side, overlap)
        for i in range(per_side):
            x0 = int((crop_w - overlap) * i)
            for j in range(per_side):
                y0 = int((crop_h - overlap) * j)
                boxes.append(
                    CropBox(x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height), layer)
                )
    return boxes


def _crop_length(length: int, n_crops: int, overlap: int) -> int:
    """Side of each of `n_crops` equal crops covering `length` with `overlap` between them."""
    return int(math.ceil((overlap * (n_crops - 1) + length) / n_crops))
