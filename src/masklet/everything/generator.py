"""Segment everything: prompt a grid of points over the image (and its crops), keep the good,
stable, distinct masks.

Same algorithm, parameters and records as the reference's `SAM2AutomaticMaskGenerator`, with
bounded memory: masks are filtered on their predicted IoU before they are upscaled, upscaled
a few at a time, and kept as run-length encodings between stages, so a large image or many
crops never hold more than one batch of low-resolution logits and one chunk of full-size masks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from masklet.errors import InvalidInputError
from masklet.everything.config import MaskGeneratorConfig, OutputMode
from masklet.everything.grids import CropBox, crop_boxes, layer_point_grids
from masklet.everything.masks import (
    Rle,
    masks_to_boxes,
    masks_to_rles,
    near_crop_edge,
    stability_scores,
)
from masklet.everything.nms import batched_nms
from masklet.image_predictor import LOGIT_CLAMP, ImagePredictor
from masklet.modeling.sam2 import SAM2Model
from masklet.postprocess import postprocess_masks
from masklet.transforms import transform_coords

# full-size logits upscaled at once (pixels summed over the masks of a chunk): ~128 MB float32
UPSCALE_CHUNK_PIXELS = 2**25
# the predictor's own threshold for hole / sprinkle cleaning (the reference leaves it at 0
# whatever the generator's mask_threshold is)
CLEANING_THRESHOLD = 0.0
# label of a foreground point prompt
FOREGROUND = 1

# called as progress(done, total) after each batch of point prompts
ProgressCallback = Callable[[int, int], None]


@dataclass
class _Found:
    """Masks kept so far, one row per mask.

    rles: whole-image masks. boxes: [K, 4] int64 xyxy (inclusive max). ious, stability: [K]
    float. points: [K, 2] float (x, y) prompt. crops: the crop each mask came from.
    """

    rles: list[Rle]
    boxes: Tensor
    ious: Tensor
    points: Tensor
    stability: Tensor
    crops: list[CropBox]

    @staticmethod
    def empty() -> _Found:
        return _Found(
            [], torch.zeros(0, 4, dtype=torch.int64), torch.zeros(0),
            torch.zeros(0, 2), torch.zeros(0), [],
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.rles)

    def select(self, index: Tensor) -> _Found:
        """Rows `index` ([K] int64), in that order."""
        rows = index.tolist()
        return _Found(
            [self.rles[i] for i in rows], self.boxes[index], self.ious[index],
            self.points[index], self.stability[index], [self.crops[i] for i in rows],
        )  # fmt: skip

    @staticmethod
    def cat(parts: list[_Found]) -> _Found:
        parts = [p for p in parts if len(p)]
        if not parts:
            return _Found.empty()
        return _Found(
            [r for p in parts for r in p.rles],
            torch.cat([p.boxes for p in parts]),
            torch.cat([p.ious for p in parts]),
            torch.cat([p.points for p in parts]),
            torch.cat([p.stability for p in parts]),
            [c for p in parts for c in p.crops],
        )


class AutomaticMaskGenerator:
    """Masks for everything in an image, from a grid of point prompts.

    generator = AutomaticMaskGenerator(model, points_per_side=32)
    records = generator.generate(image)  # [H, W, 3] uint8 RGB
    records[0]["segmentation"], records[0]["bbox"], records[0]["predicted_iou"], ...

    Parameters, defaults and records are those of the reference's `SAM2AutomaticMaskGenerator`;
    see `MaskGeneratorConfig` for what each parameter does.
    """

    def __init__(
        self,
        model: SAM2Model,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        *,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: OutputMode = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
    ) -> None:
        config = MaskGeneratorConfig(
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset,
            mask_threshold=mask_threshold,
            box_nms_thresh=box_nms_thresh,
            crop_n_layers=crop_n_layers,
            crop_nms_thresh=crop_nms_thresh,
            crop_overlap_ratio=crop_overlap_ratio,
            crop_n_points_downscale_factor=crop_n_points_downscale_factor,
            point_grids=None if point_grids is None else tuple(point_grids),
            min_mask_region_area=min_mask_region_area,
            output_mode=output_mode,
            use_m2m=use_m2m,
            multimask_output=multimask_output,
        )
        self._setup(model, config)

    @classmethod
    def from_config(cls, model: SAM2Model, config: MaskGeneratorConfig) -> AutomaticMaskGenerator:
        generator = cls.__new__(cls)
        generator._setup(model, config)
        return generator

    def _setup(self, model: SAM2Model, config: MaskGeneratorConfig) -> None:
        self.config = config
        self.predictor = ImagePredictor(model)
        if config.point_grids is not None:
            self.point_grids = [np.asarray(g, dtype=np.float64) for g in config.point_grids]
        else:
            assert config.points_per_side is not None  # checked by the config
            self.point_grids = layer_point_grids(
                config.points_per_side, config.crop_n_layers, config.crop_n_points_downscale_factor
            )

    def with_options(self, **changes: Any) -> AutomaticMaskGenerator:
        """A generator on the same model with some settings changed."""
        return AutomaticMaskGenerator.from_config(
            self.predictor.model, replace(self.config, **changes)
        )

    # ---- public -------------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self, image: np.ndarray, *, progress: ProgressCallback | None = None
    ) -> list[dict[str, Any]]:
        """Masks for everything in `image` ([H, W, 3] uint8 RGB), best first within each crop.

        Each record: segmentation ([H, W] bool array, or an RLE dict per `output_mode`),
        area (pixels), bbox ([x, y, w, h]), predicted_iou, point_coords ([[x, y]], the prompt),
        stability_score, crop_box ([x, y, w, h] of the crop the mask came from).
        `progress(done, total)` is called after each batch of prompts (raise in it to cancel).
        """
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3):
            raise InvalidInputError(
                "generate expects an [H, W, 3] uint8 RGB array (masklet.read_image gives one), "
                f"got {getattr(image, 'shape', type(image).__name__)}"
            )
        found = self._generate(image, progress)
        return [self._record(found, i) for i in range(len(found))]

    # ---- stages -------------------------------------------------------------------------------

    def _generate(self, image: np.ndarray, progress: ProgressCallback | None) -> _Found:
        image_hw = (int(image.shape[0]), int(image.shape[1]))
        crops = crop_boxes(image_hw, self.config.crop_n_layers, self.config.crop_overlap_ratio)
        batch = self.config.points_per_batch
        total = sum(-(-len(self.point_grids[c.layer]) // batch) for c in crops)
        done = [0]

        def step() -> None:
            done[0] += 1
            if progress is not None:
                progress(done[0], total)

        found = _Found.cat([self._process_crop(image, crop, image_hw, step) for crop in crops])
        if len(crops) > 1 and len(found):
            # duplicates between crops: the mask from the smaller crop wins
            areas = torch.tensor([c.area for c in found.crops], dtype=torch.int64)
            keep = batched_nms(
                found.boxes.float(), 1 / areas, torch.zeros(len(found)),
                self.config.crop_nms_thresh,
            )  # fmt: skip
            found = found.select(keep)
        return found

    def _process_crop(
        self,
        image: np.ndarray,
        crop: CropBox,
        image_hw: tuple[int, int],
        step: Callable[[], None],
    ) -> _Found:
        self.predictor.set_image(image[crop.y0 : crop.y1, crop.x0 : crop.x1])
        crop_h, crop_w = crop.hw
        points = self.point_grids[crop.layer] * np.array([[crop_w, crop_h]])  # [P, 2] pixels
        batch = self.config.points_per_batch
        parts = []
        for start in range(0, len(points), batch):
            parts.append(self._process_batch(points[start : start + batch], crop, image_hw))
            step()
        self.predictor.reset_predictor()
        found = _Found.cat(parts)
        if not len(found):
            return found
        # duplicates within the crop (boxes in crop pixels; NMS does not depend on a shift)
        keep = batched_nms(
            found.boxes.float(), found.ious, torch.zeros(len(found)), self.config.box_nms_thresh
        )
        found = found.select(keep)
        shift = torch.tensor([crop.x0, crop.y0])
        found.boxes = found.boxes + shift.repeat(2)[None]
        found.points = found.points + shift[None]
        return found

    def _process_batch(
        self, points_np: np.ndarray, crop: CropBox, image_hw: tuple[int, int]
    ) -> _Found:
        """Decode one batch of point prompts ([P, 2] crop pixels) and keep the good masks."""
        cfg = self.config
        points = torch.as_tensor(points_np, dtype=torch.float32)  # [P, 2]
        model_points = transform_coords(points, crop.hw, self.predictor.model.image_size)
        labels = torch.full((len(points), 1), FOREGROUND, dtype=torch.int32)
        low_res, ious = self.predictor.decode_points(
            model_points[:, None], labels, multimask_output=cfg.multimask_output
        )  # [P, M, h, w], [P, M]
        per_point = low_res.shape[1]
        low_res = low_res.flatten(0, 1)  # [P, M, h, w] -> [P*M, h, w]
        ious = ious.flatten(0, 1)  # [P*M]
        points = points.repeat_interleave(per_point, dim=0)  # [P*M, 2]
        if cfg.use_m2m:
            model_points = model_points.repeat_interleave(per_point, dim=0)
            low_res, ious = self._refine(model_points, low_res)
        if cfg.pred_iou_thresh > 0.0:
            # the predicted IoU does not depend on upscaling: filter before paying for it
            keep = ious > cfg.pred_iou_thresh
            low_res, ious, points = low_res[keep], ious[keep], points[keep]
        # masks upscaled at once: full-size logits of a big crop are large (48 MB at 4000x3000)
        n = max(1, UPSCALE_CHUNK_PIXELS // crop.area)
        parts = [
            self._finish_chunk(
                low_res[s : s + n], ious[s : s + n], points[s : s + n], crop, image_hw
            )
            for s in range(0, len(low_res), n)
        ]
        return _Found.cat(parts)

    def _refine(self, model_points: Tensor, low_res: Tensor) -> tuple[Tensor, Tensor]:
        """One more decoder pass per mask, prompted with its point and its own clamped logits
        (batches of points_per_batch). model_points: [K, 2]; low_res: [K, h, w] ->
        ([K, h, w] logits, [K] ious)."""
        batch = self.config.points_per_batch
        mask_input = low_res.clamp(-LOGIT_CLAMP, LOGIT_CLAMP)[:, None]  # [K, 1, h, w]
        labels = torch.full((len(model_points), 1), FOREGROUND, dtype=torch.int32)
        logits, ious = [], []
        for s in range(0, len(model_points), batch):
            lo, io = self.predictor.decode_points(
                model_points[s : s + batch, None], labels[s : s + batch],
                mask_input[s : s + batch], multimask_output=False,
            )  # fmt: skip
            logits.append(lo[:, 0])
            ious.append(io[:, 0])
        if not logits:
            return low_res, torch.zeros(0)
        return torch.cat(logits), torch.cat(ious)

    def _finish_chunk(
        self, low_res: Tensor, ious: Tensor, points: Tensor, crop: CropBox,
        image_hw: tuple[int, int],
    ) -> _Found:  # fmt: skip
        """Upscale, score stability, threshold, drop masks cut by the crop, encode.

        low_res: [K, h, w] logits; ious: [K]; points: [K, 2] crop pixels."""
        cfg = self.config
        area = cfg.min_mask_region_area
        logits = postprocess_masks(low_res[None], crop.hw, CLEANING_THRESHOLD, area, area)[0]
        stability = stability_scores(logits, cfg.mask_threshold, cfg.stability_score_offset)
        keep = torch.ones_like(ious, dtype=torch.bool)
        if cfg.stability_score_thresh > 0.0:
            keep = stability >= cfg.stability_score_thresh
        masks = logits[keep] > cfg.mask_threshold  # [K', H, W]
        del logits
        boxes = masks_to_boxes(masks)  # crop pixels
        shift = torch.tensor([crop.x0, crop.y0, crop.x0, crop.y0])
        inside = ~near_crop_edge(boxes + shift, crop, image_hw)
        masks = masks[inside]
        return _Found(
            masks_to_rles(masks, crop, image_hw), boxes[inside], ious[keep][inside],
            points[keep][inside], stability[keep][inside], [crop] * int(inside.sum()),
        )  # fmt: skip

    # ---- output -------------------------------------------------------------------------------

    def _record(self, found: _Found, i: int) -> dict[str, Any]:
        rle = found.rles[i]
        segmentation: Any
        if self.config.output_mode == "binary_mask":
            segmentation = rle.to_mask()
        elif self.config.output_mode == "coco_rle":
            segmentation = rle.to_coco()
        else:
            segmentation = rle.to_dict()
        x0, y0, x1, y1 = found.boxes[i].tolist()
        return {
            "segmentation": segmentation,
            "area": rle.area,
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
            "predicted_iou": float(found.ious[i]),
            "point_coords": [[float(v) for v in found.points[i].tolist()]],
            "stability_score": float(found.stability[i]),
            "crop_box": [float(v) for v in found.crops[i].xywh],
        }
