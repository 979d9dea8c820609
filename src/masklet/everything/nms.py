"""Greedy non-maximum suppression on boxes, in torch (torchvision is not a run-time dependency).

Same results as `torchvision.ops.batched_nms`: boxes are visited by score, highest first,
equal scores in index order; a box is dropped when its IoU with a kept box of the same category
exceeds the threshold; the kept indices come back in visiting order. Above a size limit
torchvision switches to a per-category loop whose final sort by score is not stable, so tied
scores come back in torch's unstable-sort order; that is mirrored too, so the automatic mask
generator returns its records in the reference's order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# boxes per block of the pairwise-IoU matrix, to bound its memory ([block, N] floats)
IOU_BLOCK = 1024
# torchvision's batched_nms loops over categories above this many box coordinates (N * 4)
PER_CATEGORY_ABOVE = {"cpu": 4000, "other": 20000}


def box_area(boxes: Tensor) -> Tensor:
    """[N, 4] xyxy -> [N] (x1 - x0) * (y1 - y0)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def pairwise_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every box in a [N, 4] with every box in b [M, 4] (xyxy) -> [N, M]."""
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])  # [N, M, 2]
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]  # [N, M]
    return inter / (box_area(a)[:, None] + box_area(b)[None, :] - inter)


def batched_nms(boxes: Tensor, scores: Tensor, categories: Tensor, iou_threshold: float) -> Tensor:
    """Indices of the boxes kept, highest score first.

    boxes: [N, 4] float xyxy. scores: [N]. categories: [N] int; boxes of different categories
    never suppress each other. Returns [K] int64.
    """
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices  # [N]
    sorted_boxes = boxes[order].float()
    sorted_cats = categories[order]
    # over[i, j]: box j (in visiting order) is suppressed if box i is kept
    removed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    for start in range(0, n, IOU_BLOCK):
        block = slice(start, min(start + IOU_BLOCK, n))
        # compared in float64 like torchvision's kernel (float IoU vs double threshold): an IoU
        # of float32(0.3) is above 0.3
        over = pairwise_iou(sorted_boxes[block], sorted_boxes).double() > iou_threshold  # [b, N]
        over &= sorted_cats[block, None] == sorted_cats[None, :]
        over_np = over.cpu().numpy()
        for row, i in enumerate(range(block.start, block.stop)):
            if removed[i]:
                continue
            keep.append(i)
            removed[i + 1 :] |= over_np[row, i + 1 :]
    kept = order[torch.as_tensor(keep, dtype=torch.int64, device=order.device)]
    limit = PER_CATEGORY_ABOVE["cpu" if boxes.device.type == "cpu" else "other"]
    if boxes.numel() > limit:
        # torchvision's per-category path: kept indices ascending, then an unstable sort
        kept = kept.sort().values
        kept = kept[scores[kept].sort(descending=True).indices]
    return kept
