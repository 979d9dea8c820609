"""Segment-everything items: `masklet batch --inputs FOLDER --everything` (local workers) gives
each image and video exactly what `masklet image|video --everything` writes for it alone, and
the COCO export holds the image's regions under the category "region"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from masklet.cli.main import main
from masklet.io.masks import read_palette_png
from tests.batch.conftest import (
    EVERYTHING_FLAGS,
    MODEL,
    EverythingInputs,
    assert_everything_matches_cli,
)


def test_the_everything_shortcut_equals_the_cli_on_each_file(
    everything_inputs: EverythingInputs, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = ["batch", "--inputs", str(everything_inputs.folder), *EVERYTHING_FLAGS,
            "--everything-every", "4", "--model", MODEL, "--threads", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    statuses = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    assert [(s["id"], s["status"], s["frames"]) for s in statuses] == [
        ("demo", "ok", 8), ("shapes", "ok", 1)
    ]  # fmt: skip
    assert_everything_matches_cli(out, everything_inputs)

    coco = COCO(str(out / "coco.json"))  # the image's regions, one category
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["region"]
    id_map = read_palette_png(out / "shapes" / "masks.png")
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= 2 and [a["object_name"] for a in anns] == [
        f"region_{k}" for k in range(1, len(anns) + 1)
    ]
    for ann in anns:
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), id_map == ann["object_id"])
