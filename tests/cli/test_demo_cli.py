"""`masklet demo`: writes the synthetic clip and prints a runnable command."""

from __future__ import annotations

import dataclasses
import re
import stat
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from masklet.cli.demo import DEMO_SEED
from masklet.cli.main import main
from masklet.train.synthetic import demo_config, make_video
from masklet.video.frames import open_frames


def test_demo_writes_a_playable_clip_with_click_points(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo.mp4"
    assert main(["demo", str(out), "--frames", "12"]) == 0
    printed = capsys.readouterr().out
    assert "--click-coordinates" in printed and "masklet-nano-synthetic" in printed
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert (stream.width, stream.height, frames) == (256, 192, 12)
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # readable by others, like a normal file


def test_demo_rejects_a_non_video_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", str(tmp_path / "demo.gif")]) == 2
    assert "demo.gif" in capsys.readouterr().err
    assert not (tmp_path / "demo.gif").exists()


def _demo_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[str]:
    assert main(["demo", str(tmp_path / "demo.mp4"), "--frames", "6", *extra]) == 0
    return capsys.readouterr().out.splitlines()


def test_demo_clicks_are_the_same_without_scikit_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from masklet.train import textures

    pytest.importorskip("skimage")  # the installed path: photos available
    textures.photos.cache_clear()
    assert textures.photos(), "scikit-image is installed, so photos should load"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with_photos = _demo_lines(tmp_path / "a", capsys)

    textures.photos.cache_clear()
    monkeypatch.setitem(sys.modules, "skimage", None)  # `import skimage` now fails
    assert textures.photos() == ()
    without = _demo_lines(tmp_path / "b", capsys)
    textures.photos.cache_clear()

    assert with_photos[0].split(": ", 1)[1] == without[0].split(": ", 1)[1]
    frames = [open_frames(tmp_path / d / "demo.mp4") for d in ("a", "b")]
    assert np.array_equal(frames[0].get(0), frames[1].get(0))  # the same clip, pixel for pixel


def test_demo_clicks_land_deep_inside_their_objects_in_id_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _demo_lines(tmp_path, capsys)
    printed = [
        tuple(map(int, pair.split(",")))
        for pair in re.findall(r"\[(\d+,\d+)\]", lines[0].split("objects at ")[1])
    ]
    video = make_video(DEMO_SEED, dataclasses.replace(demo_config(6, (256, 192)), use_photos=False))
    assert len(printed) == len(video.obj_ids) == 2
    for k, (x, y) in enumerate(printed):  # click k belongs to object k + 1 (ids in order)
        mask = video.masks[0, k]
        assert mask.sum() > 100, "degenerate object"
        depth = ndimage.distance_transform_edt(mask)
        assert mask[y, x] and depth[y, x] >= 5, f"click {k + 1} at {x},{y} is near an edge"
        others = [j for j in range(len(printed)) if j != k]
        assert not any(video.masks[0, j, y, x] for j in others)
    assert '--click-object-ids "object_1,object_2"' in lines[1]


def test_demo_writes_a_sample_image_with_its_clicks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "sample.png"
    lines = _demo_lines(tmp_path, capsys, "--image", str(sample))
    image = np.asarray(Image.open(sample))
    video = make_video(DEMO_SEED, dataclasses.replace(demo_config(6, (256, 192)), use_photos=False))
    assert image.shape == (192, 256, 3) and image.std() > 5  # not blank
    assert np.array_equal(image, video.frames[0])  # lossless frame 0
    coords = lines[0].split("objects at ")[1].split(" on frame")[0]
    assert any(line.startswith(f"wrote {sample}") and coords in line for line in lines)
    image_try = next(line for line in lines if line.startswith("try: masklet image"))
    first = coords.split("]")[0].removeprefix("[")
    assert f"--point {first}" in image_try and "masklet-nano-synthetic" in image_try


def test_demo_rejects_a_non_image_sample_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", str(tmp_path / "d.mp4"), "--image", str(tmp_path / "s.gif")]) == 2
    assert "s.gif" in capsys.readouterr().err
    assert not (tmp_path / "d.mp4").exists()
