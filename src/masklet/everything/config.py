"""Settings of the automatic mask generator: the reference's parameters, names and defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from masklet.errors import InvalidInputError

OutputMode = Literal["binary_mask", "uncompressed_rle", "coco_rle"]
OUTPUT_MODES: tuple[str, ...] = get_args(OutputMode)


@dataclass(frozen=True, eq=False)
class MaskGeneratorConfig:
    """How `AutomaticMaskGenerator` prompts, filters and returns masks.

    points_per_side: grid of n x n point prompts on layer 0 (None: give `point_grids`).
    points_per_batch: prompts decoded at once (more is faster, uses more memory).
    pred_iou_thresh: keep masks whose predicted IoU is above this (0 turns it off).
    stability_score_thresh: keep masks whose stability score is at least this (0: off).
    stability_score_offset: the logit shift the stability score compares masks under.
    mask_threshold: logit threshold that makes masks binary.
    box_nms_thresh: box IoU above which a lower-scored mask of the same crop is dropped.
    crop_n_layers: extra layers of crops; layer i has 2**i x 2**i crops.
    crop_nms_thresh: box IoU above which duplicates between crops are dropped (smaller crops
      win).
    crop_overlap_ratio: overlap of neighbouring first-layer crops, as a fraction of the short
      image side (halved at each further layer).
    crop_n_points_downscale_factor: layer i has points_per_side / factor**i points per side.
    point_grids: explicit [P, 2] grids in [0, 1], one per layer (instead of points_per_side).
    min_mask_region_area: holes and islands up to this area (pixels of the low-resolution
      mask) are filled / removed before upscaling, as the reference's predictor does.
    output_mode: "binary_mask" ([H, W] bool arrays), "uncompressed_rle" or "coco_rle".
    use_m2m: refine every mask once more, prompting with its point and its own logits.
    multimask_output: three masks per point (True) or one.
    """

    points_per_side: int | None = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    point_grids: tuple[np.ndarray, ...] | None = None
    min_mask_region_area: int = 0
    output_mode: OutputMode = "binary_mask"
    use_m2m: bool = False
    multimask_output: bool = True

    def __post_init__(self) -> None:
        if (self.points_per_side is None) == (self.point_grids is None):
            raise InvalidInputError(
                "give exactly one of points_per_side (a regular grid) and point_grids (explicit "
                f"grids); got points_per_side={self.points_per_side} and "
                f"point_grids={'None' if self.point_grids is None else 'a list'}"
            )
        if self.point_grids is not None:
            if len(self.point_grids) != self.crop_n_layers + 1:
                raise InvalidInputError(
                    f"point_grids needs one grid per layer: crop_n_layers={self.crop_n_layers} "
                    f"means {self.crop_n_layers + 1} grids, got {len(self.point_grids)}"
                )
            for grid in self.point_grids:
                g = np.asarray(grid)
                if g.ndim != 2 or g.shape[1] != 2 or ((g < 0) | (g > 1)).any():
                    raise InvalidInputError(
                        f"each point grid must be [P, 2] (x, y) in [0, 1], got shape {g.shape}"
                    )
        if self.points_per_side is not None and self.points_per_side < 1:
            raise InvalidInputError(f"points_per_side must be >= 1, got {self.points_per_side}")
        if (
            self.points_per_side is not None
            and self.crop_n_points_downscale_factor >= 1
            and int(self.points_per_side / self.crop_n_points_downscale_factor**self.crop_n_layers)
            < 1
        ):
            raise InvalidInputError(
                f"crop layer {self.crop_n_layers} would get no points: points_per_side="
                f"{self.points_per_side} / crop_n_points_downscale_factor="
                f"{self.crop_n_points_downscale_factor}**{self.crop_n_layers} < 1; lower "
                "crop_n_layers or the downscale factor, or raise points_per_side"
            )
        if self.points_per_batch < 1:
            raise InvalidInputError(f"points_per_batch must be >= 1, got {self.points_per_batch}")
        if self.crop_n_layers < 0:
            raise InvalidInputError(f"crop_n_layers must be >= 0, got {self.crop_n_layers}")
        if self.crop_n_points_downscale_factor < 1:
            raise InvalidInputError(
                "crop_n_points_downscale_factor must be >= 1, got "
                f"{self.crop_n_points_downscale_factor}"
            )
        if not 0 <= self.crop_overlap_ratio < 1:
            raise InvalidInputError(
                f"crop_overlap_ratio must be in [0, 1), got {self.crop_overlap_ratio}"
            )
        if self.min_mask_region_area < 0:
            raise InvalidInputError(
                f"min_mask_region_area must be >= 0 (0 turns it off), got "
                f"{self.min_mask_region_area}"
            )
        if self.output_mode not in OUTPUT_MODES:
            raise InvalidInputError(
                f"output_mode must be one of {', '.join(OUTPUT_MODES)}; got {self.output_mode!r}"
            )
