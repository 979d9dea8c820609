"""Session exports: an overlay MP4, a zip of id-mask PNGs, or COCO RLE JSON.

Every export reads the masks the session recorded (prompts and propagation) and writes one
file atomically into the session's `exports/` folder; frames without masks are exported
empty (overlay: the plain frame). The id PNGs and the COCO JSON come from `masklet.io.sinks`
(the same files `masklet video` writes); the overlay is drawn here because the web page lets
people pick each object's colour.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from masklet.io.atomic import atomic_output
from masklet.io.overlay import draw_overlay
from masklet.io.sinks import CocoJsonSink, IdPngSink
from masklet.io.video import SOURCE_TIME_BASE, VideoWriter
from masklet.server.sessions import UPLOAD_NAME, ServerSession
from masklet.video.results import FrameResult

EXPORT_NAMES = {"mp4": "overlay.mp4", "png_zip": "id_masks.zip", "coco": "masks_coco.json"}
Check = Callable[[], None]  # raises to stop (a cancelled job)
PROB_EPS = 1e-4  # keeps recorded probabilities of 0 / 1 finite as logits


def export_session(
    session: ServerSession,
    fmt: str,
    colors: dict[int, tuple[int, int, int]] | None = None,
    alpha: float = 0.5,
    check: Check = lambda: None,
) -> Path:
    """Write the export `fmt` ("mp4", "png_zip" or "coco"); returns its path."""
    directory = session.directory / "exports"
    directory.mkdir(exist_ok=True)
    path = directory / EXPORT_NAMES[fmt]
    if fmt == "mp4":
        _overlay_video(session, path, colors, alpha, check)
    elif fmt == "png_zip":
        _id_png_zip(session, path, check)
    else:
        _coco_json(session, path, check)
    return path


def _frame(session: ServerSession, index: int) -> np.ndarray:
    with session.frames_lock:
        return session.frames.get(index)  # [H, W, 3] uint8


def _overlay_video(
    session: ServerSession,
    path: Path,
    colors: dict[int, tuple[int, int, int]] | None,
    alpha: float,
    check: Check,
) -> None:
    size = (session.frames.width, session.frames.height)
    audio = session.directory / UPLOAD_NAME
    with VideoWriter(
        path, fps=session.frames.fps, size=size, audio_from=audio, time_base=SOURCE_TIME_BASE
    ) as writer:
        for index in range(session.num_frames):
            check()
            masks = session.frame_masks(index)
            frame = _frame(session, index)
            image = draw_overlay(frame, masks, alpha=alpha, colors=colors) if masks else frame
            writer.write(image, time=session.frames.frame_time(index))


def stored_result(session: ServerSession, index: int) -> FrameResult:
    """A frame's recorded masks as a `FrameResult` for the io sinks (logits +-1, visibility
    logits from the recorded scores)."""
    records = session.masks.get(index, {})
    ids = sorted(records)
    h, w = session.frames.height, session.frames.width
    masks = session.frame_masks(index)
    logits = torch.full((len(ids), 1, h, w), -1.0)  # [N, 1, H, W]
    for k, obj_id in enumerate(ids):
        logits[k, 0][torch.from_numpy(masks[obj_id])] = 1.0
    probs = [min(max(records[i].score or 0.5, PROB_EPS), 1 - PROB_EPS) for i in ids]
    scores = torch.logit(torch.tensor(probs, dtype=torch.float32)).reshape(-1, 1)  # [N, 1]
    return FrameResult(index, ids, logits, scores, dict(session.video.names))


def _id_png_zip(session: ServerSession, path: Path, check: Check) -> None:
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        folder = Path(tmp) / "masks"
        with IdPngSink(folder, palette=False) as sink:
            for index in range(session.num_frames):
                check()
                sink.write(stored_result(session, index))
        with atomic_output(path) as out, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            # PNG is compressed already: compressing it again in the zip gains nothing
            for png in sorted(folder.iterdir()):
                archive.write(png, png.name)


def _coco_json(session: ServerSession, path: Path, check: Check) -> None:
    with CocoJsonSink(path, session.frames) as sink:
        for index in sorted(session.masks):
            check()
            sink.write(stored_result(session, index))
