"""`masklet eval`: prints the J&F table, writes CSV, and turns bad input into one line + exit 2."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from masklet.cli.main import main
from masklet.io.masks import write_palette_png


def write_sequence(root: Path, name: str, masks: list[np.ndarray]) -> None:
    for t, ids in enumerate(masks):
        write_palette_png(root / name / f"{t:05d}.png", ids)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """`good`: predicted exactly; `bad`: the object is missed on every scored frame."""
    ids = np.zeros((12, 16), dtype=np.uint8)
    ids[3:9, 4:10] = 1
    empty = np.zeros_like(ids)
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    for name in ("good", "bad"):
        write_sequence(gt, name, [ids] * 4)
    write_sequence(pred, "good", [ids] * 4)
    write_sequence(pred, "bad", [ids, empty, empty, ids])
    return pred, gt


def test_eval_prints_table_and_writes_csv(
    folders: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred, gt = folders
    out = tmp_path / "scores.csv"
    assert main(["eval", str(pred), str(gt), "--csv", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "global (2 objects in 2 sequences): J&F 0.5000  J 0.5000  F 0.5000"
    with open(out, newline="") as f:
        rows = {(r["sequence"], r["object"]): r for r in csv.DictReader(f)}
    assert float(rows[("good", "1")]["J&F"]) == 1.0
    assert float(rows[("bad", "1")]["J&F"]) == 0.0


def test_eval_sequences_filter(
    folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pred, gt = folders
    assert main(["eval", str(pred), str(gt), "--sequences", "good"]) == 0
    assert capsys.readouterr().out.startswith("global (1 objects in 1 sequences): J&F 1.0000")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sequences", "good,,bad"], "comma-separated names"),
        (["--sequences", "nope"], "no annotations for sequences ['nope']"),
    ],
)
def test_eval_bad_input_is_one_line_exit_2(
    folders: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    pred, gt = folders
    assert main(["eval", str(pred), str(gt), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("masklet eval: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_eval_missing_prediction_names_the_file(
    folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pred, gt = folders
    (pred / "good" / "00001.png").unlink()
    assert main(["eval", str(pred), str(gt)]) == 2
    assert "good/00001.png" in capsys.readouterr().err


def test_eval_says_which_objects_it_scored(
    folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pred, gt = folders
    assert main(["eval", str(pred), str(gt)]) == 0
    assert "(DAVIS 2017 protocol)" in capsys.readouterr().out.splitlines()[1]
    assert main(["eval", str(pred), str(gt), "--objects", "present"]) == 0
    assert "not the DAVIS 2017 protocol" in capsys.readouterr().out.splitlines()[1]
