"""`masklet image`, `masklet models`, `masklet download`: happy paths and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklet import checkpoints
from masklet.cli import image as image_cli
from masklet.cli.main import main
from masklet.io.masks import decode_rle, read_id_png
from masklet.modeling.sam2 import build_model
from tests.parity.reference import small_config

W, H = 80, 60


@pytest.fixture(scope="module")
def tiny_model():  # type: ignore[no-untyped-def]
    return build_model(small_config("sam2.1_hiera_tiny", image_size=128))


@pytest.fixture
def patched_model(monkeypatch: pytest.MonkeyPatch, tiny_model):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(image_cli, "load_model_from_args", lambda args: tiny_model)
    return tiny_model


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
    img[10:40, 20:50] = (220, 40, 40)
    path = tmp_path / "photo.png"
    Image.fromarray(img).save(path)
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_point_prompt_writes_all_outputs(
    photo: Path, tmp_path: Path, patched_model, capsys
) -> None:  # type: ignore[no-untyped-def]
    out_png, ids_png, js = tmp_path / "o.png", tmp_path / "ids.png", tmp_path / "m.json"
    code, out, err = run(
        ["image", str(photo), "--point", "30,20", "--point", "5,5,0", "-o", str(out_png),
           "--masks", str(ids_png), "--json", str(js)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "object 1" in out
    overlay = np.asarray(Image.open(out_png))
    assert overlay.shape == (H, W, 3)
    ids = read_id_png(ids_png)
    assert ids.shape == (H, W) and set(np.unique(ids)) <= {0, 1}
    data = json.loads(js.read_text())
    assert data["image"]["width"] == W and data["image"]["height"] == H
    [ann] = data["annotations"]
    assert ann["id"] == 1
    mask = decode_rle(ann["segmentation"])
    assert np.array_equal(mask, ids == 1)


def test_each_box_is_one_object(photo: Path, tmp_path: Path, patched_model, capsys) -> None:  # type: ignore[no-untyped-def]
    js = tmp_path / "m.json"
    code, _, err = run(
        ["image", str(photo), "--box", "20,10,50,40", "--box", "0,0,15,15", "--json", str(js),
         "--multimask"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    ids = [a["id"] for a in json.loads(js.read_text())["annotations"]]
    assert ids == [1, 2]


def _json_mask(path: Path) -> np.ndarray:
    [ann] = json.loads(path.read_text())["annotations"]
    return decode_rle(ann["segmentation"])


def test_mask_input_prompt_changes_the_mask(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nano_model, capsys
) -> None:  # type: ignore[no-untyped-def]
    """The same click with and without a rough mask: the mask prompt must reach the model
    (the trained nano model, whose masks follow the red square, is used here)."""
    monkeypatch.setattr(image_cli, "load_model_from_args", lambda args: nano_model)
    mask = np.zeros((H, W), np.uint8)
    mask[5:45, 0:40] = 255  # overlaps the square's left part and the background left of it
    mpath = tmp_path / "mask.png"
    Image.fromarray(mask).save(mpath)
    with_mask, without = tmp_path / "with.json", tmp_path / "without.json"
    click = ["image", str(photo), "--point", "30,20"]
    code, _, err = run([*click, "--mask-input", str(mpath), "--json", str(with_mask)], capsys)
    assert code == 0, err
    code, _, err = run([*click, "--json", str(without)], capsys)
    assert code == 0, err
    a, b = _json_mask(with_mask), _json_mask(without)
    square = np.zeros((H, W), bool)
    square[10:40, 20:50] = True
    # both are the square, roughly (not empty, not the whole image) ...
    for m in (a, b):
        assert (m & square).sum() / (m | square).sum() > 0.5
    # ... and the mask prompt changed the answer
    assert int((a != b).sum()) > 20


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--point", "500,20"], ["outside", "80x60"]),
        (["--point", "30"], ["30"]),
        (["--point", "3a,4"], ["3a,4"]),
        (["--box", "50,40,20,10"], ["--box[0]: needs x2 > x1", "50, 40, 20, 10"]),
        (["--point", "30,20,7"], ["30,20,7"]),
        ([], ["--point"]),
    ],
)
def test_bad_prompts_exit_2(photo: Path, patched_model, capsys, extra, needles) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(["image", str(photo), *extra, "-o", "/tmp/never.png"], capsys)
    _assert_one_line_error(code, err, *needles)
    assert not Path("/tmp/never.png").exists()


def test_missing_and_corrupt_files_exit_2(tmp_path: Path, patched_model, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(["image", str(tmp_path / "nope.jpg"), "--point", "1,1"], capsys)
    _assert_one_line_error(code, err, "nope.jpg")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    code, _, err = run(["image", str(bad), "--point", "1,1"], capsys)
    _assert_one_line_error(code, err, "bad.png")


def test_mask_input_of_wrong_size_exit_2(
    photo: Path, tmp_path: Path, patched_model, capsys
) -> None:  # type: ignore[no-untyped-def]
    mpath = tmp_path / "small.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(mpath)
    code, _, err = run(["image", str(photo), "--point", "1,1", "--mask-input", str(mpath)], capsys)
    _assert_one_line_error(code, err, "small.png")


def test_unknown_model_exit_2(photo: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(["image", str(photo), "--point", "1,1", "--model", "sam9_giant"], capsys)
    _assert_one_line_error(code, err, "sam9_giant")


def test_missing_checkpoint_file_exit_2(photo: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(
        ["image", str(photo), "--point", "1,1", "--checkpoint", str(tmp_path / "x.pt")], capsys
    )
    _assert_one_line_error(code, err, "x.pt")


def test_models_lists_every_variant(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MASKLET_CACHE", str(tmp_path))
    (tmp_path / checkpoints.checkpoint_info("sam2.1_hiera_tiny").filename).write_bytes(b"x")
    code, out, _ = run(["models"], capsys)
    assert code == 0
    for name in checkpoints.CHECKPOINTS:
        assert name in out
    tiny_line = next(line for line in out.splitlines() if line.startswith("sam2.1_hiera_tiny "))
    assert "cached" in tiny_line
    assert "not downloaded" in next(
        line for line in out.splitlines() if line.startswith("sam2_hiera_large")
    )


def test_download_offline_is_one_clear_line(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MASKLET_CACHE", str(tmp_path))

    def offline(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("network is unreachable")

    monkeypatch.setattr(checkpoints, "_open_url", offline)
    monkeypatch.setattr(checkpoints, "_hf_download", offline)
    code, _, err = run(["download", "sam2.1_hiera_tiny"], capsys)
    _assert_one_line_error(code, err, "sam2.1_hiera_tiny", "--checkpoint")
    assert list(tmp_path.iterdir()) == []


def test_first_use_offline_in_image_command(
    photo: Path, tmp_path: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MASKLET_CACHE", str(tmp_path))

    def offline(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("network is unreachable")

    monkeypatch.setattr(checkpoints, "_open_url", offline)
    monkeypatch.setattr(checkpoints, "_hf_download", offline)
    code, _, err = run(["image", str(photo), "--point", "1,1"], capsys)
    _assert_one_line_error(code, err, "sam2.1_hiera_tiny", "--checkpoint")
