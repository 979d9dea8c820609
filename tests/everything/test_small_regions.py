"""The generator's `min_mask_region_area` step finds components with scipy; the reference's
small-region removal uses OpenCV. Component areas must agree pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklet.postprocess import component_areas

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (dev extra) is the check")


def _opencv_areas(mask: np.ndarray) -> np.ndarray:
    """[H, W] bool -> [H, W] area of each pixel's 8-connected component (0 off the mask)."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return np.where(mask, stats[labels, cv2.CC_STAT_AREA], 0)


@pytest.mark.parametrize("density", [0.2, 0.45, 0.6])
def test_component_areas_equal_opencv(density: float) -> None:
    gen = torch.Generator().manual_seed(int(density * 100))
    masks = torch.rand(6, 64, 80, generator=gen) < density  # [N, H, W]
    masks[0] = False
    masks[1, :, :] = True
    masks[2, ::2, ::2] = True  # diagonal-free dots next to diagonal chains
    areas = component_areas(masks).numpy()
    for i in range(len(masks)):
        expected = _opencv_areas(masks[i].numpy())
        assert np.array_equal(areas[i], expected), i
    assert len(np.unique(areas[3:])) > 3  # many different component sizes were compared
