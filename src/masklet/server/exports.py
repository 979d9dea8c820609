"""Session exports: an overlay MP4, a zip of id-mask PNGs, or COCO RLE JSON.

Every export replays the masks the session recorded (prompts and propagation) through the
pipeline's output sinks (`masklet.pipelines.video.export_records`: the same files
`masklet video` writes), into the session's `exports/` folder, atomically. Frames without
masks are exported empty (overlay: the plain frame). People may pick each object's colour on
the page; the overlay uses those colours.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from masklet.io.atomic import atomic_output
from masklet.io.records import FrameRecord
from masklet.pipelines.control import NEVER, CancelToken
from masklet.pipelines.requests import VideoOutputs
from masklet.pipelines.video import export_records
from masklet.server.persist import EXPORTS_DIR, read_exports, remember_export
from masklet.server.sessions import UPLOAD_NAME, ServerSession

if TYPE_CHECKING:
    from masklet.server.context import FileStore

EXPORT_NAMES = {"mp4": "overlay.mp4", "png_zip": "id_masks.zip", "coco": "masks_coco.json"}


def export_session(
    session: ServerSession,
    fmt: str,
    colors: dict[int, tuple[int, int, int]] | None = None,
    alpha: float = 0.5,
    cancel: CancelToken = NEVER,
) -> Path:
    """Write the export `fmt` ("mp4", "png_zip" or "coco"); returns its path."""
    directory = session.directory / EXPORTS_DIR
    directory.mkdir(exist_ok=True)
    path = directory / EXPORT_NAMES[fmt]
    frames = _LockedFrames(session)
    if fmt == "mp4":
        outputs = VideoOutputs(overlay=path, overlay_alpha=alpha)
        export_records(_records(session, colors, every=True), outputs, frames, cancel=cancel)
    elif fmt == "png_zip":
        # a staging name the start-up sweep removes if the process dies in here
        with tempfile.TemporaryDirectory(dir=directory, prefix=".masks.", suffix=".partial") as tmp:
            folder = Path(tmp) / "masks"
            outputs = VideoOutputs(masks_dir=folder)
            export_records(_records(session, None, every=True), outputs, frames, cancel=cancel)
            with atomic_output(path) as out, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
                # PNG is compressed already: compressing it again in the zip gains nothing
                for png in sorted(folder.iterdir()):
                    zf.write(png, png.name)
    else:
        outputs = VideoOutputs(json=path)
        export_records(_records(session, None, every=False), outputs, frames, cancel=cancel)
    return path


def publish_export(files: FileStore, session: ServerSession, path: Path) -> str:
    """A download link for an export, kept in the session's folder so that it answers after
    a restart (call with the session's lock held: the links file is rewritten)."""
    token = files.new_token()
    link = files.register(path, token=token)
    for dropped in remember_export(session.directory, token, path.name):
        files.forget(dropped)
    return link


def restore_export_links(files: FileStore, session: ServerSession) -> int:
    """Register again the export links of a restored session (those whose file is there);
    returns how many."""
    now, restored = time.time(), 0
    for entry in read_exports(session.directory):
        path = session.directory / EXPORTS_DIR / entry["name"]
        if entry["name"] in EXPORT_NAMES.values() and path.is_file():
            age = max(0.0, now - entry["created_unix"])
            files.register(path, token=entry["token"], age_seconds=age)
            restored += 1
    return restored


def _records(
    session: ServerSession, colors: dict[int, tuple[int, int, int]] | None, every: bool
) -> Iterator[FrameRecord]:
    """The recorded frames in order (every frame when `every`, else those with results)."""
    indices = range(session.num_frames) if every else sorted(session.masks)
    for index in indices:
        record = session.stored_record(index)
        if colors:
            objects = tuple(
                dataclasses.replace(o, color=colors.get(o.obj_id, o.color)) for o in record.objects
            )
            record = dataclasses.replace(record, objects=objects)
        yield record


class _LockedFrames:
    """The session's display decoder, shared with the page's frame requests: each read holds
    its lock."""

    def __init__(self, session: ServerSession) -> None:
        self._session = session
        frames = session.frames
        self.width, self.height = frames.width, frames.height
        self.fps = frames.fps
        self.num_frames = frames.num_frames
        self.path = session.directory / UPLOAD_NAME  # the overlay keeps the upload's audio

    def get(self, frame_idx: int):  # type: ignore[no-untyped-def]
        with self._session.frames_lock:
            return self._session.frames.get(frame_idx)  # [H, W, 3] uint8

    def frame_time(self, frame_idx: int) -> float:
        """The upload's own presentation time (reads the frame table only: no lock)."""
        return self._session.frames.frame_time(frame_idx)
