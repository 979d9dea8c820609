import json
from pathlib import Path

import numpy as np
import pytest

from masklet.errors import InvalidInputError
from masklet.io.images import write_image
from masklet.io.masks import write_palette_png
from masklet.train.data import (
    CocoImages,
    DavisClips,
    SyntheticClips,
    open_dataset,
    resize_frames,
    resize_masks,
)
from masklet.train.synthetic import SyntheticConfig


def _write_davis(root: Path, num_frames: int = 5, hw: tuple[int, int] = (24, 32)) -> None:
    h, w = hw
    for t in range(num_frames):
        frame = np.full((h, w, 3), 40 * t, np.uint8)
        ids = np.zeros((h, w), np.uint8)
        ids[2:10, 2 + t : 10 + t] = 1
        if t >= 2:  # object 2 appears on frame 2
            ids[14:20, 20:28] = 2
        ids[0, :] = 255  # void
        write_image(root / "JPEGImages" / "seq" / f"{t:05d}.jpg", frame)
        write_palette_png(root / "Annotations" / "seq" / f"{t:05d}.png", ids)


def test_resizing_keeps_types_and_shapes() -> None:
    frames = np.random.default_rng(0).integers(0, 255, (2, 20, 30, 3), dtype=np.uint8)
    assert resize_frames(frames, 16).shape == (2, 16, 16, 3)
    assert resize_frames(frames, 16).dtype == np.uint8
    masks = np.zeros((2, 1, 20, 30), bool)
    masks[:, :, 5:15, 5:25] = True
    small = resize_masks(masks, 16)
    assert small.shape == (2, 1, 16, 16) and small.dtype == bool
    assert 0.25 < small.mean() < 0.45  # about a third of the area, as before resizing


def test_davis_windows_follow_the_rng_and_use_objects_of_the_first_frame(
    tmp_path: Path,
) -> None:
    _write_davis(tmp_path)
    data = DavisClips(tmp_path, num_frames=3, image_size=16)
    assert len(data) == 1 and data.names == ["seq"]
    clip = data.clip(0, np.random.default_rng(0))
    assert clip.frames.shape == (3, 16, 16, 3) and clip.masks.shape[::2] == (3, 16)
    same = data.clip(0, np.random.default_rng(0))
    assert np.array_equal(clip.frames, same.frames) and np.array_equal(clip.masks, same.masks)
    starts = set()
    for seed in range(12):
        c = data.clip(0, np.random.default_rng(seed))
        start = int(round(float(c.frames[0].mean()) / 40))
        starts.add(start)
        # object 2 is only an object of windows that start where it is visible
        assert c.num_objects == (2 if start >= 2 else 1)
        assert c.masks[0].reshape(c.num_objects, -1).any(axis=1).all()
    assert starts == {0, 1, 2}


def test_davis_short_sequences_repeat_the_last_frame(tmp_path: Path) -> None:
    _write_davis(tmp_path, num_frames=2)
    clip = DavisClips(tmp_path, num_frames=4, image_size=16).clip(0, np.random.default_rng(0))
    assert clip.num_frames == 4
    assert np.array_equal(clip.frames[1], clip.frames[3])


def test_davis_errors_name_the_layout(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="JPEGImages"):
        DavisClips(tmp_path, 2, 16)
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "Annotations").mkdir()
    with pytest.raises(InvalidInputError, match="no annotated sequences"):
        DavisClips(tmp_path, 2, 16)


def test_coco_images_become_one_frame_clips(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.png", np.full((20, 30, 3), 128, np.uint8))
    spec = {
        "images": [{"id": 1, "file_name": "a.png", "height": 20, "width": 30}],
        "annotations": [
            {  # a polygon square and a crowd region that is skipped
                "id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 100,
                "bbox": [2, 2, 10, 10], "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]],
            },
            {
                "id": 2, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 4,
                "bbox": [20, 10, 2, 2],
                "segmentation": {"size": [20, 30], "counts": [210, 2, 18, 2, 368]},
            },
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }  # fmt: skip
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(spec))
    data = CocoImages(path, image_size=32, images_dir=tmp_path / "images")
    assert len(data) == 1
    clip = data.clip(0, np.random.default_rng(0))
    assert clip.frames.shape == (1, 32, 32, 3) and clip.masks.shape == (1, 1, 32, 32)
    assert clip.masks.any()
    via_spec = open_dataset(f"coco:{path}:{tmp_path / 'images'}", 32, num_frames=1)
    assert len(via_spec) == 1
    with pytest.raises(InvalidInputError, match="not found"):
        CocoImages(tmp_path / "missing.json", 32)


def test_synthetic_clips_videos_and_images() -> None:
    cfg = SyntheticConfig(height=48, width=48, num_frames=3, use_photos=False)
    videos = SyntheticClips([0, 1], image_size=32, config=cfg)
    clip = videos.clip(1, np.random.default_rng(0))
    assert len(videos) == 2
    assert clip.frames.shape == (3, 32, 32, 3) and clip.masks.shape[0] == 3
    assert clip.num_objects >= 1 and clip.masks.shape[2:] == (32, 32)
    images = SyntheticClips([0], image_size=32, config=cfg, images=True)
    assert images.clip(0, np.random.default_rng(0)).num_frames == 1


def test_open_dataset_specs(tmp_path: Path) -> None:
    assert isinstance(open_dataset("synthetic", 32, num_frames=2), SyntheticClips)
    _write_davis(tmp_path)
    assert isinstance(open_dataset(f"davis:{tmp_path}", 32, num_frames=2), DavisClips)
    with pytest.raises(InvalidInputError, match="synthetic, synthetic-images, davis"):
        open_dataset("kinetics", 32, num_frames=2)


def test_synthetic_training_seeds_stay_below_the_held_out_ones() -> None:
    clips = open_dataset("synthetic", 32, num_frames=2, seed=9, num_synthetic=100_000)
    assert isinstance(clips, SyntheticClips)
    assert clips.seeds[0] == 900_000 and clips.seeds[-1] == 999_999
    with pytest.raises(InvalidInputError, match="reach the held-out seeds"):
        open_dataset("synthetic", 32, num_frames=2, seed=10, num_synthetic=100_000)


def test_occlusion_probability_reaches_the_synthetic_videos(tmp_path: Path) -> None:
    """With occlusion_prob 1 every 12-frame clip hides each object fully for >= 5 frames
    somewhere in the middle; with 0 none does. Other sources refuse the setting."""

    def hidden_runs(prob: float) -> list[bool]:
        clips = open_dataset("synthetic", 64, num_frames=12, num_synthetic=6, occlusion_prob=prob)
        assert isinstance(clips, SyntheticClips) and clips.config.occlusion_prob == prob
        out = []
        for i in range(6):
            masks = clips.clip(i, np.random.default_rng(i)).masks  # [T, K, S, S]
            visible = masks.reshape(masks.shape[0], masks.shape[1], -1).any(-1)  # [T, K]
            for k in range(visible.shape[1]):
                run = longest = 0
                for v in visible[:, k]:
                    run = 0 if v else run + 1
                    longest = max(longest, run)
                out.append(longest >= 5)
        return out

    assert all(hidden_runs(1.0))
    assert not any(hidden_runs(0.0))
    _write_davis(tmp_path)
    with pytest.raises(InvalidInputError, match="synthetic videos only"):
        open_dataset(f"davis:{tmp_path}", 32, num_frames=2, occlusion_prob=0.5)
