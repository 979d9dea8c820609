"""Hole filling and sprinkle removal on mask logits, on any device, without a CUDA extension.

The reference computes connected components with a CUDA kernel and silently skips both steps
when the kernel is missing (e.g. on CPU), so the same checkpoint gives different masks on
different machines. Here components come from `scipy.ndimage.label` on the CPU; the rest is
plain torch, so results are identical everywhere.

Semantics (same as the reference):
  * Components use 8-connectivity: diagonal neighbours belong to the same component.
  * A "hole" is ANY background component (logits <= threshold) whose area is <= max_area,
    including one that touches the image border. It is not required to be enclosed by the
    mask: a small background corner region is "filled" as well.
  * A "sprinkle" is any foreground component (logits > threshold) of area <= max_area.
  * Filled holes get `threshold + HOLE_FILL_OFFSET`, removed sprinkles
    `threshold - SPRINKLE_OFFSET`; other pixels keep their logits.
  * The video predictor fills holes in its low-resolution logits with its own constant:
    threshold 0 and the fill score `VIDEO_HOLE_FILL_SCORE` (see `fill_holes_video`).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from masklet.errors import InvalidInputError
from masklet.transforms import upscale_masks

# Image predictor: logits written into filled holes / removed sprinkles, relative to the
# threshold. Large enough to flip the pixel decisively, small enough to stay a plausible logit.
HOLE_FILL_OFFSET = 10.0
SPRINKLE_OFFSET = 10.0
# Video predictor: holes in its low-res logits become this small positive score (threshold 0).
VIDEO_HOLE_FILL_SCORE = 0.1
# Hole area the official video builder uses (`fill_hole_area=8`, in low-res mask pixels).
VIDEO_FILL_HOLE_AREA = 8

# 3-D structuring element that links the 8 neighbours inside a 2-D slice and nothing across
# slices, so one `ndimage.label` call labels a whole stack of masks independently.
_EIGHT_CONNECTED_PER_SLICE = np.zeros((3, 3, 3), dtype=bool)
_EIGHT_CONNECTED_PER_SLICE[1] = True


def component_areas(binary: torch.Tensor) -> torch.Tensor:
    """Area of the 8-connected component each True pixel belongs to.

    Arguments:
      binary: `[..., H, W]` bool; every 2-D slice is labelled on its own.

    Returns:
      `[..., H, W]` int64 on `binary`'s device: the component's pixel count where `binary` is
      True, 0 elsewhere.
    """
    if binary.dim() < 2:
        raise InvalidInputError(
            f"expected masks of shape [..., H, W], got shape {tuple(binary.shape)}"
        )
    shape = binary.shape
    stack = (
        binary.detach().reshape(-1, shape[-2], shape[-1]).cpu().numpy()
    )  # [..., H, W] -> [N, H, W]
    labels, _ = ndimage.label(stack, structure=_EIGHT_CONNECTED_PER_SLICE)
    counts = np.bincount(labels.ravel())
    counts[0] = 0  # label 0 is "not in any component"
    areas = counts[labels]  # [N, H, W]
    return torch.from_numpy(areas).to(binary.device).reshape(shape)


def _check_area(name: str, value: float) -> None:
    if value < 0:
        raise InvalidInputError(f"{name} must be >= 0 pixels (0 turns the step off), got {value}")


def fill_holes(
    mask_logits: torch.Tensor,
    max_area: float,
    threshold: float = 0.0,
    fill_value: float | None = None,
) -> torch.Tensor:
    """Turn small background components into foreground.

    Arguments:
      mask_logits: `[..., H, W]` logits; each 2-D slice is processed independently.
      max_area: largest component area (pixels) that counts as a hole; 0 = no-op.
      threshold: logits <= threshold are background.
      fill_value: logit written into holes; default `threshold + HOLE_FILL_OFFSET`.

    Returns:
      `[..., H, W]` logits, a new tensor (the input is not modified).
    """
    _check_area("max_area", max_area)
    if max_area == 0:
        return mask_logits.clone()
    if fill_value is None:
        fill_value = threshold + HOLE_FILL_OFFSET
    areas = component_areas(mask_logits <= threshold)
    is_hole = (areas > 0) & (areas <= max_area)
    return torch.where(is_hole, torch.full_like(mask_logits, fill_value), mask_logits)


def remove_sprinkles(
    mask_logits: torch.Tensor, max_area: float, threshold: float = 0.0
) -> torch.Tensor:
    """Turn small foreground components into background (logit `threshold - SPRINKLE_OFFSET`).

    Arguments:
      mask_logits: `[..., H, W]` logits; each 2-D slice is processed independently.
      max_area: largest component area (pixels) that counts as a sprinkle; 0 = no-op.
      threshold: logits > threshold are foreground.

    Returns:
      `[..., H, W]` logits, a new tensor.
    """
    _check_area("max_area", max_area)
    if max_area == 0:
        return mask_logits.clone()
    areas = component_areas(mask_logits > threshold)
    is_sprinkle = (areas > 0) & (areas <= max_area)
    fill = torch.full_like(mask_logits, threshold - SPRINKLE_OFFSET)
    return torch.where(is_sprinkle, fill, mask_logits)


def clean_masks(
    mask_logits: torch.Tensor,
    max_hole_area: float,
    max_sprinkle_area: float,
    threshold: float = 0.0,
) -> torch.Tensor:
    """Fill holes, then remove sprinkles, exactly as the reference image predictor does.

    Both sets of components are found on the INPUT logits: a sprinkle's area does not include
    holes filled in the same call. (The reference computes both from the original mask; e.g. a
    thin ring around a small hole can be removed as a sprinkle while its filled hole stays.)

    Arguments:
      mask_logits: `[..., H, W]` logits.

    Returns:
      `[..., H, W]` logits, a new tensor.
    """
    _check_area("max_hole_area", max_hole_area)
    _check_area("max_sprinkle_area", max_sprinkle_area)
    out = mask_logits.clone()
    if max_hole_area > 0:
        areas = component_areas(mask_logits <= threshold)
        is_hole = (areas > 0) & (areas <= max_hole_area)
        out = torch.where(is_hole, torch.full_like(out, threshold + HOLE_FILL_OFFSET), out)
    if max_sprinkle_area > 0:
        areas = component_areas(mask_logits > threshold)
        is_sprinkle = (areas > 0) & (areas <= max_sprinkle_area)
        out = torch.where(is_sprinkle, torch.full_like(out, threshold - SPRINKLE_OFFSET), out)
    return out


def fill_holes_video(
    mask_logits: torch.Tensor, max_area: float = VIDEO_FILL_HOLE_AREA
) -> torch.Tensor:
    """The video predictor's hole filling: threshold 0, holes become `VIDEO_HOLE_FILL_SCORE`.

    Arguments:
      mask_logits: `[..., h, w]` low-resolution logits (before resizing to the video size).
    """
    return fill_holes(mask_logits, max_area, threshold=0.0, fill_value=VIDEO_HOLE_FILL_SCORE)


def postprocess_masks(
    low_res_logits: torch.Tensor,
    orig_hw: tuple[int, int],
    threshold: float = 0.0,
    max_hole_area: float = 0.0,
    max_sprinkle_area: float = 0.0,
) -> torch.Tensor:
    """The image predictor's full postprocessing: clean at low resolution, then upscale.

    Arguments:
      low_res_logits: `[B, M, h, w]` decoder logits.
      orig_hw: (H, W) of the original image.

    Returns:
      `[B, M, H, W]` float logits (threshold them at `threshold` for binary masks).
    """
    cleaned = clean_masks(low_res_logits.float(), max_hole_area, max_sprinkle_area, threshold)
    return upscale_masks(cleaned, orig_hw)
