"""Simulated user prompts for training, as SAM 2's `SAM2Train` samples them.

On a conditioning frame the "user" gives one of: a click inside the object, a noisy box around
it, or the mask itself. After each prediction, a corrective click lands in the error region: a
positive click where the object was missed (false negative), a negative click where background
was taken (false positive). Clicks are either uniform over the region or at its most interior
point (largest distance to the region's border, the RITM / SAM evaluation protocol, which also
picks the largest error component by thickness).

All masks here are [B, 1, H, W] bool at the model's input size, and coordinates are (x, y)
pixels of that image, as `SAM2Model.forward_sam_heads` takes them. Randomness comes only from
the `torch.Generator` passed in (kept on the CPU), so a seed reproduces every prompt.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from masklet.modeling.prompt_encoder import (
    BOX_BOTTOM_RIGHT_LABEL,
    BOX_TOP_LEFT_LABEL,
    NEGATIVE_LABEL,
    POSITIVE_LABEL,
)

# SAM's box jitter: each corner moves by up to 10% of the box side, at most 20 pixels.
BOX_NOISE_FRACTION = 0.1
BOX_NOISE_MAX_PIXELS = 20.0


class PromptKind(enum.Enum):
    POINT = "point"
    BOX = "box"
    MASK = "mask"


@dataclass(frozen=True)
class Clicks:
    """A batch of point prompts: coords [B, P, 2] (x, y) float, labels [B, P] int32."""

    coords: Tensor
    labels: Tensor

    def append(self, other: Clicks) -> Clicks:
        """These clicks followed by `other`'s (the order the decoder sees them in)."""
        return Clicks(
            torch.cat([self.coords, other.coords], dim=1),
            torch.cat([self.labels, other.labels], dim=1),
        )

    def as_inputs(self) -> tuple[Tensor, Tensor]:
        """The (coords, labels) pair `SAM2Model.track_step` takes."""
        return self.coords, self.labels


def choose_prompt_kind(
    generator: torch.Generator, prob_point: float, prob_box: float, allow_mask: bool = True
) -> PromptKind:
    """Draw point / box / mask with the given probabilities (mask takes the rest).

    Without `allow_mask` (single images, where a mask prompt would give the answer away) the
    point and box probabilities are renormalised; SAM 2 forces point inputs there too.
    """
    if not allow_mask:
        total = prob_point + prob_box
        prob_point, prob_box = (prob_point / total, prob_box / total) if total > 0 else (1.0, 0.0)
    u = float(torch.rand((), generator=generator))
    if u < prob_point:
        return PromptKind.POINT
    if u < prob_point + prob_box:
        return PromptKind.BOX
    return PromptKind.MASK


def _uniform_pick(region: Tensor, generator: torch.Generator) -> Tensor:
    """Index of a uniformly random True pixel of each row of region [B, N] (argmax of noise);
    rows without any True pixel give an arbitrary index."""
    noise = torch.rand(region.shape, generator=generator)  # [B, N]
    return (noise * region.cpu()).argmax(dim=1)  # [B]


def _interior_pick(region: Tensor) -> tuple[Tensor, Tensor]:
    """Most interior pixel of each region [B, H, W] and its distance to the border, [B] each.

    The image border counts as region border (padding), as in SAM 2's `center` sampling. The
    distance transform runs on the region's bounding box with a one-pixel empty margin, which
    gives the same distances (any border pixel outside the box is farther than the margin) and
    the same first maximum in row-major order; an empty region gives pixel 0 at depth 0.
    """
    picks, depths = [], []
    masks = region.cpu().numpy()
    width = masks.shape[-1]
    for mask in masks:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            picks.append(0)
            depths.append(0.0)
            continue
        top, left = int(rows[0]), int(cols[0])
        box = mask[top : int(rows[-1]) + 1, left : int(cols[-1]) + 1]
        dist = ndimage.distance_transform_edt(np.pad(box, 1))[1:-1, 1:-1]  # [h, w] of the box
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        picks.append((top + int(y)) * width + left + int(x))
        depths.append(float(dist[y, x]))
    return torch.tensor(picks, dtype=torch.long), torch.tensor(depths)


def _to_xy(flat: Tensor, width: int) -> Tensor:
    """Flat pixel indices [B] -> (x, y) float coords [B, 1, 2]."""
    return torch.stack([flat % width, flat // width], dim=-1).float()[:, None]


def click_from_errors(
    gt: Tensor, pred: Tensor | None, generator: torch.Generator, center: bool = False
) -> Clicks:
    """One corrective click per object from the error between prediction and ground truth.

    Arguments:
      gt: [B, 1, H, W] bool ground truth.
      pred: [B, 1, H, W] bool prediction, or None for "nothing predicted yet" (then the click
        is a positive click inside the object, i.e. the first click).
      center: click at the most interior error pixel instead of a uniform one.

    A false-negative pixel gives a positive click, a false-positive pixel a negative one. With
    no error at all the click is negative on the background (SAM 2's convention), and on an
    object that fills the whole image, positive on it.
    """
    if gt.dtype != torch.bool or gt.dim() != 4 or gt.shape[1] != 1:
        raise ValueError(f"expected gt [B, 1, H, W] bool, got {tuple(gt.shape)} {gt.dtype}")
    b, _, h, w = gt.shape
    gt_cpu = gt[:, 0].cpu()  # [B, H, W]
    pred_cpu = torch.zeros_like(gt_cpu) if pred is None else pred[:, 0].cpu().bool()
    false_neg = gt_cpu & ~pred_cpu
    false_pos = ~gt_cpu & pred_cpu
    no_error = ~(false_neg | false_pos).flatten(1).any(dim=1)  # [B]
    # nothing to correct: click the background (negative), or the object if there is none
    has_background = (~gt_cpu).flatten(1).any(dim=1)
    fallback_neg = (no_error & has_background)[:, None, None] & ~gt_cpu
    fallback_pos = (no_error & ~has_background)[:, None, None] & gt_cpu
    false_pos = false_pos | fallback_neg
    false_neg = false_neg | fallback_pos

    if center:
        neg_idx, neg_depth = _interior_pick(false_pos)
        pos_idx, pos_depth = _interior_pick(false_neg)
        positive = pos_depth > neg_depth  # the thicker error region wins
        flat = torch.where(positive, pos_idx, neg_idx)
    else:
        # one uniform draw over both regions: a region is chosen in proportion to its area
        both = torch.cat([false_pos.flatten(1), false_neg.flatten(1)], dim=1)  # [B, 2HW]
        pick = _uniform_pick(both, generator)
        positive = pick >= h * w
        flat = pick % (h * w)
    labels = torch.where(positive, POSITIVE_LABEL, NEGATIVE_LABEL).to(torch.int32)[
        :, None
    ]  # [B, 1]
    return Clicks(_to_xy(flat, w).to(gt.device), labels.to(gt.device))


def first_click(gt: Tensor, generator: torch.Generator, prob_center: float) -> Clicks:
    """The initial click inside each object [B, 1, H, W]: its most interior point with
    probability `prob_center`, else a uniform pixel of it (one draw for the batch)."""
    center = float(torch.rand((), generator=generator)) < prob_center
    return click_from_errors(gt, None, generator, center=center)


def mask_to_box(gt: Tensor) -> Tensor:
    """Tight boxes (x0, y0, x1, y1) of masks [B, 1, H, W] -> [B, 4] float; an empty mask gives
    the whole image."""
    b, _, h, w = gt.shape
    rows = gt[:, 0].any(dim=2)  # [B, H]
    cols = gt[:, 0].any(dim=1)  # [B, W]
    ys = torch.arange(h, device=gt.device)
    xs = torch.arange(w, device=gt.device)
    big = max(h, w)
    x0 = torch.where(cols, xs, big).amin(dim=1)
    x1 = torch.where(cols, xs, -1).amax(dim=1)
    y0 = torch.where(rows, ys, big).amin(dim=1)
    y1 = torch.where(rows, ys, -1).amax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()  # [B, 4]
    empty = ~cols.any(dim=1)
    whole = torch.tensor([0.0, 0.0, w - 1.0, h - 1.0], device=gt.device)
    return torch.where(empty[:, None], whole, boxes)


def box_prompt(gt: Tensor, generator: torch.Generator, noise: float = BOX_NOISE_FRACTION) -> Clicks:
    """Noisy boxes around masks [B, 1, H, W] as two corner points (labels 2 and 3): [B, 2, 2].

    Each coordinate moves uniformly by up to `noise` times the box side, capped at
    `BOX_NOISE_MAX_PIXELS`, then is clamped to the image (as SAM 2's `sample_box_points`).
    """
    b, _, h, w = gt.shape
    boxes = mask_to_box(gt).cpu()  # [B, 4]
    if noise > 0:
        side_w = boxes[:, 2] - boxes[:, 0]
        side_h = boxes[:, 3] - boxes[:, 1]
        max_dx = (side_w * noise).clamp(max=BOX_NOISE_MAX_PIXELS)
        max_dy = (side_h * noise).clamp(max=BOX_NOISE_MAX_PIXELS)
        scale = torch.stack([max_dx, max_dy, max_dx, max_dy], dim=1)  # [B, 4]
        jitter = 2 * torch.rand(b, 4, generator=generator) - 1
        boxes = boxes + jitter * scale
        upper = torch.tensor([w - 1.0, h - 1.0, w - 1.0, h - 1.0])
        boxes = torch.minimum(boxes.clamp(min=0.0), upper)
    coords = boxes.reshape(b, 2, 2)  # [B, 4] -> [B, 2 corners, (x, y)]
    labels = torch.tensor([BOX_TOP_LEFT_LABEL, BOX_BOTTOM_RIGHT_LABEL], dtype=torch.int32).repeat(
        b, 1
    )
    return Clicks(coords.to(gt.device), labels.to(gt.device))
