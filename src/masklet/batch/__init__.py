"""Batch work: many images and videos in one run, each item one pipeline request.

    from masklet.batch import LocalExecutor, run
    summary = run("items.jsonl", "out/", model="sam2.1_hiera_tiny",
                  executor=LocalExecutor(workers=2))

Items are JSON Lines manifest lines (`docs/batch-manifest.schema.json`); outputs go to
`out/<item id>/`, finished items are skipped by a rerun, failures are isolated and listed in
`out/report.jsonl`, and the image items' masks form one COCO file `out/coco.json`. The Ray
executor (`masklet.batch.ray.RayExecutor`, `pip install 'masklet[ray]'`) runs the same items
on a pool of Ray actors.
"""

from masklet.batch.item import WorkerSpec, run_item
from masklet.batch.local import LocalExecutor
from masklet.batch.manifest import BatchItem, ManifestError, items_from_specs, read_manifest
from masklet.batch.runner import BatchSummary, run

__all__ = [
    "BatchItem",
    "BatchSummary",
    "LocalExecutor",
    "ManifestError",
    "WorkerSpec",
    "items_from_specs",
    "read_manifest",
    "run",
    "run_item",
]
