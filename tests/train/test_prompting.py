import numpy as np
import pytest
import torch

from masklet.modeling.prompt_encoder import BOX_BOTTOM_RIGHT_LABEL as BOX_BOTTOM_RIGHT
from masklet.modeling.prompt_encoder import BOX_TOP_LEFT_LABEL as BOX_TOP_LEFT
from masklet.modeling.prompt_encoder import NEGATIVE_LABEL as NEGATIVE
from masklet.modeling.prompt_encoder import POSITIVE_LABEL as POSITIVE
from masklet.train.prompting import (
    Clicks,
    PromptKind,
    _interior_pick,
    box_prompt,
    choose_prompt_kind,
    click_from_errors,
    first_click,
    mask_to_box,
)


def _square(b: int = 1, size: int = 16, lo: int = 4, hi: int = 12) -> torch.Tensor:
    m = torch.zeros(b, 1, size, size, dtype=torch.bool)
    m[..., lo:hi, lo:hi] = True
    return m


def _at(mask: torch.Tensor, clicks: Clicks, i: int = 0, p: int = -1) -> bool:
    x, y = clicks.coords[i, p].long().tolist()
    return bool(mask[i, 0, y, x])


def test_first_click_is_inside_the_object_and_centered_when_asked() -> None:
    gt = _square(b=3)
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        clicks = first_click(gt, g, prob_center=0.0)
        assert clicks.coords.shape == (3, 1, 2) and clicks.labels.shape == (3, 1)
        assert (clicks.labels == POSITIVE).all()
        assert all(_at(gt, clicks, i) for i in range(3))
    center = first_click(gt, g, prob_center=1.0)
    # most interior pixel of the 8x8 square at 4..11: distance 4 from the border
    x, y = center.coords[0, 0].tolist()
    assert 7 <= x <= 8 and 7 <= y <= 8


def test_clicks_are_reproducible_from_the_seed() -> None:
    gt = _square(b=2)
    a = first_click(gt, torch.Generator().manual_seed(3), 0.0)
    b = first_click(gt, torch.Generator().manual_seed(3), 0.0)
    c = first_click(gt, torch.Generator().manual_seed(4), 0.0)
    assert torch.equal(a.coords, b.coords)
    assert not torch.equal(a.coords, c.coords)


@pytest.mark.parametrize("center", [False, True])
def test_corrective_click_fixes_missed_and_spurious_regions(center: bool) -> None:
    gt = _square()
    g = torch.Generator().manual_seed(1)
    missed = gt.clone()
    missed[..., 4:12, 4:8] = False  # left half of the object missed -> positive click there
    click = click_from_errors(gt, missed, g, center=center)
    assert int(click.labels[0, 0]) == POSITIVE
    assert _at(gt & ~missed, click)
    spurious = gt.clone()
    spurious[..., 0:3, :] = True  # a band of background taken -> negative click there
    click = click_from_errors(gt, spurious, g, center=center)
    assert int(click.labels[0, 0]) == NEGATIVE
    assert _at(spurious & ~gt, click)


def test_center_click_picks_the_thicker_error_region() -> None:
    gt = _square(size=24, lo=2, hi=20)
    pred = gt.clone()
    pred[..., 6:16, 6:16] = False  # a thick hole (false negative)
    pred[..., 22:23, :] = True  # a 1-pixel line of false positives
    click = click_from_errors(gt, pred, torch.Generator(), center=True)
    assert int(click.labels[0, 0]) == POSITIVE
    x, y = click.coords[0, 0].tolist()
    assert 9 <= x <= 12 and 9 <= y <= 12


def test_no_error_gives_a_negative_click_on_the_background() -> None:
    gt = _square()
    click = click_from_errors(gt, gt.clone(), torch.Generator().manual_seed(0))
    assert int(click.labels[0, 0]) == NEGATIVE and not _at(gt, click)
    full = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    click = click_from_errors(full, full.clone(), torch.Generator().manual_seed(0))
    assert int(click.labels[0, 0]) == POSITIVE
    empty = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    click = first_click(empty, torch.Generator(), prob_center=0.0)
    assert int(click.labels[0, 0]) == NEGATIVE  # nothing to click on: background


def test_boxes_are_tight_without_noise_and_jittered_within_bounds() -> None:
    gt = _square(b=2)
    gt[1] = False
    assert mask_to_box(gt).tolist() == [[4.0, 4.0, 11.0, 11.0], [0.0, 0.0, 15.0, 15.0]]
    exact = box_prompt(gt[:1], torch.Generator(), noise=0.0)
    assert exact.coords.tolist() == [[[4.0, 4.0], [11.0, 11.0]]]
    assert exact.labels.tolist() == [[BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]]
    noisy = box_prompt(gt, torch.Generator().manual_seed(0))
    # 10% of a 7-pixel side: each corner moves by at most 0.7 pixels
    assert (noisy.coords[0] - exact.coords[0]).abs().max() <= 0.7 + 1e-6
    assert (noisy.coords[0] != exact.coords[0]).any()
    assert noisy.coords.min() >= 0 and noisy.coords.max() <= 15


def test_clicks_append_in_order() -> None:
    a = Clicks(torch.zeros(2, 1, 2), torch.ones(2, 1, dtype=torch.int32))
    b = Clicks(torch.ones(2, 2, 2), torch.zeros(2, 2, dtype=torch.int32))
    ab = a.append(b)
    assert ab.coords.shape == (2, 3, 2) and ab.labels[:, 0].tolist() == [1, 1]
    coords, labels = ab.as_inputs()
    assert labels.dtype == torch.int32 and coords.shape[:2] == labels.shape


def test_prompt_kind_follows_the_probabilities() -> None:
    g = torch.Generator().manual_seed(0)
    kinds = [choose_prompt_kind(g, 0.25, 0.25) for _ in range(400)]
    share = {k: kinds.count(k) / len(kinds) for k in PromptKind}
    assert 0.18 < share[PromptKind.POINT] < 0.32 and 0.18 < share[PromptKind.BOX] < 0.32
    assert 0.42 < share[PromptKind.MASK] < 0.58
    no_mask = [choose_prompt_kind(g, 0.25, 0.25, allow_mask=False) for _ in range(100)]
    assert PromptKind.MASK not in no_mask and PromptKind.BOX in no_mask
    assert choose_prompt_kind(g, 0.0, 0.0, allow_mask=False) is PromptKind.POINT


def test_interior_click_equals_the_whole_image_distance_transform() -> None:
    """The most interior pixel found on each region's bounding box is the one the distance
    transform of the whole (padded) image gives, ties resolved the same way (first in
    row-major order): regions touching the image border, several components, a full and an
    empty region."""
    from scipy import ndimage

    g = torch.Generator().manual_seed(0)
    regions = torch.rand(40, 24, 20, generator=g) < torch.rand(40, 1, 1, generator=g)
    regions[0] = False
    regions[1] = True
    regions[2] = False
    regions[2, 3:9, 0:5] = True  # on the left edge
    regions[2, 15:20, 12:14] = True
    regions[3] = False
    regions[3, 20:24, 16:20] = True  # in the bottom-right corner
    picks, depths = _interior_pick(regions)
    for i, mask in enumerate(regions.numpy()):
        dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        assert int(picks[i]) == int(np.argmax(dist))
        assert float(depths[i]) == pytest.approx(float(dist.max()))
    assert float(depths[0]) == 0.0 and int(picks[0]) == 0
