"""Point grids and crop boxes against the reference's `sam2.utils.amg`."""

from __future__ import annotations

import numpy as np
import pytest

from masklet.errors import InvalidInputError
from masklet.everything.grids import crop_boxes, layer_point_grids, point_grid

amg = pytest.importorskip("sam2.utils.amg", reason="the reference sam2==1.1.0 is needed")


@pytest.mark.parametrize("n, layers, factor", [(32, 0, 1), (16, 2, 2), (9, 3, 2), (5, 1, 1)])
def test_point_grids_equal_reference(n: int, layers: int, factor: int) -> None:
    ours = layer_point_grids(n, layers, factor)
    expected = amg.build_all_layer_point_grids(n, layers, factor)
    assert len(ours) == len(expected) == layers + 1
    for a, b in zip(ours, expected):
        assert a.shape == b.shape and np.array_equal(a, b)


@pytest.mark.parametrize("hw", [(3000, 4000), (180, 240), (1024, 1024), (333, 97)])
@pytest.mark.parametrize("layers", [0, 1, 2])
def test_crop_boxes_equal_reference(hw: tuple[int, int], layers: int) -> None:
    ours = crop_boxes(hw, layers, 512 / 1500)
    boxes, layer_idxs = amg.generate_crop_boxes(hw, layers, 512 / 1500)
    assert [list(c.xyxy) for c in ours] == boxes
    assert [c.layer for c in ours] == layer_idxs
    assert len(ours) == sum(4**i for i in range(layers + 1))


def test_bad_grid_arguments_name_the_fix() -> None:
    with pytest.raises(InvalidInputError, match="points_per_side"):
        point_grid(0)
    with pytest.raises(InvalidInputError, match="downscale_factor"):
        layer_point_grids(8, 1, 0)
