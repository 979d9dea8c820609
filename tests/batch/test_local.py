"""The local executor on 20 generated images and 4 videos: exactly the corrupt file and the
outside click fail, every other item equals its single-item CLI run byte for byte, the COCO
export loads with pycocotools and holds the same masks, reruns skip what is finished, a killed
worker's item is retried, and an interrupted run resumes to the same outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from masklet.batch import LocalExecutor, read_manifest, run
from masklet.batch.executor import Event, FramesDone, ItemFinished
from masklet.batch.records import DONE_FILE, STATE_DIR
from masklet.io.masks import read_palette_png
from tests.batch.conftest import FAILING, MODEL, Dataset, assert_matches_cli, output_files
from tests.media import write_square_clip


@pytest.fixture(scope="module")
def full_run(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("local") / "out"
    summary = run(dataset.manifest, out, model=MODEL,
                  executor=LocalExecutor(workers=2, threads=1), progress=False)  # fmt: skip
    return out, summary


def report(out: Path) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    return {line["id"]: line for line in lines}


def test_only_the_two_bad_items_fail_and_the_rest_equal_the_cli(
    full_run: tuple[Path, Any], dataset: Dataset
) -> None:
    out, summary = full_run
    assert (summary.total, summary.ok, summary.failed) == (24, 22, 2)
    assert summary.frames == 18 + sum(
        len(list((dataset.expected / i / "masks").iterdir())) for i in dataset.good if "clip" in i
    )
    lines = report(out)
    assert list(lines) == dataset.ids  # manifest order
    failed = {i: line["error"] for i, line in lines.items() if line["status"] == "failed"}
    assert set(failed) == set(FAILING)
    for item_id, error_type in FAILING.items():
        assert failed[item_id].startswith(error_type) and "\n" not in failed[item_id]
        assert not (out / item_id).exists()
    assert "outside" in failed["outside"] and "prompts[0].points[0]" in failed["outside"]
    assert_matches_cli(out, dataset)


def test_coco_export_loads_and_holds_the_per_item_masks(
    full_run: tuple[Path, Any], dataset: Dataset
) -> None:
    out, summary = full_run
    assert summary.coco == out / "coco.json"
    coco = COCO(str(summary.coco))
    images = coco.loadImgs(coco.getImgIds())
    assert [im["item_id"] for im in images] == [i for i in dataset.good if i.startswith("img")]
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"square", "ground", "object"}
    checked, nonempty = 0, 0
    for image in images:
        id_map = read_palette_png(out / image["item_id"] / "masks.png")
        per_item = json.loads((out / image["item_id"] / "masks.json").read_text())
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        assert [a["score"] for a in anns] == [r["score"] for r in per_item["annotations"]]
        for ann in anns:
            mask = coco.annToMask(ann).astype(bool)
            assert not mask.all()
            np.testing.assert_array_equal(mask, id_map == ann["object_id"])
            checked, nonempty = checked + 1, nonempty + int(mask.any())
    assert checked == 18 + 3  # three images have two objects
    assert nonempty >= 15  # an object may lose every pixel to a higher-scoring one


def test_rerun_skips_finished_items_and_redoes_changed_and_retried_ones(
    full_run: tuple[Path, Any], dataset: Dataset, tmp_path: Path
) -> None:
    out, _ = full_run
    before = {i: output_files(out / i) for i in dataset.good}
    again = run(dataset.manifest, out, model=MODEL, executor=LocalExecutor(workers=2, threads=1),
                progress=False)  # fmt: skip
    assert (again.skipped, again.failed_before, again.ran) == (22, 2, 0)
    assert {i for i, line in report(out).items() if line["status"] == "failed-before"} == set(
        FAILING
    )
    # one line changed (the click moved): only it and the two retried failures run
    lines = [dict(line) for line in dataset.lines]
    changed = next(line for line in lines if line["id"] == "img00")
    changed["prompts"] = [{"object": "square", "points": [[1, 1]]}]
    manifest = dataset.root / "changed.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    third = run(read_manifest(manifest), out, model=MODEL, retry_failed=True,
                executor=LocalExecutor(workers=2, threads=1), progress=False)  # fmt: skip
    assert (third.ran, third.ok, third.failed, third.skipped) == (3, 1, 2, 21)
    assert output_files(out / "img00")["masks.png"] != before["img00"]["masks.png"]
    assert all(output_files(out / i) == before[i] for i in dataset.good if i != "img00")
    # restore the original line for the other tests of this module
    restored = run(dataset.manifest, out, model=MODEL, executor=LocalExecutor(threads=1),
                   progress=False)  # fmt: skip
    assert (restored.ran, restored.ok) == (1, 1)
    assert output_files(out / "img00") == before["img00"]


def test_a_killed_worker_has_its_item_retried(tmp_path: Path) -> None:
    write_square_clip(tmp_path / "long.mp4", 24, (64, 48), 24)
    items = [{"input": str(tmp_path / "long.mp4"), "click_coordinates": "[20,20]"}]
    killed: list[int] = []
    finished: list[Any] = []

    def kill_mid_item(event: Event) -> None:
        if isinstance(event, FramesDone) and not killed and event.frames:
            killed.append(event.worker)
            os.kill(event.worker, signal.SIGKILL)  # a frame done, the rest to go
        if isinstance(event, ItemFinished):
            finished.append(event.outcome)

    summary = run(items, tmp_path / "out", model=MODEL, executor=LocalExecutor(threads=1),
                  max_retries=1, on_event=kill_mid_item, progress=False)  # fmt: skip
    assert killed and summary.ok == 1 and summary.failed == 0
    assert [(o.ok, o.attempts) for o in finished] == [(True, 2)]
    assert not (tmp_path / "out" / STATE_DIR / "staging").exists()  # the killed try's folder
    masks = sorted((tmp_path / "out" / "long" / "masks").iterdir())
    assert len(masks) == 24
    ids = np.stack([read_palette_png(p) for p in masks])
    assert 0 < (ids == 1).mean() < 1


def test_interrupted_run_resumes_to_the_uninterrupted_outputs(
    full_run: tuple[Path, Any], dataset: Dataset, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "masklet.cli.main", "batch", str(dataset.manifest), "--out",
            str(out), "--model", MODEL, "--workers", "1", "--threads", "1"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(out.glob(f"*/{DONE_FILE}"))) >= 3:
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.02)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    finished = {p.parent.name for p in out.glob(f"*/{DONE_FILE}")}
    assert 3 <= len(finished) < len(dataset.good)
    # nothing half-written under a final name: every item folder is complete
    final = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert {p.name for p in final if p.is_dir()} == finished
    assert not [p for p in out.rglob("*.tmp") if STATE_DIR not in p.parts]
    for item_id in finished:
        done = json.loads((out / item_id / DONE_FILE).read_text())
        assert sorted(done["files"]) == sorted(p.name for p in (out / item_id).iterdir()
                                               if p.name != DONE_FILE)  # fmt: skip
    assert "not-run" in {line["status"] for line in report(out).values()}

    resumed = run(dataset.manifest, out, model=MODEL, executor=LocalExecutor(threads=1),
                  progress=False)  # fmt: skip
    assert resumed.skipped == len(finished)
    assert resumed.ran + resumed.skipped + resumed.failed_before == 24
    uninterrupted, _ = full_run
    for item_id in dataset.good:
        assert output_files(out / item_id) == output_files(uninterrupted / item_id), item_id
    assert (out / "coco.json").read_bytes() == (uninterrupted / "coco.json").read_bytes()


def test_a_model_no_worker_can_load_stops_the_batch_with_exit_2(
    dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from masklet.cli.main import main

    argv = ["batch", str(dataset.manifest), "--out", str(tmp_path / "out"), "--checkpoint",
            str(tmp_path / "missing.pt"), "--threads", "1"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "a worker could not start" in err and "missing.pt" in err
    assert not [p for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")] or {
        p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")
    } == {"report.jsonl"}


def test_a_rerun_in_another_precision_redoes_the_items(tmp_path: Path) -> None:
    """Done records name the model with its precision: bf16 results are not fp32 results."""
    image = tmp_path / "square.png"
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[10:30, 15:40] = 255
    Image.fromarray(pixels).save(image)
    items = [{"input": str(image), "click_coordinates": "[25,20]"}]
    out = tmp_path / "out"

    def again(precision: str | None) -> Any:
        return run(items, out, model=MODEL, executor=LocalExecutor(threads=1),
                   precision=precision, progress=False)  # fmt: skip

    assert again(None).ran == 1
    assert again("fp32").skipped == 1  # fp32 is the default: the same results
    bf16 = again("bf16")
    assert (bf16.ran, bf16.skipped, bf16.ok) == (1, 0, 1)
    done = json.loads((out / "square" / DONE_FILE).read_text())
    assert done["model"] == f"{MODEL} [precision bf16]"
    assert again("bf16").skipped == 1
