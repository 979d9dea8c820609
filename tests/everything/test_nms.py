"""`batched_nms` against `torchvision.ops.batched_nms` (a test-only dependency)."""

from __future__ import annotations

import pytest
import torch

from masklet.everything.nms import IOU_BLOCK, batched_nms, pairwise_iou

tv_ops = pytest.importorskip("torchvision.ops", reason="torchvision is the independent check")


def _random_boxes(n: int, gen: torch.Generator, integer: bool) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen) * (20 + n // 4)  # dense enough to overlap
    wh = torch.rand(n, 2, generator=gen) * 60 + 1
    boxes = torch.cat([xy, xy + wh], dim=1)  # [N, 4]
    return boxes.round() if integer else boxes


@pytest.mark.parametrize("n", [1, 7, 300, 1500])  # > 1000 boxes: torchvision's per-class path
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.7, 1.0])
def test_same_as_torchvision_with_ties(n: int, threshold: float) -> None:
    gen = torch.Generator().manual_seed(n)
    boxes = _random_boxes(n, gen, integer=True)
    # few distinct scores: many ties, whose order must be index order as in torchvision
    scores = torch.randint(0, 4, (n,), generator=gen).float() / 4
    categories = torch.randint(0, 3, (n,), generator=gen)
    if n > 5:
        boxes[n // 2], categories[n // 2] = boxes[0], categories[0]  # an exact duplicate too
    expected = tv_ops.batched_nms(boxes, scores, categories, threshold)
    kept = batched_nms(boxes, scores, categories, threshold)
    assert len(expected) > 0
    if threshold < 1.0 and n > 1:
        assert len(expected) < n  # something was suppressed
    assert torch.equal(kept, expected)


def test_float_boxes_single_category() -> None:
    gen = torch.Generator().manual_seed(3)
    boxes = _random_boxes(IOU_BLOCK + 200, gen, integer=False)  # spans two IoU blocks
    scores = torch.rand(len(boxes), generator=gen)
    zeros = torch.zeros(len(boxes), dtype=torch.int64)
    expected = tv_ops.batched_nms(boxes, scores, zeros, 0.5)
    assert 1 < len(expected) < len(boxes)
    assert torch.equal(batched_nms(boxes, scores, zeros, 0.5), expected)


def test_empty_and_pairwise_iou() -> None:
    empty = torch.zeros(0, 4)
    assert batched_nms(empty, torch.zeros(0), torch.zeros(0), 0.5).numel() == 0
    gen = torch.Generator().manual_seed(4)
    a, b = _random_boxes(20, gen, False), _random_boxes(30, gen, False)
    torch.testing.assert_close(pairwise_iou(a, b), tv_ops.box_iou(a, b))
