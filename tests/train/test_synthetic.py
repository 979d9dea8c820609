"""Synthetic videos: shapes, determinism, exact masks, occlusion and leaving, DAVIS output."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from masklet.errors import InvalidInputError
from masklet.io.images import read_image
from masklet.io.masks import read_palette_png
from masklet.train import synthetic, textures
from masklet.train.synthetic import (
    SyntheticConfig,
    SyntheticVideoDataset,
    make_demo_video,
    make_image,
    make_video,
    write_davis,
)

SMALL = SyntheticConfig(height=48, width=64, num_frames=8)


def longest_empty_run(mask_t: np.ndarray) -> int:
    """Longest run of consecutive frames where a `[T, H, W]` mask is empty."""
    best = run = 0
    for empty in ~mask_t.reshape(len(mask_t), -1).any(axis=1):
        run = run + 1 if empty else 0
        best = max(best, run)
    return best


def test_shapes_types_and_first_frame_visibility() -> None:
    for seed in range(6):
        video = make_video(seed, SMALL)
        k = len(video.obj_ids)
        assert 1 <= k <= 3 and video.obj_ids == list(range(1, k + 1))
        assert video.frames.shape == (8, 48, 64, 3) and video.frames.dtype == np.uint8
        assert video.masks.shape == (8, k, 48, 64) and video.masks.dtype == np.bool_
        assert video.seed == seed
        # Every object can be prompted on frame 0, and objects never share a pixel.
        assert (video.masks[0].reshape(k, -1).sum(axis=1) >= synthetic.MIN_FIRST_FRAME_PIXELS).all()
        assert video.masks.sum(axis=1).max() <= 1


def test_deterministic_per_seed_and_different_across_seeds() -> None:
    a, b = make_video(11, SMALL), make_video(11, SMALL)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.masks, b.masks)
    c = make_video(12, SMALL)
    assert a.frames.shape != c.frames.shape or not np.array_equal(a.frames, c.frames)


def test_masks_are_exactly_the_painted_pixels() -> None:
    # Without photos every texture is procedural; repaint the background under the masks
    # and check that only object pixels differ from the plain background.
    config = dataclasses.replace(SMALL, use_photos=False, occlusion_prob=0.0)
    video = make_video(3, config)
    rng = np.random.default_rng(3)
    background = synthetic._background(config, rng)  # the first thing make_video draws
    changed = (video.frames != background).any(axis=-1)  # [T, H, W]
    covered = video.masks.any(axis=1)
    # Untracked pixels equal the background; an object pixel may match it by chance only.
    assert not (changed & ~covered).any()
    assert changed[covered].mean() > 0.9


def test_full_occlusion_for_at_least_min_frames() -> None:
    config = dataclasses.replace(SMALL, occlusion_prob=1.0, leave_prob=0.0, min_occlusion_frames=4)
    for seed in range(4):
        video = make_video(seed, config)
        for k in range(len(video.obj_ids)):
            masks = video.masks[:, k]
            assert masks[0].any()
            assert longest_empty_run(masks) >= 4
            assert masks[-1].any() or masks[-2].any()  # it comes back after being hidden


def test_leave_and_reenter() -> None:
    config = dataclasses.replace(SMALL, occlusion_prob=0.0, leave_prob=1.0, max_objects=1)
    for seed in range(4):
        masks = make_video(seed, config).masks[:, 0]
        present = masks.reshape(len(masks), -1).any(axis=1)
        gone = np.flatnonzero(~present)
        assert len(gone) >= 1  # fully out of the frame for at least one frame...
        assert present[0] and present[gone[-1] + 1 :].any()  # ...visible before and after


def test_short_clips_skip_occlusion() -> None:
    config = dataclasses.replace(SMALL, num_frames=3, occlusion_prob=1.0, leave_prob=0.0)
    video = make_video(0, config)
    assert video.masks.reshape(3, len(video.obj_ids), -1).any(axis=2).all()


def test_procedural_only_still_works() -> None:
    video = make_video(5, dataclasses.replace(SMALL, use_photos=False))
    assert video.frames.std() > 5  # textured, not flat


def test_photos_are_used_when_available() -> None:
    pytest.importorskip("skimage")
    assert len(textures.photos()) >= 5
    crop = textures.photo_crop(20, 30, np.random.default_rng(0))
    assert crop is not None and crop.shape == (20, 30, 3) and crop.dtype == np.uint8


def test_without_scikit_image_textures_are_procedural(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "skimage", None)  # `import skimage` raises ImportError
    textures.photos.cache_clear()
    try:
        assert textures.photos() == ()
        assert textures.photo_crop(8, 8, np.random.default_rng(0)) is None
        video = make_video(7, SMALL)  # still a full video, from patterns only
        assert video.frames.shape == (8, 48, 64, 3) and video.masks[0].any()
    finally:
        textures.photos.cache_clear()


def test_make_image() -> None:
    image, masks = make_image(4, height=40, width=56, max_objects=2)
    assert image.shape == (40, 56, 3) and image.dtype == np.uint8
    assert masks.ndim == 3 and 1 <= len(masks) <= 2 and masks.shape[1:] == (40, 56)
    assert masks.reshape(len(masks), -1).any(axis=1).all()


def test_dataset_is_deterministic_per_index() -> None:
    dataset = SyntheticVideoDataset(range(100, 103), SMALL)
    assert len(dataset) == 3
    np.testing.assert_array_equal(dataset[1].frames, make_video(101, SMALL).frames)
    assert dataset[-1].seed == 102
    with pytest.raises(IndexError):
        dataset[3]


@pytest.mark.parametrize(
    "changes",
    [dict(height=8), dict(num_frames=0), dict(min_objects=3, max_objects=2), dict(leave_prob=2.0)],
)
def test_bad_config_is_a_typed_error(changes: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        SyntheticConfig(**changes)  # type: ignore[arg-type]


def test_write_davis_round_trip(tmp_path: Path) -> None:
    videos = [make_video(s, SMALL) for s in (1, 2)]
    write_davis(videos, tmp_path, names=["a", "b"])
    for name, video in zip("ab", videos):
        frames = sorted((tmp_path / "JPEGImages" / name).iterdir())
        assert [f.name for f in frames][:2] == ["00000.jpg", "00001.jpg"] and len(frames) == 8
        assert read_image(frames[0]).shape == (48, 64, 3)
        ids = read_palette_png(tmp_path / "Annotations" / name / "00003.png")
        for k, obj_id in enumerate(video.obj_ids):
            np.testing.assert_array_equal(ids == obj_id, video.masks[3, k])
    write_davis([videos[0]], tmp_path / "default")
    assert (tmp_path / "default" / "Annotations" / "seed1" / "00007.png").is_file()
    with pytest.raises(InvalidInputError, match="unique"):
        write_davis(videos, tmp_path, names=["a", "a"])


def test_demo_video(tmp_path: Path) -> None:
    from masklet.video.frames import open_frames

    path = tmp_path / "demo.mp4"
    points = make_demo_video(path, seed=0, num_frames=6, size=(64, 48), fps=12)
    assert sorted(points) == [1, 2]
    source = open_frames(path)
    assert len(source) == 6
    video = make_video(0, dataclasses.replace(synthetic.demo_config(6, (64, 48)), use_photos=False))
    for k, (x, y) in enumerate(points.values()):
        assert 0 <= x < 64 and 0 <= y < 48
        assert video.masks[0, k, y, x]  # the click lands on its object
