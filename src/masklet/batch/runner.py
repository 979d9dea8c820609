"""`masklet.batch.run`: plan (skip what is finished), run the rest on an executor, record every
outcome, write the report and the COCO export, summarise."""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masklet.batch.coco import write_coco
from masklet.batch.executor import Event, EventFn, Executor, FramesDone, ItemFinished, Job
from masklet.batch.item import WorkerSpec
from masklet.batch.manifest import BatchItem, items_from_specs, read_manifest
from masklet.batch.records import (
    ReportLine,
    clear_failure,
    clear_leftovers,
    discard_item,
    earlier_verdict,
    record_failure,
    report_line,
    write_report,
)

DEFAULT_MAX_RETRIES = 2


@dataclass(frozen=True)
class BatchSummary:
    """What a run did. `ran` items were attempted (`ok` + `failed`); `skipped` were finished
    before; `failed_before` failed before and were not retried; `not_run` were interrupted."""

    total: int
    ran: int
    ok: int
    failed: int
    skipped: int
    failed_before: int
    not_run: int
    frames: int
    seconds: float
    report: Path
    coco: Path | None

    @property
    def items_per_second(self) -> float:
        return self.ran / self.seconds if self.seconds > 0 else 0.0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def all_ok(self) -> bool:
        return self.failed == 0 and self.failed_before == 0 and self.not_run == 0


def as_items(items: str | Path | Iterable[BatchItem | Mapping[str, Any]]) -> list[BatchItem]:
    """A manifest path, checked items, or line objects (relative paths from the cwd)."""
    if isinstance(items, (str, Path)):
        return read_manifest(items)
    listed = list(items)
    if all(isinstance(i, BatchItem) for i in listed):
        return listed  # type: ignore[return-value]
    return items_from_specs([dict(i) for i in listed])  # type: ignore[arg-type]


def run(
    items: str | Path | Iterable[BatchItem | Mapping[str, Any]],
    out: str | Path,
    *,
    model: str,
    executor: Executor | None = None,
    device: str | None = None,
    backend: str | None = None,
    detector: str | None = None,
    precision: str | None = None,
    retry_failed: bool = False,
    max_retries: int = DEFAULT_MAX_RETRIES,
    progress: bool | None = None,
    on_event: EventFn | None = None,
) -> BatchSummary:
    """Run every item not finished before into `out/<item id>/`.

    items: a JSON Lines manifest path, `BatchItem`s, or manifest line objects.
    model: a registry name, checkpoint path or ONNX export folder; each worker loads it once
        (with `backend`, see `load_model`).
    precision: fp32, bf16, fp16 or auto (`masklet.precision`; None: fp32).
    executor: `LocalExecutor(workers=N)` (default, one worker) or `RayExecutor(...)`.
    progress: a bar on stderr (None: only on a terminal).
    on_event: called with every executor event (tests use it to kill a worker mid-item).
    On Ctrl-C the report is written (unfinished items "not-run") and KeyboardInterrupt raised.
    """
    from tqdm import tqdm

    from masklet.batch.local import LocalExecutor

    checked = as_items(items)
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    clear_leftovers(out)
    executor = executor or LocalExecutor()
    spec = WorkerSpec(
        model=model, device=device, backend=backend, detector=detector, precision=precision
    )
    lines: dict[str, ReportLine] = {}
    to_run: list[BatchItem] = []
    for item in checked:
        verdict = earlier_verdict(out, item, spec.run_key)
        if verdict is None or (retry_failed and verdict[0] == "failed-before"):
            to_run.append(item)
        else:
            lines[item.item_id] = report_line(item, verdict[0], error=verdict[1])
    by_id = {item.item_id: item for item in to_run}
    frames = 0
    started = time.perf_counter()
    bar = tqdm(total=len(to_run), unit="item", desc="batch", file=sys.stderr,
               disable=None if progress is None else not progress, dynamic_ncols=True)  # fmt: skip

    def handle(event: Event) -> None:
        nonlocal frames
        if on_event is not None:
            on_event(event)
        if isinstance(event, FramesDone):
            frames += event.frames
            bar.set_postfix(frames=frames, refresh=False)
        elif isinstance(event, ItemFinished):
            outcome, item = event.outcome, by_id[event.outcome.item_id]
            if outcome.ok:
                clear_failure(out, item.item_id)
                lines[item.item_id] = report_line(item, "ok", outcome)
            else:
                record_failure(out, item, spec.run_key, outcome.error or "failed")
                discard_item(out, item.item_id)  # outputs of an older line are not current
                lines[item.item_id] = report_line(item, "failed", outcome)
            bar.update(1)

    try:
        if to_run:
            executor.run(Job(deque(to_run), out, spec, handle, max_retries))
    finally:
        bar.close()
        clear_leftovers(out)  # staging of items whose worker died (the workers are stopped)
        seconds = time.perf_counter() - started
        report = write_report(
            out, [lines.get(i.item_id) or report_line(i, "not-run") for i in checked]
        )
        coco = write_coco(out, checked, model)
    counts = {s: sum(1 for line in lines.values() if line.status == s) for s in
              ("ok", "failed", "skipped", "failed-before")}  # fmt: skip
    return BatchSummary(
        total=len(checked), ran=counts["ok"] + counts["failed"], ok=counts["ok"],
        failed=counts["failed"], skipped=counts["skipped"], failed_before=counts["failed-before"],
        not_run=len(checked) - len(lines), frames=frames, seconds=seconds, report=report,
        coco=coco,
    )  # fmt: skip
