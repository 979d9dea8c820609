"""Video sessions: an uploaded video, its tracking state and its masks, owned by one API key.

Each session lives in its own folder `<data_dir>/sessions/<id>/` (the upload, `session.json`,
the prompts log, each frame's masks, exports: `masklet.server.persist`, written as they change,
so a restarted server rebuilds the session), with an unguessable id from
`secrets.token_urlsafe`. Nothing the client sends ever
becomes part of a path. Sessions that stay idle longer than the TTL are deleted with their
files, by a background sweep and on access. A per-session lock serialises model work; the
frames shown in the UI come from a second decoder with its own lock, so scrubbing stays
responsive while a propagation runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masklet.errors import BusyError, SessionNotFoundError
from masklet.io.masks import decode_rle, write_json
from masklet.io.records import FrameRecord, frame_record
from masklet.pipelines.limits import Limits
from masklet.server.jobs import Job
from masklet.server.persist import (
    META_NAME,
    append_journal,
    read_frame_masks,
    read_journal,
    write_frame_masks,
)
from masklet.server.schemas import ObjectMask, api_objects
from masklet.video.frames import FrameSource, VideoFileSource
from masklet.video.session import VideoSession

SESSION_ID_BYTES = 24  # 192 random bits: ids cannot be guessed or enumerated
UPLOAD_NAME = "upload.video"  # fixed: the client's file name never touches the filesystem
log = logging.getLogger("masklet.server")
ACCESS_WRITE_SECONDS = 5.0  # the last access on disk (for the TTL after a restart) lags this
ANONYMOUS = "anonymous"  # owner of every session when no API key is configured
LOCK_WAIT_SECONDS = 30.0  # longest a request waits for another request on the same session


def owner_of(api_key: str | None) -> str:
    """A stable, non-reversible owner id for an API key (keys are never stored)."""
    if not api_key:
        return ANONYMOUS
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


@dataclass
class ServerSession:
    """One open video session.

    masks: frame -> object id -> mask record, the latest result of every frame (prompts and
        propagation), kept as compact RLE for the UI and for exports.
    """

    id: str
    owner: str
    directory: Path
    video: VideoSession
    frames: FrameSource
    created: float
    last_access: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    frames_lock: threading.Lock = field(default_factory=threading.Lock)
    masks: dict[int, dict[int, ObjectMask]] = field(default_factory=dict)
    job: Job | None = None
    _access_written: float = 0.0

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def frame_time(self, frame_idx: int) -> float | None:
        """When frame `frame_idx` is presented, seconds (None outside the video)."""
        return self.frames.frame_time(frame_idx) if 0 <= frame_idx < self.num_frames else None

    def touch(self) -> None:
        self.last_access = time.monotonic()
        if self.last_access - self._access_written >= ACCESS_WRITE_SECONDS:
            self._access_written = self.last_access
            try:  # session.json's modification time is the last access after a restart
                os.utime(self.directory / META_NAME)
            except OSError:
                pass  # deleted meanwhile

    def store(self, record: FrameRecord) -> list[ObjectMask]:
        """Keep a frame's records (the newest result of the frame), on disk too; returns
        them as sent."""
        objects = api_objects(record)
        self.masks[record.frame_idx] = {r.id: r for r in objects}
        write_frame_masks(self.directory, record.frame_idx, objects)
        return objects

    def journal(self, entry: dict[str, Any]) -> None:
        """Log a change of the tracking state (replayed after a restart)."""
        append_journal(self.directory, entry)

    def forget_object(self, obj_id: int) -> None:
        for frame, records in self.masks.items():
            if records.pop(obj_id, None) is not None:
                write_frame_masks(self.directory, frame, [records[i] for i in sorted(records)])

    def stored_record(self, frame_idx: int) -> FrameRecord:
        """A frame's kept masks as plain records (no objects where nothing was computed)."""
        kept = self.masks.get(frame_idx, {})
        masks = {i: decode_rle(r.mask.model_dump()) for i, r in kept.items()}
        scores = {i: r.score for i, r in kept.items() if r.score is not None}
        names = {i: r.name or f"object_{i}" for i, r in kept.items()}
        shape = (self.frames.height, self.frames.width)
        time = self.frame_time(frame_idx)
        return frame_record(frame_idx, shape, masks, scores or None, names, time=time)

    def store_logits(self, frame_idx: int, obj_ids: list[int], logits: Any) -> list[ObjectMask]:
        """Keep a prompted frame's masks from `[N, 1, H, W]` logits (no visibility scores on a
        prompt's answer: overlaps go to the larger id); returns the records."""
        binary = (logits[:, 0] > 0).cpu().numpy()  # [N, 1, H, W] -> [N, H, W]
        masks = {obj_id: binary[i] for i, obj_id in enumerate(obj_ids)}
        shape = (self.frames.height, self.frames.width)
        return self.store(frame_record(frame_idx, shape, masks, None, self.video.names))

    def acquire(self, timeout: float = LOCK_WAIT_SECONDS) -> None:
        if not self.lock.acquire(timeout=timeout):
            raise BusyError(
                f"session {self.id} is busy with another request (a propagation?); cancel it "
                "or retry shortly"
            )

    def close(self) -> None:
        self.video.source.close()
        self.frames.close()


class SessionStore:
    """Open sessions by id, with a maximum count and an idle TTL."""

    def __init__(
        self, root: Path, max_sessions: int, ttl_seconds: float, per_owner: int | None = None
    ) -> None:
        self.root = root / "sessions"
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_sessions = max_sessions
        self.per_owner = per_owner
        self._reserved: dict[str, str] = {}  # id -> owner of sessions still uploading
        self.ttl_seconds = ttl_seconds
        self._sessions: dict[str, ServerSession] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def new_directory(self, owner: str) -> tuple[str, Path]:
        """Reserve an id and its folder (raises BusyError when the server's maximum or the
        owner's share is reached); `open` or `release` ends the reservation."""
        self.sweep()
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        with self._lock:
            self._check_room(owner)
            self._reserved[session_id] = owner
        directory = self.root / session_id
        directory.mkdir(parents=False)
        return session_id, directory

    def release(self, session_id: str) -> None:
        """End a reservation whose upload failed."""
        with self._lock:
            self._reserved.pop(session_id, None)

    def _check_room(self, owner: str) -> None:
        """BusyError when no session may be added for `owner` (hold `_lock`)."""
        if len(self._sessions) + len(self._reserved) >= self.max_sessions:
            raise BusyError(
                f"{self.max_sessions} video sessions are open, the server's maximum; delete "
                "one (DELETE /v1/sessions/{id}) or wait for idle ones to expire"
            )
        if self.per_owner is not None:
            mine = sum(s.owner == owner for s in self._sessions.values())
            mine += sum(o == owner for o in self._reserved.values())
            if mine >= self.per_owner:
                raise BusyError(
                    f"this API key has {self.per_owner} video sessions open, its share of the "
                    "server (--max-sessions-per-key); delete one (DELETE /v1/sessions/{id})"
                )

    def open(
        self,
        session_id: str,
        owner: str,
        directory: Path,
        make_video: Callable[[Path], VideoSession],
        limits: Limits,
    ) -> ServerSession:
        """Open the uploaded video in `directory` and register the session. The video's
        length and frame size are checked against `limits` (the pipeline's checks, from the
        container header) before the tracking state decodes any frame.

        Removes the folder and re-raises when the video cannot be used."""
        path = directory / UPLOAD_NAME
        try:
            sniff_video(path)
            frames = VideoFileSource(path)
            try:
                check_video_size(frames, limits)
            except BaseException:
                frames.close()
                raise
            video = make_video(path)
        except BaseException:
            self.release(session_id)
            shutil.rmtree(directory, ignore_errors=True)
            raise
        now = time.monotonic()
        session = ServerSession(session_id, owner, directory, video, frames, now, now)
        write_json(directory / META_NAME, {
            "id": session_id, "owner": owner, "created_unix": time.time(),
            "num_frames": session.num_frames, "fps": frames.fps,
            "width": frames.width, "height": frames.height,
        })  # fmt: skip
        with self._lock:  # the reservation becomes the open session (it was counted)
            self._reserved.pop(session_id, None)
            self._sessions[session_id] = session
        return session

    def get(self, session_id: str, owner: str) -> ServerSession:
        """The session, if it exists, belongs to `owner` and has not expired (else 404)."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or not secrets.compare_digest(session.owner, owner):
            raise SessionNotFoundError(f"no session {session_id!r} (it may have expired)")
        if self._expired(session, time.monotonic()) and self._remove(session, wait=False):
            raise SessionNotFoundError(f"session {session_id!r} expired and was deleted")
        session.touch()
        return session

    def delete(self, session_id: str, owner: str) -> None:
        session = self.get(session_id, owner)
        if session.job is not None:
            session.job.cancel()
        if not self._remove(session, wait=True):
            raise BusyError(f"session {session_id} is busy; retry the delete shortly")

    def sweep(self) -> int:
        """Delete expired sessions that are not busy; returns how many were deleted."""
        now = time.monotonic()
        with self._lock:
            expired = [s for s in self._sessions.values() if self._expired(s, now)]
        return sum(self._remove(s, wait=False) for s in expired)

    def cancel_jobs(self) -> int:
        """Cancel the running job of every session; returns how many."""
        with self._lock:
            jobs = [s.job for s in self._sessions.values() if s.job is not None]
        for job in jobs:
            job.cancel()
        return len(jobs)

    def close_all(self, delete: bool = True) -> None:
        """Stop and close every session; `delete=False` keeps their folders for a restart."""
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            if session.job is not None:
                session.job.cancel()
            if delete:
                self._remove(session, wait=True)
            elif session.lock.acquire(timeout=LOCK_WAIT_SECONDS):
                try:
                    with self._lock:
                        self._sessions.pop(session.id, None)
                    with session.frames_lock:
                        session.close()
                finally:
                    session.lock.release()

    def restore(
        self,
        directory: Path,
        make_video: Callable[[Path], VideoSession],
        replay: Callable[[VideoSession, list[dict[str, Any]]], None],
    ) -> ServerSession:
        """Rebuild a session a previous run left in `directory`: its video, its prompts (the
        log replayed on a fresh tracking state) and its stored masks (served as they are).
        Raises when it cannot be used (the caller removes it)."""
        meta = json.loads((directory / META_NAME).read_text(encoding="utf-8"))
        session_id, owner = str(meta["id"]), str(meta["owner"])
        if session_id != directory.name:
            raise ValueError(f"session.json names {session_id!r}, not its folder")
        accessed = (directory / META_NAME).stat().st_mtime
        frames = VideoFileSource(directory / UPLOAD_NAME)
        try:
            video = make_video(directory / UPLOAD_NAME)
            try:
                replay(video, read_journal(directory))
            except BaseException:
                video.source.close()
                raise
        except BaseException:
            frames.close()
            raise
        now = time.monotonic()
        idle = max(0.0, time.time() - accessed)
        session = ServerSession(session_id, owner, directory, video, frames, now, now - idle)
        session.masks = {
            f: records for f, records in read_frame_masks(directory).items() if f < len(frames)
        }
        with self._lock:
            self._sessions[session_id] = session
        return session

    def _expired(self, session: ServerSession, now: float) -> bool:
        return now - session.last_access >= self.ttl_seconds

    def _remove(self, session: ServerSession, wait: bool) -> bool:
        """Unregister, close and delete a session's files; False when it is busy."""
        if not session.lock.acquire(timeout=LOCK_WAIT_SECONDS if wait else 0):
            return False
        try:
            with self._lock:
                if self._sessions.get(session.id) is not session:
                    return True  # removed by someone else meanwhile
                del self._sessions[session.id]
            with session.frames_lock:
                session.close()
            shutil.rmtree(session.directory, ignore_errors=True)
            return True
        finally:
            session.lock.release()


def check_video_size(frames: FrameSource, limits: Limits) -> None:
    """The pipeline's limits on a video: frames, and pixels per frame (413 naming the flag)."""
    limits.check("max_frames", frames.num_frames or 0,
                 what=f"frames in the video ({frames.num_frames} frames)",
                 setting="the max_frames limit", field="video")  # fmt: skip
    limits.check("max_image_pixels", frames.width * frames.height,
                 what=f"pixels per frame ({frames.width}x{frames.height})",
                 setting="the max_image_pixels limit", field="video")  # fmt: skip


# -- sniffing ---------------------------------------------------------------------------------

_SNIFF_BYTES = 512
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")  # ISO BMFF / QuickTime
_MPEG_TS_SYNC, _MPEG_TS_PACKET = 0x47, 188


def sniff_video(path: Path) -> str:
    """The container family of a file judged by its first bytes (never by a name).

    Raises InvalidInputError for anything that is not MP4/MOV, Matroska/WebM, AVI or MPEG."""
    from masklet.errors import InvalidInputError

    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    if len(head) >= 8 and head[4:8] in _MP4_BOXES:
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"\x00\x00\x01\xba") or head.startswith(b"\x00\x00\x01\xb3"):
        return "mpeg"
    if len(head) > _MPEG_TS_PACKET and head[0] == head[_MPEG_TS_PACKET] == _MPEG_TS_SYNC:
        return "mpegts"
    raise InvalidInputError(
        "the uploaded file is not a video this server reads: expected MP4/MOV, MKV/WebM, AVI "
        f"or MPEG data, got a file starting with {head[:8].hex(' ')!r}"
    )
