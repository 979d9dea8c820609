"""Sessions on disk, written as they change, so a restart (even after kill -9) finds them.

A session folder `<data_dir>/sessions/<id>/` holds:

- `upload.video`: the upload (written atomically before the session opens);
- `session.json`: id, owner, size; its modification time is the last access (for the TTL);
- `prompts.jsonl`: one line per change of the tracking state (a prompt, a clear, a removed
  object, a name), appended and fsynced before the request answers; a torn last line (a kill
  mid-write) is ignored;
- `masks/NNNNNN.json`: the latest masks of frame N (COCO RLE records as the API sends them),
  each written atomically when the frame's masks change (prompts and every propagated frame);
- `exports/`: the exported files, and `exports.json`: their download links (token, file name,
  creation time; the newest `MAX_EXPORT_LINKS`), rewritten atomically with each export.

On start, `sweep_data_dir` removes what no one can use (`.partial` outputs of interrupted
writes, uploads of requests that never finished, download folders whose links died with the
process, expired or unreadable sessions); the store then rebuilds each remaining session:
the prompts log is replayed on a fresh tracking state (so tracking can go on), the stored
masks are served as they are, and the export links answer again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from masklet.io.masks import decode_rle, encode_rle, write_json
from masklet.server.schemas import ObjectMask

log = logging.getLogger("masklet.server")

META_NAME = "session.json"
JOURNAL_NAME = "prompts.jsonl"
MASKS_DIR = "masks"
EXPORTS_DIR = "exports"
EXPORT_LINKS_NAME = "exports.json"
MAX_EXPORT_LINKS = 64  # per session: older links are forgotten (their file is the same)
PARTIAL_MARK = ".partial"  # masklet.io.atomic and the folder sinks stage under such names
UPLOAD_PREFIX = "upload-"  # masklet.server.uploads.scratch_file


def append_journal(directory: Path, entry: dict[str, Any]) -> None:
    """Append one change to the session's prompts log, durably."""
    line = json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n"
    with open(directory / JOURNAL_NAME, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_journal(directory: Path) -> list[dict[str, Any]]:
    """The logged changes in order; a torn or unreadable line ends the log."""
    path = directory / JOURNAL_NAME
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s: ignoring a torn line and what follows", path)
            break
        entries.append(entry)
    return entries


def write_frame_masks(directory: Path, frame: int, objects: list[ObjectMask]) -> None:
    write_json(mask_path(directory, frame), [o.model_dump(mode="json") for o in objects])


def mask_path(directory: Path, frame: int) -> Path:
    return directory / MASKS_DIR / f"{frame:06d}.json"


def read_frame_masks(directory: Path) -> dict[int, dict[int, ObjectMask]]:
    """frame -> object id -> record, from `masks/` (unreadable files are skipped)."""
    out: dict[int, dict[int, ObjectMask]] = {}
    folder = directory / MASKS_DIR
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        if not path.stem.isdigit():
            continue
        try:
            records = [ObjectMask.model_validate(r) for r in json.loads(path.read_text())]
        except (OSError, ValueError) as error:
            log.warning("%s: skipped (%s)", path, error)
            continue
        out[int(path.stem)] = {r.id: r for r in records}
    return out


def remember_export(directory: Path, token: str, name: str) -> list[str]:
    """Add an export's download link to the session's `exports.json` (atomically); returns
    the tokens of the links dropped to keep the newest `MAX_EXPORT_LINKS`."""
    entries = read_exports(directory)
    entries.append({"token": token, "name": name, "created_unix": time.time()})
    write_json(directory / EXPORT_LINKS_NAME, entries[-MAX_EXPORT_LINKS:])
    return [entry["token"] for entry in entries[:-MAX_EXPORT_LINKS]]


def read_exports(directory: Path) -> list[dict[str, Any]]:
    """The session's export links, oldest first (malformed entries skipped)."""
    try:
        data = json.loads((directory / EXPORT_LINKS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, list):
        return []
    return [
        entry for entry in data
        if isinstance(entry, dict) and isinstance(entry.get("token"), str)
        and isinstance(entry.get("name"), str) and isinstance(entry.get("created_unix"), float)
    ]  # fmt: skip


def replay(predictor: Any, video: Any, entries: list[dict[str, Any]]) -> None:
    """Re-apply logged changes to a fresh tracking state (a `VideoPredictor` and its
    `VideoSession`): the prompted frames are computed again, nothing else."""

    def array(value: Any) -> np.ndarray | None:
        return None if value is None else np.asarray(value, dtype=np.float64)

    for entry in entries:
        op = entry["op"]
        if op == "prompt":
            if entry.get("name"):
                predictor.set_object_name(video, entry["obj_id"], entry["name"])
            predictor.add_new_points_or_box(
                video, entry["frame"], entry["obj_id"], points=array(entry.get("points")),
                labels=array(entry.get("labels")), clear_old_points=entry["clear_old_points"],
                box=array(entry.get("box")),
            )  # fmt: skip
        elif op == "clear":
            predictor.clear_all_prompts_in_frame(
                video, entry["frame"], entry["obj_id"], need_output=False
            )
        elif op == "remove":
            predictor.remove_object(video, entry["obj_id"], need_output=False)
        elif op == "name":
            predictor.set_object_name(video, entry["obj_id"], entry["name"])
        elif op == "mask":
            if entry.get("name"):
                predictor.set_object_name(video, entry["obj_id"], entry["name"])
            predictor.add_new_mask(
                video, entry["frame"], entry["obj_id"], decode_rle(entry["mask"])
            )
        else:
            raise ValueError(f"unknown change {op!r} in the prompts log")


def prompt_entry(
    frame: int,
    obj_id: int,
    points: np.ndarray | None,
    labels: np.ndarray | None,
    box: np.ndarray | None,
    clear_old_points: bool = True,
    name: str = "",
) -> dict[str, Any]:
    """The log line of a prompt (arrays as lists)."""

    def listed(value: np.ndarray | None) -> Any:
        return None if value is None else np.asarray(value).tolist()

    return {
        "op": "prompt", "frame": frame, "obj_id": obj_id, "points": listed(points),
        "labels": listed(labels), "box": listed(box), "clear_old_points": clear_old_points,
        "name": name,
    }  # fmt: skip


def mask_entry(frame: int, obj_id: int, mask: np.ndarray, name: str = "") -> dict[str, Any]:
    """The log line of a mask prompt ([H, W] bool, kept as COCO RLE)."""
    return {
        "op": "mask", "frame": frame, "obj_id": obj_id, "mask": encode_rle(mask), "name": name
    }  # fmt: skip


# -- the start-up sweep -----------------------------------------------------------------------


def _partials(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            if name.startswith(".") and PARTIAL_MARK in name:
                yield Path(dirpath) / name


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def last_access_unix(directory: Path) -> float | None:
    try:
        return (directory / META_NAME).stat().st_mtime
    except OSError:
        return None


def sweep_data_dir(data_dir: Path, ttl_seconds: float) -> tuple[list[Path], dict[str, int]]:
    """Remove leftovers of a previous run; returns the session folders worth restoring and
    how many things of each kind were removed."""
    removed = {"partial": 0, "uploads": 0, "outputs": 0, "sessions": 0}
    for path in list(_partials(data_dir)):
        _remove(path)
        removed["partial"] += 1
    tmp = data_dir / "tmp"
    if tmp.is_dir():
        for path in tmp.glob(f"{UPLOAD_PREFIX}*"):
            _remove(path)
            removed["uploads"] += 1
    outputs = data_dir / "outputs"
    if outputs.is_dir():  # download links live in memory: none survives a restart
        for path in outputs.iterdir():
            _remove(path)
            removed["outputs"] += 1
    keep = []
    sessions = data_dir / "sessions"
    now = time.time()
    if sessions.is_dir():
        for directory in sorted(sessions.iterdir()):
            accessed = last_access_unix(directory)
            if not directory.is_dir() or accessed is None or now - accessed >= ttl_seconds:
                _remove(directory)
                removed["sessions"] += 1
            else:
                keep.append(directory)
    return keep, removed
