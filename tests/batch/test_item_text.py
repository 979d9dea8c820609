"""Text items in one process (a scripted detector stands in for GroundingDINO): every box
becomes an object named after its phrase, and the COCO export's categories are the phrases
(clicked objects keep their names, automatic names share "object")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

from masklet.batch import items_from_specs, run_item
from masklet.batch.coco import write_coco
from masklet.batch.item import WorkerSpec, WorkerState
from masklet.io.masks import read_palette_png
from masklet.text import Detections, ScriptedDetector
from tests.batch.conftest import MODEL


class ScriptedWorker(WorkerState):
    """A worker state with the bundled model and a scripted detector (no download)."""

    def __init__(self, model: Any, detector: ScriptedDetector) -> None:
        self.spec = WorkerSpec(model=MODEL)
        self.model = model
        self._scripted = detector

    def detector(self) -> Any:
        return self._scripted


def test_text_objects_are_named_by_phrase_and_categorised_by_it(
    tmp_path: Path, bundled_model: Any
) -> None:
    array = np.full((48, 64, 3), 20, np.uint8)
    array[8:28, 6:26] = (220, 60, 40)
    array[20:44, 36:60] = (40, 200, 60)
    Image.fromarray(array).save(tmp_path / "two.png")
    found = Detections(boxes=np.array([[6, 8, 26, 28], [36, 20, 60, 44]], np.float32),
                       scores=np.array([0.9, 0.8], np.float32), labels=["red box", "leaf"])  # fmt: skip
    worker = ScriptedWorker(bundled_model, ScriptedDetector([found]))
    specs = [
        {"id": "text", "input": "two.png", "text": "red box. leaf."},
        {"id": "clicked", "input": "two.png", "prompts": [{"object": 7, "points": [[15, 18]]}]},
    ]
    items = items_from_specs(specs, base=tmp_path)
    out = tmp_path / "out"
    for item in items:
        outcome = run_item(item, out, worker)
        assert outcome.ok, outcome.error
    records = json.loads((out / "text" / "masks.json").read_text())["annotations"]
    assert [(r["name"], r["label"]) for r in records] == [("red_box_1", "red box"),
                                                         ("leaf_1", "leaf")]  # fmt: skip
    coco = COCO(str(write_coco(out, items, MODEL)))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    anns = coco.loadAnns(coco.getAnnIds())
    assert [names[a["category_id"]] for a in anns] == ["red box", "leaf", "object"]
    id_map = read_palette_png(out / "text" / "masks.png")
    for ann in anns[:2]:
        mask = coco.annToMask(ann).astype(bool)
        assert mask.any() and not mask.all()
        np.testing.assert_array_equal(mask, id_map == ann["object_id"])
