"""Image predictor: embed an image once, then predict masks for any number of prompts.

Same method names and semantics as SAM 2's `SAM2ImagePredictor`, so code written for it keeps
working; it also works at any model `image_size`, runs hole filling / sprinkle removal on the
CPU, checks its inputs, and exposes object scores through `predict_full`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from masklet.errors import InvalidInputError, InvalidPromptError
from masklet.modeling.logits import LOGIT_CLAMP
from masklet.modeling.prompt_encoder import BOX_BOTTOM_RIGHT_LABEL, BOX_TOP_LEFT_LABEL
from masklet.modeling.sam2 import SAM2Model
from masklet.postprocess import postprocess_masks
from masklet.precision import Precision, in_precision, predictor_precision
from masklet.prompt_rules import check_label_values, check_model_points
from masklet.transforms import (
    image_to_tensor,
    images_to_batch,
    transform_boxes,
    transform_coords,
)

ArrayLike = np.ndarray | Tensor | Sequence[float] | Sequence[Sequence[float]]


@dataclass
class Prediction:
    """Masks for one image.

    masks: [B, M, H, W] bool (or float logits with return_logits) at the original size.
    ious: [B, M] predicted IoU. low_res_logits: [B, M, 4h, 4w] (clamped to +-32).
    object_scores: [B, 1] "object visible" logits.
    """

    masks: Tensor
    ious: Tensor
    low_res_logits: Tensor
    object_scores: Tensor


@dataclass
class _Features:
    image_embed: Tensor  # [N, C, h, w]
    high_res: list[Tensor]  # per level [N, C_l, h_l, w_l]
    orig_hw: list[tuple[int, int]]
    batch: bool


class ImagePredictor:
    """Predict masks on an image from points, boxes and mask prompts."""

    def __init__(
        self,
        model: SAM2Model,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
        *,
        precision: str | Precision | None = None,
    ) -> None:
        """precision: fp32, bf16, fp16 or auto (see `masklet.precision`); None: the one
        `load_model(..., precision=)` gave the model, else fp32."""
        self.model = model
        self.precision = predictor_precision(model, precision, model.device)
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area
        self._features: _Features | None = None

    @property
    def device(self) -> torch.device:
        return self.model.device

    # ---- embedding ----------------------------------------------------------------------------

    def reset_predictor(self) -> None:
        """Forget the current image(s)."""
        self._features = None

    @torch.inference_mode()
    def set_image(self, image: np.ndarray | Image.Image) -> None:
        """Embed one image: [H, W, 3] uint8 RGB array or a PIL image, any size."""
        self.reset_predictor()
        x = image_to_tensor(image, self.model.image_size, self.device)[None]  # [1, 3, S, S]
        hw = _image_hw(image)
        self._features = self._embed(x, [hw], batch=False)

    @torch.inference_mode()
    def set_image_batch(self, images: Sequence[np.ndarray]) -> None:
        """Embed several images at once (use `predict_batch` afterwards)."""
        self.reset_predictor()
        if not isinstance(images, (list, tuple)) or not images:
            raise InvalidInputError("set_image_batch expects a non-empty list of [H, W, 3] arrays")
        x = images_to_batch(list(images), self.model.image_size, self.device)
        self._features = self._embed(x, [_image_hw(im) for im in images], batch=True)

    @in_precision
    def _embed(self, x: Tensor, orig_hw: list[tuple[int, int]], batch: bool) -> _Features:
        feats = self.model.forward_image(x)
        image_embed, high_res = self.model.image_embeddings(feats)
        return _Features(image_embed, high_res, orig_hw, batch)

    def get_image_embedding(self) -> Tensor:
        """[N, C, h, w] embedding of the current image(s)."""
        return self._require_features("get_image_embedding").image_embed

    @property
    def is_image_set(self) -> bool:
        return self._features is not None

    @property
    def orig_hw(self) -> list[tuple[int, int]]:
        return list(self._require_features("orig_hw").orig_hw)

    def _require_features(self, what: str) -> _Features:
        if self._features is None:
            raise InvalidInputError(
                f"an image must be set with .set_image(...) or .set_image_batch(...) before {what}"
            )
        return self._features

    # ---- prediction -------------------------------------------------------------------------

    def predict(
        self,
        point_coords: ArrayLike | None = None,
        point_labels: ArrayLike | None = None,
        box: ArrayLike | None = None,
        mask_input: ArrayLike | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for prompts on the image given to `set_image`.

        point_coords: [N, 2] or [B, N, 2] (x, y) pixels (or [0, 1] with normalize_coords=False).
        point_labels: [N] or [B, N]: 1 include, 0 exclude.
        box: [4] or [B, 4] x1, y1, x2, y2. mask_input: [1, 4h, 4w] or [B, 1, 4h, 4w] logits from
        a previous call. Returns (masks [(B,) M, H, W], ious [(B,) M], low-res logits
        [(B,) M, 4h, 4w]) as numpy; the batch dimension is dropped when B == 1.
        """
        features = self._require_features("predict")
        out = self.predict_full(
            point_coords=point_coords,
            point_labels=point_labels,
            box=box,
            mask_input=mask_input,
            multimask_output=multimask_output,
            return_logits=return_logits,
            normalize_coords=normalize_coords,
            image_index=len(features.orig_hw) - 1,
        )
        return _squeeze_numpy(out)

    def predict_batch(
        self,
        point_coords_batch: Sequence[ArrayLike | None] | None = None,
        point_labels_batch: Sequence[ArrayLike | None] | None = None,
        box_batch: Sequence[ArrayLike | None] | None = None,
        mask_input_batch: Sequence[ArrayLike | None] | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """`predict` on each image of `set_image_batch`, with one prompt set per image."""
        features = self._require_features("predict_batch")
        if not features.batch:
            raise InvalidInputError("predict_batch needs images set with .set_image_batch(...)")
        n = len(features.orig_hw)
        for name, seq in (
            ("point_coords_batch", point_coords_batch),
            ("point_labels_batch", point_labels_batch),
            ("box_batch", box_batch),
            ("mask_input_batch", mask_input_batch),
        ):
            if seq is not None and len(seq) != n:
                raise InvalidPromptError(f"{name} has {len(seq)} entries for {n} images")
        masks, ious, logits = [], [], []
        for i in range(n):
            out = self.predict_full(
                point_coords=point_coords_batch[i] if point_coords_batch is not None else None,
                point_labels=point_labels_batch[i] if point_labels_batch is not None else None,
                box=box_batch[i] if box_batch is not None else None,
                mask_input=mask_input_batch[i] if mask_input_batch is not None else None,
                multimask_output=multimask_output,
                return_logits=return_logits,
                normalize_coords=normalize_coords,
                image_index=i,
            )
            m, s, lo = _squeeze_numpy(out)
            masks.append(m)
            ious.append(s)
            logits.append(lo)
        return masks, ious, logits

    @torch.inference_mode()
    def predict_full(
        self,
        point_coords: ArrayLike | None = None,
        point_labels: ArrayLike | None = None,
        box: ArrayLike | None = None,
        mask_input: ArrayLike | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
        image_index: int = 0,
    ) -> Prediction:
        """Like `predict`, for image `image_index`, returning tensors with a batch dimension and
        the object scores."""
        features = self._require_features("predict")
        hw = features.orig_hw[image_index]
        points = self._prepare_points(
            point_coords, point_labels, box, hw=hw, normalize=normalize_coords
        )
        mask = self._prepare_mask(mask_input)
        low_res, ious, object_scores = self._decode(points, mask, multimask_output, image_index)
        # holes and sprinkles are cleaned at low resolution, then upscaled (as the reference)
        masks = postprocess_masks(
            low_res, hw, self.mask_threshold, self.max_hole_area, self.max_sprinkle_area
        )
        low_res = low_res.float().clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
        if not return_logits:
            masks = masks > self.mask_threshold
        return Prediction(masks, ious.float(), low_res, object_scores.float())

    @torch.inference_mode()
    def decode_points(
        self,
        point_coords: Tensor,
        point_labels: Tensor,
        mask_input: Tensor | None = None,
        *,
        multimask_output: bool = True,
        image_index: int = 0,
    ) -> tuple[Tensor, Tensor]:
        """Raw decoder output for batched points already in model-input coordinates.

        For callers that run many prompts per image and postprocess themselves (automatic mask
        generation): no validation, no hole filling, no upscaling, no clamping.

        point_coords: [B, N, 2] (x, y) in model-input pixels (see `transforms.transform_coords`).
        point_labels: [B, N] int. mask_input: [B, 1, 4h, 4w] low-res logits or None.
        Returns (low-res logits [B, M, 4h, 4w] float, predicted IoU [B, M] float).
        """
        self._require_features("decode_points")
        points = (point_coords.to(self.device), point_labels.to(self.device))
        mask = None if mask_input is None else mask_input.to(self.device)
        low_res, ious, _ = self._decode(points, mask, multimask_output, image_index)
        return low_res.float(), ious.float()

    @in_precision
    def _decode(
        self,
        points: tuple[Tensor, Tensor] | None,
        mask: Tensor | None,
        multimask_output: bool,
        image_index: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Prompt encoder + mask decoder on image `image_index`: (low-res logits [B, M, 4h, 4w],
        ious [B, M], object scores [B, 1])."""
        features = self._require_features("predict")
        model = self.model
        sparse, dense = model.sam_prompt_encoder(points=points, boxes=None, masks=mask)
        repeat = points is not None and points[0].shape[0] > 1  # several prompts, one image
        decoded = model.sam_mask_decoder(
            image_embeddings=features.image_embed[image_index : image_index + 1],
            image_pe=model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=repeat,
            high_res_features=[f[image_index : image_index + 1] for f in features.high_res],
        )
        return decoded.masks, decoded.ious, decoded.object_score_logits

    def _prepare_points(
        self,
        point_coords: ArrayLike | None,
        point_labels: ArrayLike | None,
        box: ArrayLike | None,
        *,
        hw: tuple[int, int],
        normalize: bool,
    ) -> tuple[Tensor, Tensor] | None:
        """Points and box corners as one (coords [B, P, 2], labels [B, P]) model input."""
        size = self.model.image_size
        coords = labels = None
        if point_coords is not None:
            if point_labels is None:
                raise InvalidPromptError("point_labels must be given with point_coords")
            coords = torch.as_tensor(np.asarray(point_coords), dtype=torch.float)
            labels = torch.as_tensor(np.asarray(point_labels)).to(torch.int32)
            if coords.dim() == 2:
                coords, labels = coords[None], labels[None]  # [N, 2] -> [1, N, 2]
            if coords.dim() != 3 or coords.shape[-1] != 2 or labels.shape != coords.shape[:2]:
                raise InvalidPromptError(
                    f"point_coords must be [N, 2] or [B, N, 2] with point_labels [N] or [B, N]; "
                    f"got {tuple(coords.shape)} and {tuple(labels.shape)}"
                )
            _check_labels(labels)
            _check_inside(coords, hw, normalize, "point")
            coords = transform_coords(coords, hw, size, normalize)
        elif point_labels is not None:
            raise InvalidPromptError("point_labels given without point_coords")
        if box is not None:
            boxes = torch.as_tensor(np.asarray(box), dtype=torch.float).reshape(-1, 4)
            if bool((boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any()):
                raise InvalidPromptError(
                    f"a box must be x1, y1, x2, y2 with x2 >= x1, y2 >= y1; got {boxes.tolist()}"
                )
            _check_inside(boxes.reshape(-1, 2, 2), hw, normalize, "box corner")
            corners = transform_boxes(boxes, hw, size, normalize)  # [B, 2, 2]
            corner_labels = torch.tensor(
                [[BOX_TOP_LEFT_LABEL, BOX_BOTTOM_RIGHT_LABEL]], dtype=torch.int32
            )
            corner_labels = corner_labels.repeat(corners.shape[0], 1)
            if coords is not None and labels is not None:
                if coords.shape[0] != corners.shape[0]:
                    raise InvalidPromptError(
                        f"{corners.shape[0]} boxes but {coords.shape[0]} point sets; give one "
                        "point set per box ([B, N, 2]) or a single box"
                    )
                # the reference puts box corners before the points
                coords = torch.cat([corners, coords], dim=1)
                labels = torch.cat([corner_labels, labels], dim=1)
            else:
                coords, labels = corners, corner_labels
        if coords is None or labels is None:
            return None
        return coords.to(self.device), labels.to(self.device)

    def _prepare_mask(self, mask_input: ArrayLike | None) -> Tensor | None:
        if mask_input is None:
            return None
        mask = torch.as_tensor(np.asarray(mask_input), dtype=torch.float, device=self.device)
        if mask.dim() == 3:
            mask = mask[None]  # [1, h, w] -> [1, 1, h, w]
        expected = self.model.sam_prompt_encoder.mask_input_size
        if mask.dim() != 4 or mask.shape[1] != 1 or tuple(mask.shape[-2:]) != tuple(expected):
            raise InvalidPromptError(
                f"mask_input must be [1, {expected[0]}, {expected[1]}] or [B, 1, {expected[0]}, "
                f"{expected[1]}] low-res logits (a previous call's third output), got "
                f"{tuple(mask.shape)}"
            )
        return mask


def _image_hw(image: np.ndarray | Image.Image) -> tuple[int, int]:
    if isinstance(image, Image.Image):
        return image.height, image.width
    if isinstance(image, np.ndarray) and image.ndim >= 2:
        return int(image.shape[0]), int(image.shape[1])
    raise InvalidInputError(
        f"expected an [H, W, 3] uint8 array or a PIL image, got {type(image).__name__}"
    )


def _check_labels(labels: Tensor) -> None:
    # -1 marks padding points in a batched [B, N] input, as in the reference
    check_label_values(labels.cpu().numpy(), allow_padding=True)


def _check_inside(points: Tensor, hw: tuple[int, int], normalize: bool, what: str) -> None:
    """Points [..., 2] must lie on the image: [0, W] x [0, H] pixels, or [0, 1] relative."""
    check_model_points(points.cpu().numpy(), hw[1], hw[0], normalize, what=what)


def _squeeze_numpy(out: Prediction) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def np_(x: Tensor) -> np.ndarray:
        # like the reference: float arrays (0/1 for thresholded masks), batch dim dropped if 1
        x = x.squeeze(0) if x.shape[0] == 1 else x
        return x.float().cpu().numpy()

    return np_(out.masks), np_(out.ious), np_(out.low_res_logits)
