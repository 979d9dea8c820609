"""`AutomaticMaskGenerator` on the bundled nano model: finds the shapes of synthetic images,
reports progress, validates its settings; chunking and explicit grids do not change results."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import masklet
from masklet.errors import InvalidInputError
from masklet.everything import AutomaticMaskGenerator, generator
from masklet.train.synthetic import HELDOUT_SEED_BASE, make_image

# The nano model's IoU head and stability scores stay below the reference defaults (0.8 and
# 0.95, tuned for Hiera-L): its masks come from 32 x 32 logits of a 128 px model. Measured on
# 20 held-out images: IoU predictions peak at ~0.82, stability scores at ~0.79.
NANO_OPTIONS: dict[str, Any] = dict(
    points_per_side=16, pred_iou_thresh=0.5, stability_score_thresh=0.5
)
IMAGES = 20


@pytest.fixture(scope="module")
def nano() -> masklet.SAM2Model:
    return masklet.load_model("masklet-nano-synthetic")


def _best_ious(records: list[dict[str, Any]], truth: np.ndarray) -> np.ndarray:
    """[K] best IoU of each true mask ([K, H, W]) with any generated mask."""
    segs = np.array([r["segmentation"] for r in records])  # [R, H, W]
    best = []
    for mask in truth:
        inter = (segs & mask).sum(axis=(1, 2))
        union = (segs | mask).sum(axis=(1, 2))
        best.append(float((inter / union).max()))
    return np.array(best)


def test_finds_the_shapes_of_synthetic_images(nano: masklet.SAM2Model) -> None:
    gen = AutomaticMaskGenerator(nano, **NANO_OPTIONS)
    met_at_08 = 0
    for i in range(IMAGES):
        image, truth = make_image(HELDOUT_SEED_BASE + i, 192, 256, max_objects=3)
        records = gen.generate(image)
        assert all(r["area"] > 0 for r in records)
        best = _best_ious(records, truth) if records else np.zeros(len(truth))
        k = len(truth)
        # every image: all shapes but at most one found roughly (IoU >= 0.5)
        assert (best >= 0.5).sum() >= k - 1, (i, best)
        met_at_08 += int((best >= 0.8).sum() >= k - 1)
    # IoU >= 0.8 for K-1 of K shapes: measured on 17 of 20 images (the model's one-click J on
    # its held-out set is 0.78, so a strict 0.8 on every image is beyond it)
    assert met_at_08 >= 16, met_at_08


def test_progress_counts_every_batch_and_can_cancel(nano: masklet.SAM2Model) -> None:
    image, _ = make_image(HELDOUT_SEED_BASE + 1, 192, 256, max_objects=3)
    options = dict(NANO_OPTIONS, points_per_side=8)
    gen = AutomaticMaskGenerator(nano, points_per_batch=20, crop_n_layers=1, **options)
    calls: list[tuple[int, int]] = []
    first = gen.generate(image, progress=lambda done, total: calls.append((done, total)))
    per_crop = -(-64 // 20)  # 64 points in batches of 20
    total = 5 * per_crop  # the image and its 4 first-layer crops
    assert calls == [(i, total) for i in range(1, total + 1)]

    class Cancelled(Exception):
        pass

    def cancel(done: int, total: int) -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        gen.generate(image, progress=cancel)
    # a cancelled run leaves nothing behind: the next one gives the same records
    _same_records(gen.generate(image), first)


def _same_records(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b) and len(a) > 1
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        assert np.array_equal(x["segmentation"], y["segmentation"])
        assert {k: v for k, v in x.items() if k != "segmentation"} == {
            k: v for k, v in y.items() if k != "segmentation"
        }


def test_chunked_upscaling_and_explicit_grids_change_nothing(
    nano: masklet.SAM2Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    image, _ = make_image(HELDOUT_SEED_BASE + 1, 192, 256, max_objects=3)
    gen = AutomaticMaskGenerator(nano, **NANO_OPTIONS)
    expected = gen.generate(image)
    # one mask per upscaling chunk
    monkeypatch.setattr(generator, "UPSCALE_CHUNK_PIXELS", 1)
    _same_records(gen.generate(image), expected)
    monkeypatch.undo()
    # the same grid given explicitly (built independently, as the reference builds it)
    n = NANO_OPTIONS["points_per_side"]
    side = np.linspace(1 / (2 * n), 1 - 1 / (2 * n), n)
    grid = np.stack([np.tile(side, n), np.repeat(side, n)], axis=1)
    options = {k: v for k, v in NANO_OPTIONS.items() if k != "points_per_side"}
    explicit = AutomaticMaskGenerator(nano, None, point_grids=[grid], **options)
    _same_records(explicit.generate(image), expected)


def test_record_fields_are_consistent(nano: masklet.SAM2Model) -> None:
    image, _ = make_image(HELDOUT_SEED_BASE + 2, 192, 256, max_objects=3)
    records = AutomaticMaskGenerator(nano, **NANO_OPTIONS, crop_n_layers=1).generate(image)
    assert len(records) > 1
    for r in records:
        mask = r["segmentation"]
        assert mask.shape == image.shape[:2] and mask.dtype == bool
        assert r["area"] == int(mask.sum())
        ys, xs = np.nonzero(mask)
        assert r["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
        x, y, w, h = r["crop_box"]
        px, py = r["point_coords"][0]
        assert x <= px <= x + w and y <= py <= y + h
        assert 0.5 < r["predicted_iou"] <= 1 and 0.5 <= r["stability_score"] <= 1


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(points_per_side=None), "exactly one of points_per_side"),
        (dict(point_grids=[np.zeros((4, 2))]), "exactly one of points_per_side"),
        (
            dict(points_per_side=None, point_grids=[np.zeros((4, 2))], crop_n_layers=1),
            "one grid per layer",
        ),
        (dict(points_per_side=None, point_grids=[np.full((4, 2), 2.0)]), r"\[0, 1\]"),
        (dict(output_mode="png"), "output_mode"),
        (dict(points_per_side=4, crop_n_layers=3, crop_n_points_downscale_factor=2), "no points"),
        (dict(points_per_batch=0), "points_per_batch"),
        (dict(min_mask_region_area=-1), "min_mask_region_area"),
    ],
)
def test_bad_settings_name_the_problem(
    nano: masklet.SAM2Model, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidInputError, match=match):
        AutomaticMaskGenerator(nano, **options)


def test_rejects_non_rgb_arrays(nano: masklet.SAM2Model) -> None:
    gen = AutomaticMaskGenerator(nano, points_per_side=4)
    with pytest.raises(InvalidInputError, match=r"\[H, W, 3\]"):
        gen.generate(np.zeros((32, 32), dtype=np.uint8))
    with pytest.raises(InvalidInputError, match="uint8"):
        gen.generate(np.zeros((32, 32, 3), dtype=np.float32))
