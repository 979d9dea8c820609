"""`masklet video --text`: objects found by a (scripted) detector are tracked and named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from masklet.cli import video as video_cli
from masklet.cli.main import main
from masklet.text import Detections, ScriptedDetector

W, H, T = 64, 48, 6


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for t in range(T):
        img = rng.integers(0, 50, (H, W, 3), dtype=np.uint8)
        img[10:30, 5 + 2 * t : 25 + 2 * t] = (220, 40, 40)
        if t >= 3:  # a second object enters on frame 3
            img[30:44, 40:56] = (40, 220, 40)
        Image.fromarray(img).save(frames / f"{t:05d}.png")
    return frames


def detections(boxes: list[list[float]], labels: list[str]) -> Detections:
    return Detections(
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
        scores=np.linspace(0.9, 0.8, len(boxes)).astype(np.float32),
        labels=labels,
    )


def test_text_objects_are_tracked_named_and_redetected(
    folder: Path, tmp_path: Path, tiny_sam: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    dog = [5.0, 10.0, 25.0, 30.0]
    car = [40.0, 30.0, 56.0, 44.0]
    detector = ScriptedDetector(
        [detections([dog], ["dog"]), detections([dog, car], ["dog", "car"])]
    )
    monkeypatch.setattr(video_cli, "load_model_from_args", lambda args: tiny_sam)
    monkeypatch.setattr(video_cli, "load_detector_from_args", lambda args: detector)
    out = tmp_path / "masks.json"
    code = main(["video", str(folder), "--text", "a dog. a car.", "--redetect-every", "3",
                 "--json", str(out)])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out.read_text())
    names = {o["id"]: o["name"] for o in data["objects"]}
    assert names == {1: "dog_1", 2: "car_1"}
    per_frame = {f["frame"]: sorted(a["id"] for a in f["annotations"]) for f in data["frames"]}
    assert all(per_frame[t] == [1] for t in range(3))  # the car is found on frame 3
    assert all(per_frame[t] == [1, 2] for t in range(3, T))
    assert [c[0] for c in detector.calls] == [(H, W, 3), (H, W, 3)]  # frames 0 and 3


def test_text_without_detector_weights_is_one_line(
    folder: Path, tmp_path: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["video", str(folder), "--text", "a dog.", "--detector", str(tmp_path / "no-such-model"),
                 "--json", str(tmp_path / "m.json")])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "no-such-model" in err
    assert not (tmp_path / "m.json").exists()
