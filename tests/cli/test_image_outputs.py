"""`masklet image` outputs and early errors: one id-PNG format with `masklet video` (DAVIS
palette), one overlap policy in PNG, JSON and overlay, prompt boxes drawn, negative clicks and
bad output names refused before the model loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from masklet.checkpoints import load_model
from masklet.cli import image as image_cli
from masklet.cli.main import main
from masklet.image_predictor import ImagePredictor
from masklet.io.masks import decode_rle, read_palette_png
from masklet.io.overlay import BOX_COLOR
from tests.server.conftest import moving_square


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(moving_square(1)[0]).save(path)
    return path


def never_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_cli, "load_model_from_args", lambda args: pytest.fail("loaded"))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--point", "-5,20"], "--point[0]: pixel coordinates must be >= 0"),
        (["--box", "-1,2,30,40"], "--box[0]: pixel coordinates must be >= 0"),
        (["--box", "30,2,10,40"], "--box[0]: needs x2 > x1 and y2 > y1"),
        (["--point", "5,20", "-o", "x.gif"], "name it *.png, *.jpg or *.webp"),
        (["--point", "5,20", "--masks", "ids.jpg"], "an id mask is a PNG"),
    ],
)
def test_bad_prompts_and_output_names_fail_before_the_model(
    photo: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, argv: list[str], needle: str
) -> None:
    never_load(monkeypatch)
    code = main(["image", str(photo), *argv])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_one_id_png_format_and_one_overlap_policy(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr(
        image_cli, "load_model_from_args", lambda args: load_model("masklet-nano-synthetic")
    )
    # two boxes over parts of the same square: SAM 2's raw masks overlap
    box_a, box_b = (6.0, 12.0, 30.0, 36.0), (16.0, 12.0, 40.0, 36.0)
    predictor = ImagePredictor(load_model("masklet-nano-synthetic"))
    predictor.set_image(moving_square(1)[0])
    raw = [predictor.predict(box=list(b), multimask_output=False)[0][0] > 0 for b in (box_a, box_b)]
    assert raw[0].any() and raw[1].any() and (raw[0] & raw[1]).any()

    ids_png, js, overlay = tmp_path / "ids.png", tmp_path / "m.json", tmp_path / "o.png"
    code = main(["image", str(photo), "--box", ",".join(map(str, box_a)), "--box",
                 ",".join(map(str, box_b)), "--masks", str(ids_png), "--json", str(js),
                 "-o", str(overlay)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert Image.open(ids_png).mode == "P"  # the DAVIS palette PNG `masklet video` writes
    ids = read_palette_png(ids_png)
    records = json.loads(js.read_text())["annotations"]
    masks = {r["id"]: decode_rle(r["segmentation"]) for r in records}
    assert any(m.any() for m in masks.values())
    assert not (masks[1] & masks[2]).any()  # outputs never overlap ...
    assert np.array_equal(masks[1] | masks[2], raw[0] | raw[1])  # ... and lose no pixel
    painted = np.zeros_like(ids)
    for obj_id, mask in masks.items():
        painted[mask] = obj_id
    assert np.array_equal(painted, ids)  # the JSON paints exactly the id PNG
    drawn = np.asarray(Image.open(overlay).convert("RGB"))
    assert (drawn[12, 6:30] == BOX_COLOR).all(axis=-1).sum() > 15  # the prompt box is drawn
