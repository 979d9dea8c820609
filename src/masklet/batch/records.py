"""What a batch folder remembers between runs: done records, failure records, the report.

Layout of `DIR`:

    DIR/<item id>/          an item's outputs and `done.json`, moved in whole when finished
    DIR/report.jsonl        this run's verdict on every item, in manifest order
    DIR/coco.json           the image items' masks as one COCO instances file
    DIR/.masklet-batch/     staging folders, failure records (not outputs)

An item is finished when `DIR/<id>/done.json` names the same manifest-line digest and model;
a rerun skips it. A changed line (or model) is redone. An item that failed keeps a failure
record and is skipped by a rerun unless `retry_failed`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from masklet.batch.manifest import BatchItem

STATE_DIR = ".masklet-batch"
DONE_FILE = "done.json"
REPORT_FILE = "report.jsonl"
Status = Literal["ok", "failed", "skipped", "failed-before", "not-run"]


@dataclass(frozen=True)
class ItemOutcome:
    """How one item ended: `error` is one line (None when it succeeded)."""

    item_id: str
    ok: bool
    error: str | None = None
    frames: int = 0
    seconds: float = 0.0
    attempts: int = 1


def staging_dir(out: Path, item_id: str) -> Path:
    """A fresh folder to build an item's outputs in (same file system as `out`)."""
    path = out / STATE_DIR / "staging" / f"{item_id}.{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    return path


def commit_item(out: Path, item_id: str, staged: Path) -> Path:
    """Move a finished item's folder to `out/<id>`, replacing an older one. The rename is the
    commit: `out/<id>` is either the old complete folder, absent, or the new complete one."""
    final = out / item_id
    trash = None
    if final.exists():
        trash = out / STATE_DIR / "trash" / f"{item_id}.{uuid.uuid4().hex[:12]}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.replace(final, trash)
    os.replace(staged, final)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    return final


def discard_item(out: Path, item_id: str) -> None:
    """Remove an item's stale outputs (its line changed and the new run failed)."""
    final = out / item_id
    if final.exists():
        trash = out / STATE_DIR / "trash" / f"{item_id}.{uuid.uuid4().hex[:12]}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.replace(final, trash)
        shutil.rmtree(trash, ignore_errors=True)


def clear_leftovers(out: Path) -> None:
    """Staging folders of an interrupted run (never under a final name) are deleted."""
    for name in ("staging", "trash"):
        shutil.rmtree(out / STATE_DIR / name, ignore_errors=True)


def done_record(item: BatchItem, model: str, *, frames: int, files: list[str]) -> dict[str, Any]:
    from masklet import __version__

    return {
        "id": item.item_id, "line": item.line, "digest": item.digest, "model": model,
        "masklet_version": __version__, "kind": item.kind, "input": str(item.spec["input"]),
        "frames": frames, "files": files,
    }  # fmt: skip


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temporary name beside `path`, then rename it."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_done(out: Path, item_id: str) -> dict[str, Any] | None:
    return _read(out / item_id / DONE_FILE)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def failure_path(out: Path, item_id: str) -> Path:
    return out / STATE_DIR / "failed" / f"{item_id}.json"


def record_failure(out: Path, item: BatchItem, model: str, error: str) -> None:
    path = failure_path(out, item.item_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"digest": item.digest, "model": model, "error": error})


def clear_failure(out: Path, item_id: str) -> None:
    failure_path(out, item_id).unlink(missing_ok=True)


def earlier_verdict(out: Path, item: BatchItem, model: str) -> tuple[Status, str | None] | None:
    """("skipped", None) if finished for this line and model, ("failed-before", error) if it
    failed for them, None if it must run."""
    done = read_done(out, item.item_id)
    if done and done.get("digest") == item.digest and done.get("model") == model:
        return "skipped", None
    failed = _read(failure_path(out, item.item_id))
    if failed and failed.get("digest") == item.digest and failed.get("model") == model:
        return "failed-before", str(failed.get("error"))
    return None


@dataclass(frozen=True)
class ReportLine:
    """An item's verdict in `report.jsonl`: its manifest line, status and how it ran (an item
    that did not run this time has an outcome with no attempts)."""

    item: BatchItem
    status: Status
    outcome: ItemOutcome

    def as_json(self) -> dict[str, Any]:
        o = self.outcome
        return {
            "id": self.item.item_id, "line": self.item.line, "input": str(self.item.spec["input"]),
            "status": self.status, "error": o.error, "frames": o.frames,
            "seconds": round(o.seconds, 3), "attempts": o.attempts,
        }  # fmt: skip


def write_report(out: Path, lines: list[ReportLine]) -> Path:
    """`out/report.jsonl`, replaced atomically: one JSON object per item."""
    path = out / REPORT_FILE
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line.as_json(), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def report_line(item: BatchItem, status: Status, outcome: ItemOutcome | None = None,
                error: str | None = None) -> ReportLine:  # fmt: skip
    """`outcome` for an item that ran; else `error` (an earlier failure's) if any."""
    if outcome is None:
        outcome = ItemOutcome(item.item_id, status == "skipped", error, attempts=0)
    return ReportLine(item, status, outcome)
