"""The Ray executor on a real local Ray (`ray.init(num_cpus=2)`, one session for the module):
the same 24 items give exactly the two failures and outputs byte-identical to the single-item
CLI runs; an actor killed with `ray.kill` mid-item has its item retried on a new actor."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from masklet.batch import run
from masklet.batch.executor import Event, FramesDone, ItemFinished, ItemStarted
from masklet.batch.records import STATE_DIR
from masklet.io.masks import read_palette_png
from tests.batch.conftest import (
    EVERYTHING,
    EVERYTHING_VIDEO,
    FAILING,
    MODEL,
    Dataset,
    EverythingInputs,
    assert_everything_matches_cli,
    assert_matches_cli,
)
from tests.media import write_square_clip

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_same_failures_and_outputs_as_the_cli(
    local_ray: Any, dataset: Dataset, tmp_path: Path
) -> None:
    from masklet.batch.ray import RayExecutor

    out = tmp_path / "out"
    summary = run(dataset.manifest, out, model=MODEL, executor=RayExecutor(workers=2),
                  progress=False)  # fmt: skip
    assert (summary.total, summary.ok, summary.failed) == (24, 22, 2)
    failed = {line.split('"id": "')[1].split('"')[0]
              for line in (out / "report.jsonl").read_text().splitlines()
              if '"status": "failed"' in line}  # fmt: skip
    assert failed == set(FAILING)
    assert_matches_cli(out, dataset)
    assert local_ray.is_initialized()  # the executor leaves a Ray it did not start running


def test_everything_items_equal_the_cli_on_ray(
    local_ray: Any, everything_inputs: EverythingInputs, tmp_path: Path
) -> None:
    from masklet.batch.ray import RayExecutor

    folder = everything_inputs.folder
    items = [{"input": str(folder / "shapes.png"), "everything": EVERYTHING},
             {"input": str(folder / "demo.mp4"), "everything": EVERYTHING_VIDEO}]  # fmt: skip
    summary = run(items, tmp_path / "out", model=MODEL, executor=RayExecutor(workers=2),
                  progress=False)  # fmt: skip
    assert (summary.ok, summary.frames) == (2, 1 + 8)
    assert_everything_matches_cli(tmp_path / "out", everything_inputs)


def video_then_image(tmp_path: Path, report_every: float) -> tuple[list[Event], list[int]]:
    """One actor, a 12-frame video and an image queued behind it: the events and the video's
    frame counts as they reached the driver."""
    from masklet.batch.ray import RayExecutor

    write_square_clip(tmp_path / "clip.mp4", 12, (64, 48), 24)
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(tmp_path / "image.png")
    items = [{"input": str(tmp_path / "clip.mp4"), "click_coordinates": "[20,20]"},
             {"input": str(tmp_path / "image.png"), "click_coordinates": "[20,20]"}]  # fmt: skip
    events: list[Event] = []
    executor = RayExecutor(workers=1, report_every=report_every)
    summary = run(items, tmp_path / "out", model=MODEL, executor=executor,
                  on_event=events.append, progress=False)  # fmt: skip
    video_frames = [e.frames for e in events if isinstance(e, FramesDone) and e.item_id == "clip"]
    assert (summary.ok, summary.frames) == (2, 12 + 1) and sum(video_frames) == 12
    kinds = [(type(e).__name__, e.outcome.item_id if isinstance(e, ItemFinished) else e.item_id)
             for e in events]  # fmt: skip
    first_image = kinds.index(("ItemStarted", "image"))
    assert kinds[0] == ("ItemStarted", "clip") and kinds[first_image - 1] == (
        "ItemFinished",
        "clip",
    )
    assert set(kinds[1 : first_image - 1]) == {("FramesDone", "clip")}
    assert kinds[first_image:][-1][0] == "ItemFinished"
    return events, video_frames


def test_a_video_reports_each_frame_as_it_finishes(local_ray: Any, tmp_path: Path) -> None:
    """With `report_every=0` the video's frames arrive one by one before it finishes (as from
    local workers), then the image starts."""
    _, video_frames = video_then_image(tmp_path, report_every=0.0)
    assert len(video_frames) >= 6, video_frames  # per frame (two at most summed when busy)


def test_a_video_reports_its_frames_every_interval(local_ray: Any, tmp_path: Path) -> None:
    """By default a video's frames are summed over `REPORT_EVERY` seconds (a report per frame
    cost ~9% of a small video's time): fewer reports than frames, every frame counted, all
    before the video's outcome."""
    from masklet.batch.ray import REPORT_EVERY

    assert REPORT_EVERY > 0
    _, video_frames = video_then_image(tmp_path, report_every=10.0)
    assert video_frames == [12], video_frames  # one interval covers the whole clip


def test_a_killed_actor_has_its_item_retried(local_ray: Any, tmp_path: Path) -> None:
    from masklet.batch.ray import RayExecutor

    write_square_clip(tmp_path / "long.mp4", 24, (64, 48), 24)
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(tmp_path / "image.png")
    # the image waits on the same actor (2 in flight): it goes back to the queue, not retried
    items = [{"input": str(tmp_path / "long.mp4"), "click_coordinates": "[20,20]"},
             {"input": str(tmp_path / "image.png"), "click_coordinates": "[20,20]"}]  # fmt: skip
    killed: list[Any] = []
    finished: list[Any] = []

    staging = tmp_path / "out" / STATE_DIR / "staging"

    def kill_first_actor(event: Event) -> None:
        if isinstance(event, ItemStarted) and not killed:
            deadline = time.monotonic() + 120
            while not list(staging.glob("long.*")) and time.monotonic() < deadline:
                time.sleep(0.01)  # until the actor has begun the item (its staging folder)
            killed.append(event.worker)
            local_ray.kill(event.worker)
        if isinstance(event, ItemFinished):
            finished.append(event.outcome)

    summary = run(items, tmp_path / "out", model=MODEL, executor=RayExecutor(workers=1),
                  max_retries=1, on_event=kill_first_actor, progress=False)  # fmt: skip
    assert killed and summary.ok == 2
    assert [(o.item_id, o.ok, o.attempts) for o in finished] == [("long", True, 2),
                                                                 ("image", True, 1)]  # fmt: skip
    assert not staging.exists()  # the killed try's folder is gone
    masks = sorted((tmp_path / "out" / "long" / "masks").iterdir())
    assert len(masks) == 24
    ids = np.stack([read_palette_png(p) for p in masks])
    assert 0 < (ids == 1).mean() < 1


def test_a_model_no_actor_can_load_stops_the_batch(
    local_ray: Any, dataset: Dataset, tmp_path: Path
) -> None:
    from masklet.batch.ray import RayExecutor
    from masklet.errors import MaskletError

    with pytest.raises(MaskletError, match="could not load the model: .*missing.pt"):
        run(dataset.manifest, tmp_path / "out", model=str(tmp_path / "missing.pt"),
            executor=RayExecutor(workers=2), progress=False)  # fmt: skip
    assert {p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")} == {
        "report.jsonl"
    }
