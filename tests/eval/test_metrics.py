"""DAVIS J and F on small masks whose values are computed by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from masklet.errors import InvalidInputError
from masklet.eval.metrics import (
    boundary_f_measure,
    boundary_map,
    boundary_radius,
    region_similarity,
)


def square(top: int, left: int, size: int = 4, shape: tuple[int, int] = (10, 10)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def test_region_similarity_overlapping_squares() -> None:
    # 4x4 squares offset by (1, 1): intersection 3x3 = 9, union 16 + 16 - 9 = 23.
    assert region_similarity(square(3, 3), square(2, 2)) == pytest.approx(9 / 23)
    assert region_similarity(square(2, 2), square(2, 2)) == 1.0
    assert region_similarity(square(0, 0), square(6, 6)) == 0.0


def test_region_similarity_empty_cases() -> None:
    empty = np.zeros((10, 10), dtype=bool)
    assert region_similarity(empty, square(2, 2)) == 0.0  # empty prediction
    assert region_similarity(square(2, 2), empty) == 0.0  # empty ground truth
    assert region_similarity(empty, empty) == 1.0  # both empty: DAVIS scores 1


def test_boundary_map_is_the_ring_offset_towards_the_origin() -> None:
    # seg2bmap marks pixels that differ from their right/lower/lower-right neighbour: for the
    # square rows/cols 2..5 that is the ring with corners (1, 1) and (5, 5): 16 pixels.
    ring = np.zeros((10, 10), dtype=bool)
    ring[1:6, 1:6] = True
    ring[2:5, 2:5] = False
    np.testing.assert_array_equal(boundary_map(square(2, 2)), ring)
    # A full image has no boundary (the image edge is not one), the corner pixel never is.
    assert not boundary_map(np.ones((5, 7), dtype=bool)).any()
    corner = np.zeros((4, 4), dtype=bool)
    corner[3, 3] = True
    assert not boundary_map(corner)[3, 3]


def test_boundary_radius() -> None:
    assert boundary_radius((10, 10)) == 1  # ceil(0.008 * 14.14)
    assert boundary_radius((480, 854)) == 8  # ceil(0.008 * 979.6): DAVIS 480p
    assert boundary_radius((10, 10), bound_th=3) == 3  # >= 1 means pixels
    with pytest.raises(InvalidInputError):
        boundary_radius((10, 10), bound_th=0)


def test_f_identical_and_one_pixel_shift_within_tolerance() -> None:
    gt = square(2, 2)
    assert boundary_f_measure(gt, gt) == 1.0
    # Shifted by one column, every boundary pixel has one of the other ring within 1 pixel.
    assert boundary_f_measure(square(2, 3), gt) == 1.0
    assert boundary_f_measure(square(3, 2), gt) == 1.0


def test_f_shift_beyond_tolerance() -> None:
    # gt ring: rows/cols 1..5; prediction shifted by 3 columns: ring rows 1..5, cols 4..8.
    # Radius 1: of its 16 pixels, top row 4,5,6 and bottom row 4,5,6 (distance <= 1) and the
    # left column rows 2..4 (distance 1 to column 5) match: 9; by symmetry recall is 9/16 too.
    pred, gt = square(2, 5), square(2, 2)
    assert boundary_f_measure(pred, gt) == pytest.approx(9 / 16)
    # Radius 2 pixels: columns 7 of the top and bottom rows match as well: 11 / 16.
    assert boundary_f_measure(pred, gt, bound_th=2) == pytest.approx(11 / 16)


def test_f_precision_recall_differ() -> None:
    # gt 4x4 square (ring 16 px) and a prediction holding it plus a far 1-pixel speck, whose
    # boundary adds 4 unmatched pixels (the speck and its left, upper, upper-left neighbours).
    gt = square(1, 1)
    pred = gt.copy()
    pred[8, 8] = True
    precision, recall = 16 / 20, 1.0
    expected = 2 * precision * recall / (precision + recall)
    assert boundary_f_measure(pred, gt) == pytest.approx(expected)


def test_f_empty_cases() -> None:
    empty = np.zeros((10, 10), dtype=bool)
    assert boundary_f_measure(empty, square(2, 2)) == 0.0  # precision 1, recall 0
    assert boundary_f_measure(square(2, 2), empty) == 0.0  # precision 0, recall 1
    assert boundary_f_measure(empty, empty) == 1.0


def test_f_matches_disk_dilation_definition() -> None:
    """The KD-tree match equals DAVIS's dilation by disk(r) on random blobby masks."""
    rng = np.random.default_rng(0)
    for radius in (1, 2, 4):
        y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        disk = x**2 + y**2 <= radius**2
        for _ in range(5):
            pred = ndimage.binary_opening(rng.random((40, 50)) > 0.6)
            gt = ndimage.binary_opening(rng.random((40, 50)) > 0.6)
            pb, gb = boundary_map(pred), boundary_map(gt)
            precision = (pb & ndimage.binary_dilation(gb, disk)).sum() / pb.sum()
            recall = (gb & ndimage.binary_dilation(pb, disk)).sum() / gb.sum()
            expected = 2 * precision * recall / (precision + recall)
            assert boundary_f_measure(pred, gt, bound_th=radius) == pytest.approx(expected)


def test_shape_mismatch_is_a_typed_error() -> None:
    with pytest.raises(InvalidInputError, match="same shape"):
        region_similarity(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(InvalidInputError, match="same shape"):
        boundary_f_measure(np.zeros((4, 4)), np.zeros((2, 4, 4)))
