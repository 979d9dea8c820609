"""Hole filling / sprinkle removal on CPU, checked by hand and against the reference's logic.

The reference needs a CUDA kernel for connected components. For the parity tests we give it a
plain-python flood fill instead (written here, independent of scipy) and run its own
postprocessing code around it.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from masklet.errors import InvalidInputError
from masklet.postprocess import (
    HOLE_FILL_OFFSET,
    SPRINKLE_OFFSET,
    VIDEO_HOLE_FILL_SCORE,
    clean_masks,
    component_areas,
    fill_holes,
    fill_holes_video,
    postprocess_masks,
    remove_sprinkles,
)

FG, BG = 5.0, -5.0


def _logits(rows: list[str]) -> torch.Tensor:
    """'#' = foreground logit FG, '.' = background logit BG -> [H, W]."""
    return torch.tensor([[FG if c == "#" else BG for c in row] for row in rows])


def test_small_hole_is_filled():
    mask = _logits(
        [
            "######",
            "#..###",
            "#..###",
            "######",
        ]
    )
    out = fill_holes(mask, max_area=4)
    assert torch.all(out[1:3, 1:3] == HOLE_FILL_OFFSET)  # threshold 0 + 10
    untouched = torch.ones_like(mask, dtype=torch.bool)
    untouched[1:3, 1:3] = False
    assert torch.equal(out[untouched], mask[untouched])
    assert torch.equal(mask[1, 1], torch.tensor(BG))  # input not modified


def test_hole_larger_than_limit_is_kept():
    mask = _logits(["#####", "#...#", "#####"])  # hole of area 3
    assert torch.equal(fill_holes(mask, max_area=2), mask)
    assert torch.all(fill_holes(mask, max_area=3)[1, 1:4] == HOLE_FILL_OFFSET)


def test_border_touching_background_counts_as_hole():
    # Like the reference: any small background component is a hole, enclosed or not.
    mask = _logits([".####", "#####", "#####"])
    out = fill_holes(mask, max_area=1)
    assert out[0, 0] == HOLE_FILL_OFFSET


def test_threshold_and_fill_value():
    mask = torch.full((3, 3), 2.0)
    mask[1, 1] = 1.0  # background for threshold 1.5 (logits <= threshold)
    out = fill_holes(mask, max_area=1, threshold=1.5)
    assert out[1, 1] == 1.5 + HOLE_FILL_OFFSET
    out = fill_holes(mask, max_area=1, threshold=1.5, fill_value=0.25)
    assert out[1, 1] == 0.25


def test_sprinkle_is_removed_and_big_component_kept():
    mask = _logits(
        [
            "#.....",
            "...###",
            "...###",
        ]
    )
    out = remove_sprinkles(mask, max_area=2)
    assert out[0, 0] == -SPRINKLE_OFFSET
    assert torch.equal(out[1:, 3:], mask[1:, 3:])


def test_diagonal_pixels_are_one_component():
    mask = _logits(["#..", ".#.", "..#"])  # a diagonal line of 3 pixels
    areas = component_areas(mask > 0)
    assert torch.equal(areas[mask > 0], torch.tensor([3, 3, 3]))
    assert torch.equal(remove_sprinkles(mask, max_area=2), mask)  # area 3 > 2: kept
    assert torch.all(remove_sprinkles(mask, max_area=3)[mask > 0] == -SPRINKLE_OFFSET)


def test_batch_dims_preserved_and_slices_independent():
    a = _logits(["###", "#.#", "###"])
    b = _logits(["...", "...", "..."])  # all-background slice, area 9
    batch = torch.stack([a, b]).reshape(2, 1, 1, 3, 3)  # [2, 1, 1, H, W]
    out = fill_holes(batch, max_area=1)
    assert out.shape == batch.shape
    assert out[0, 0, 0, 1, 1] == HOLE_FILL_OFFSET
    assert torch.equal(out[1], batch[1])  # its background is one component of area 9


def test_zero_limits_are_noops():
    mask = torch.randn(2, 3, 8, 8)
    assert torch.equal(fill_holes(mask, 0), mask)
    assert torch.equal(remove_sprinkles(mask, 0), mask)
    assert torch.equal(clean_masks(mask, 0, 0), mask)


def test_negative_area_raises():
    with pytest.raises(InvalidInputError, match="max_area"):
        fill_holes(torch.zeros(4, 4), -1)
    with pytest.raises(InvalidInputError):
        component_areas(torch.zeros(4, dtype=torch.bool))


def test_video_fill_constant():
    mask = _logits(["###", "#.#", "###"])
    out = fill_holes_video(mask)
    assert out[1, 1] == VIDEO_HOLE_FILL_SCORE


def test_clean_masks_uses_components_of_the_input():
    # A ring of 8 foreground pixels around a 1-pixel hole: the hole is filled, and the ring
    # (area 8 in the input) is a sprinkle for max area 8 although ring + hole would be 9.
    mask = _logits(["###", "#.#", "###"])
    out = clean_masks(mask, max_hole_area=1, max_sprinkle_area=8)
    assert out[1, 1] == HOLE_FILL_OFFSET
    ring = torch.ones(3, 3, dtype=torch.bool)
    ring[1, 1] = False
    assert torch.all(out[ring] == -SPRINKLE_OFFSET)


# ----- parity with the reference's own postprocessing code ------------------------------------


def _flood_fill_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in for the reference CUDA kernel: [N, 1, H, W] -> (labels, areas), 8-connected."""
    m = mask.to(torch.bool).cpu().numpy()
    labels = np.zeros(m.shape, dtype=np.int32)
    areas = np.zeros(m.shape, dtype=np.int32)
    n, _, h, w = m.shape
    for i in range(n):
        next_label = 0
        for y0 in range(h):
            for x0 in range(w):
                if not m[i, 0, y0, x0] or labels[i, 0, y0, x0]:
                    continue
                next_label += 1
                members, queue = [], deque([(y0, x0)])
                labels[i, 0, y0, x0] = next_label
                while queue:
                    y, x = queue.popleft()
                    members.append((y, x))
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            yy, xx = y + dy, x + dx
                            if (
                                0 <= yy < h
                                and 0 <= xx < w
                                and m[i, 0, yy, xx]
                                and not labels[i, 0, yy, xx]
                            ):
                                labels[i, 0, yy, xx] = next_label
                                queue.append((yy, xx))
                for y, x in members:
                    areas[i, 0, y, x] = len(members)
    return torch.from_numpy(labels), torch.from_numpy(areas)


@pytest.fixture()
def reference_with_cpu_components(monkeypatch):
    misc = pytest.importorskip("sam2.utils.misc")
    transforms = pytest.importorskip("sam2.utils.transforms")
    monkeypatch.setattr(misc, "get_connected_components", _flood_fill_components)
    return misc, transforms


def _speckled_logits(seed: int) -> torch.Tensor:
    """[2, 3, 24, 24] logits with blobs, holes and specks of many sizes."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(2, 3, 6, 6, generator=g)
    smooth = torch.nn.functional.interpolate(coarse, (24, 24), mode="bilinear")
    noise = torch.randn(2, 3, 24, 24, generator=g)
    return smooth + 0.8 * noise


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.0, 0.3])
def test_matches_reference_image_postprocess(reference_with_cpu_components, seed, threshold):
    _, transforms = reference_with_cpu_components
    logits = _speckled_logits(seed)
    ref = transforms.SAM2Transforms.__new__(transforms.SAM2Transforms)  # skip torchvision setup
    torch.nn.Module.__init__(ref)
    ref.mask_threshold, ref.max_hole_area, ref.max_sprinkle_area = threshold, 6.0, 5.0
    expected = ref.postprocess_masks(logits, (40, 52))
    got = postprocess_masks(logits, (40, 52), threshold, max_hole_area=6, max_sprinkle_area=5)
    changed = clean_masks(logits, 6, 5, threshold) != logits
    assert changed.any(), "test data should contain holes or sprinkles"
    assert torch.equal(got, expected)


@pytest.mark.parametrize("seed", [3, 4])
def test_matches_reference_video_fill(reference_with_cpu_components, seed):
    misc, _ = reference_with_cpu_components
    logits = _speckled_logits(seed)[:, :1]  # [B, 1, h, w] as in the video predictor
    expected = misc.fill_holes_in_mask_scores(logits, 8)
    got = fill_holes_video(logits)
    assert not torch.equal(got, logits)
    assert torch.equal(got, expected)


def test_flood_fill_agrees_with_scipy_labelling():
    mask = _speckled_logits(5).reshape(6, 1, 24, 24) > 0
    _, areas = _flood_fill_components(mask)
    assert torch.equal(component_areas(mask).to(torch.int32), areas)
