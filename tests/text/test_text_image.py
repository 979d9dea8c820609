"""`masklet image --text`: end to end with the tiny GroundingDINO and a tiny SAM 2, labels in
the JSON, ids after the click/box objects, max objects, nothing found, missing weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from masklet.cli import image as image_cli
from masklet.cli.main import main
from masklet.image_predictor import ImagePredictor
from masklet.io.masks import decode_rle, read_id_png
from masklet.text import Detections, ScriptedDetector
from tests.nondegenerate import assert_informative

W, H = 80, 60
PROMPT = "a dog. a red car."


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    img = np.random.default_rng(0).integers(0, 60, (H, W, 3), dtype=np.uint8)
    img[10:40, 20:50] = (220, 40, 40)
    path = tmp_path / "photo.png"
    Image.fromarray(img).save(path)
    return path


@pytest.fixture
def sam(monkeypatch: pytest.MonkeyPatch, tiny_sam: Any) -> Any:
    monkeypatch.setattr(image_cli, "load_model_from_args", lambda args: tiny_sam)
    return tiny_sam


def use_detector(monkeypatch: pytest.MonkeyPatch, detector: Any) -> list[Any]:
    """Patch the CLI's detector factory; returns the args it was called with."""
    seen: list[Any] = []

    def factory(args: Any) -> Any:
        seen.append(args)
        return detector

    monkeypatch.setattr(image_cli, "load_detector_from_args", factory)
    return seen


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_text_with_grounding_dino_end_to_end(
    photo: Path, tmp_path: Path, sam: Any, tiny_detector: Any,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    seen = use_detector(monkeypatch, tiny_detector)
    js, ids_png, overlay = tmp_path / "m.json", tmp_path / "ids.png", tmp_path / "o.png"
    code, out, err = run(
        ["image", str(photo), "--text", PROMPT, "--box-threshold", "0", "--text-threshold", "0",
         "--max-objects", "3", "--detector", "base", "--json", str(js), "--masks", str(ids_png),
         "-o", str(overlay)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert seen[0].detector == "base" and seen[0].text == PROMPT
    records = json.loads(js.read_text())["annotations"]
    assert [r["id"] for r in records] == [1, 2, 3]
    # one naming rule for every front end: the phrase is the label, names are {phrase}_{k}
    assert all(r["label"] in {"dog", "red car"} for r in records)
    assert all(r["name"].rsplit("_", 1)[0] == r["label"].replace(" ", "_") for r in records)
    assert all(0.0 <= r["detection_score"] <= 1.0 for r in records)
    for r in records:
        assert decode_rle(r["segmentation"]).shape == (H, W)
        assert f"object {r['id']} ({r['label']}" in out
    assert set(np.unique(read_id_png(ids_png))) <= {0, 1, 2, 3}
    assert np.asarray(Image.open(overlay)).shape == (H, W, 3)


def test_text_objects_follow_click_and_box_objects(
    photo: Path, tmp_path: Path, sam: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    dets = Detections(
        np.array([[20, 10, 50, 40], [0, 0, 10, 10]], np.float32), np.array([0.9, 0.5]),
        ["dog", "red car"],
    )  # fmt: skip
    use_detector(monkeypatch, ScriptedDetector([dets]))
    js = tmp_path / "m.json"
    code, out, err = run(
        ["image", str(photo), "--box", "20,10,50,40", "--box", "60,40,79,59", "--text", PROMPT,
         "--json", str(js)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    records = {r["id"]: r for r in json.loads(js.read_text())["annotations"]}
    assert {i: r["name"] for i, r in records.items()} == {
        1: "object_1", 2: "object_2", 3: "dog_1", 4: "red_car_1",
    }  # fmt: skip
    assert records[3]["label"] == "dog" and records[4]["label"] == "red car"
    assert records[3]["detection_score"] == pytest.approx(0.9)
    assert "detection_score" not in records[1]


def test_nothing_found_writes_empty_outputs(
    photo: Path, tmp_path: Path, sam: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    use_detector(monkeypatch, ScriptedDetector([Detections.empty()]))
    js = tmp_path / "m.json"
    code, out, err = run(["image", str(photo), "--text", "a unicorn.", "--json", str(js)], capsys)
    assert code == 0, err
    assert "nothing found for 'a unicorn.'" in out
    assert json.loads(js.read_text())["annotations"] == []


def test_without_any_prompt_the_error_mentions_text(
    photo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["image", str(photo)], capsys)
    assert code == 2 and "--text" in err


def test_missing_detector_weights_offline_exit_2_with_the_fix(
    photo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # no model is patched: the detector must fail before the SAM 2 model would load
    monkeypatch.setattr(image_cli, "load_model_from_args", lambda args: pytest.fail("loaded"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = "nobody-here/grounding-dino-missing"
    code, _, err = run(["image", str(photo), "--text", PROMPT, "--detector", missing], capsys)
    assert code == 2
    assert err.count("\n") == 1 and f"hf download {missing}" in err


def test_each_text_object_is_its_boxs_mask_under_its_label(
    tmp_path: Path, nano_model: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """With the trained nano model (real masks) and a detector reporting two known boxes: ids
    follow the scores, each label stays with its box, and each mask is the image predictor's
    mask for that box."""
    img = np.random.default_rng(0).integers(0, 60, (H, W, 3), dtype=np.uint8)
    img[10:40, 20:50] = (220, 40, 40)
    img[42:58, 56:76] = (40, 90, 220)
    photo = tmp_path / "two.png"
    Image.fromarray(img).save(photo)
    boxes = {"red car": [20, 10, 50, 40], "dog": [56, 42, 76, 58]}
    # listed red car first but the dog scores higher: the dog must become object 1
    dets = Detections(
        np.array([boxes["red car"], boxes["dog"]], np.float32), np.array([0.6, 0.9]),
        ["red car", "dog"],
    )  # fmt: skip
    use_detector(monkeypatch, ScriptedDetector([dets]))
    monkeypatch.setattr(image_cli, "load_model_from_args", lambda args: nano_model)
    js = tmp_path / "m.json"
    code, _, err = run(["image", str(photo), "--text", PROMPT, "--json", str(js)], capsys)
    assert code == 0, err
    records = json.loads(js.read_text())["annotations"]
    assert [(r["id"], r["label"], r["name"]) for r in records] == [
        (1, "dog", "dog_1"), (2, "red car", "red_car_1"),
    ]  # fmt: skip
    assert [r["detection_score"] for r in records] == pytest.approx([0.9, 0.6])

    predictor = ImagePredictor(nano_model)
    predictor.set_image(img)
    masks = {r["label"]: decode_rle(r["segmentation"]) for r in records}
    assert_informative({0: masks}, min_pixels=100)
    for name, mask in masks.items():
        expected, _, _ = predictor.predict(box=boxes[name], multimask_output=False)
        assert np.array_equal(mask, expected[0].astype(bool)), name
        x1, y1, x2, y2 = boxes[name]
        inside = mask[y1:y2, x1:x2].sum()
        assert inside / mask.sum() > 0.9, name  # the mask lies in its own box
