"""One COCO instances file for a batch's image items (`DIR/coco.json`).

Built from each finished image item's `masks.json` (the file `masklet image --json` writes),
so its masks are exactly the per-item outputs. Images are numbered from 1 in manifest order,
annotations from 1; an object's category is its text phrase (`label`) when a text prompt found
it, else its name, with automatic names in one category each: "object" (`object_3`) and
"region" (segment-everything's `region_2`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from masklet.batch.manifest import BatchItem
from masklet.batch.records import read_done, write_json_atomic

COCO_FILE = "coco.json"
# automatic names: prompted objects without a name (`object_3`), segment-everything regions
# (`region_2`); each kind is one category, "object" or "region"
AUTO_NAME_PATTERN = re.compile(r"(object|region)_\d+")
AUTO_CATEGORY = "object"


def category_of(record: dict[str, Any]) -> str:
    if record.get("label"):
        return str(record["label"])
    name = str(record.get("name") or AUTO_CATEGORY)
    automatic = AUTO_NAME_PATTERN.fullmatch(name)
    return automatic.group(1) if automatic else name


def coco_dataset(out: Path, items: Sequence[BatchItem], model: str) -> dict[str, Any] | None:
    """The COCO dict of the finished image items that wrote `masks.json` (None if none did)."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    categories: dict[str, int] = {}
    for item in items:
        done = read_done(out, item.item_id)
        if item.kind != "image" or done is None or "masks.json" not in done.get("files", []):
            continue
        if done.get("digest") != item.digest or done.get("model") != model:
            continue  # outputs of an older line or model
        data = json.loads((out / item.item_id / "masks.json").read_text(encoding="utf-8"))
        image_id = len(images) + 1
        size = data["image"]
        images.append({
            "id": image_id, "file_name": str(item.spec["input"]), "height": size["height"],
            "width": size["width"], "item_id": item.item_id,
        })  # fmt: skip
        for record in data["annotations"]:
            category = categories.setdefault(category_of(record), len(categories) + 1)
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                "segmentation": record["segmentation"], "area": record["area"],
                "bbox": record["bbox"], "iscrowd": 0, "score": record["score"],
                "object_id": record["id"], "object_name": record["name"],
            })  # fmt: skip
    if not images:
        return None
    return {
        "info": {"description": "masklet batch", "model": model},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n, "supercategory": ""} for n, i in categories.items()],
    }


def write_coco(out: Path, items: Sequence[BatchItem], model: str) -> Path | None:
    """Write `out/coco.json` atomically; None (and no file) without finished image items."""
    dataset = coco_dataset(out, items, model)
    if dataset is None:
        return None
    write_json_atomic(out / COCO_FILE, dataset)
    return out / COCO_FILE
