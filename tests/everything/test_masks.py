"""RLE, boxes, stability and crop-edge helpers against the reference's `sam2.utils.amg`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklet.everything.grids import CropBox
from masklet.everything.masks import (
    Rle,
    masks_to_boxes,
    masks_to_rles,
    near_crop_edge,
    stability_scores,
)

amg = pytest.importorskip("sam2.utils.amg", reason="the reference sam2==1.1.0 is needed")


def _blobs(k: int, h: int, w: int, seed: int) -> torch.Tensor:
    """[K, h, w] bool: random rectangles and noise, plus an empty and a full mask, and masks
    touching the first and last pixel (runs that start / end the column-major order)."""
    gen = torch.Generator().manual_seed(seed)
    masks = torch.rand(k, h, w, generator=gen) > 0.97
    for i in range(k):
        y0, x0 = torch.randint(0, h - 2, (2,), generator=gen).tolist()[0], 0
        x0 = int(torch.randint(0, w - 2, (1,), generator=gen))
        masks[i, y0 : y0 + h // 3, x0 : x0 + w // 4] = True
    masks[0] = False
    masks[1] = True
    masks[2, 0, 0] = masks[2, -1, -1] = True
    masks[3, :, w // 2] = True  # a whole column: a run across the column boundary
    return masks


@pytest.mark.parametrize(
    "crop", [CropBox(0, 0, 40, 30, 0), CropBox(5, 0, 25, 30, 1), CropBox(7, 4, 31, 22, 1)]
)
def test_rles_equal_reference_encoding_of_uncropped_masks(crop: CropBox) -> None:
    image_hw = (30, 40)
    masks = _blobs(8, *crop.hw, seed=crop.x0 + crop.y0)
    ours = masks_to_rles(masks, crop, image_hw)
    full = amg.uncrop_masks(masks, list(crop.xyxy), *image_hw)
    expected = amg.mask_to_rle_pytorch(full)
    assert len({r.area for r in ours}) > 2  # not degenerate
    for rle, exp in zip(ours, expected):
        assert rle.to_dict() == exp
        assert rle.area == amg.area_from_rle(exp)
        assert np.array_equal(rle.to_mask(), amg.rle_to_mask(exp))
        assert rle.to_coco() == amg.coco_encode_rle(exp)


def test_no_masks_no_rles() -> None:
    crop = CropBox(0, 0, 8, 6, 0)
    assert masks_to_rles(torch.zeros(0, 6, 8, dtype=torch.bool), crop, (6, 8)) == []


def test_rle_round_trip() -> None:
    masks = _blobs(5, 17, 23, seed=1)
    crop = CropBox(0, 0, 23, 17, 0)
    for mask, rle in zip(masks, masks_to_rles(masks, crop, (17, 23))):
        assert isinstance(rle, Rle) and np.array_equal(rle.to_mask(), mask.numpy())


def test_boxes_equal_reference_including_empty() -> None:
    masks = _blobs(9, 21, 33, seed=2)
    expected = amg.batched_mask_to_box(masks)
    boxes = masks_to_boxes(masks)
    assert boxes[0].tolist() == [0, 0, 0, 0] and boxes[1].tolist() == [0, 0, 32, 20]
    assert torch.equal(boxes, expected)
    assert masks_to_boxes(torch.zeros(0, 4, 4, dtype=torch.bool)).shape == (0, 4)


def test_stability_equals_reference() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 40, 50, generator=gen) * 4
    for threshold, offset in [(0.0, 1.0), (0.5, 0.25)]:
        expected = amg.calculate_stability_score(logits, threshold, offset)
        ours = stability_scores(logits, threshold, offset)
        assert len(set(ours.tolist())) > 1
        assert torch.equal(ours, expected)


def test_near_crop_edge_equals_reference() -> None:
    gen = torch.Generator().manual_seed(4)
    crop = CropBox(100, 50, 300, 250, 1)
    image_hw = (250, 400)
    xy = torch.randint(0, 180, (200, 2), generator=gen)
    boxes = torch.cat([xy, xy + torch.randint(1, 40, (200, 2), generator=gen)], dim=1)
    ours = near_crop_edge(boxes + torch.tensor([100, 50, 100, 50]), crop, image_hw)
    expected = amg.is_box_near_crop_edge(boxes, list(crop.xyxy), [0, 0, 400, 250])
    assert 0 < int(ours.sum()) < len(ours)
    assert torch.equal(ours, expected)
