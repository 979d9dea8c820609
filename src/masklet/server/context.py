"""What every request handler shares: settings, the lazily loaded model, the worker pool, the
session store, the download registry; plus authentication."""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from masklet.errors import CheckpointError
from masklet.pipelines.limits import Limits
from masklet.server.errors import ApiError, UnauthorizedError
from masklet.server.jobs import WorkerPool
from masklet.server.sessions import ANONYMOUS, SessionStore, owner_of
from masklet.server.settings import ServerSettings

if TYPE_CHECKING:
    from masklet.modeling.sam2 import SAM2Model
    from masklet.text.detector import Detector
    from masklet.video.predictor import VideoPredictor

log = logging.getLogger("masklet.server")
FILE_TOKEN_BYTES = 24
# status of text requests when the detector cannot be loaded (transformers or weights missing):
# the request is fine, this server cannot serve it until its operator installs what is missing
DETECTOR_UNAVAILABLE_STATUS = 503


class ModelHolder:
    """Loads the model on first use (so the server starts at once and `/healthz` answers while
    a checkpoint downloads), then shares it: the model holds no per-request state."""

    def __init__(self, settings: ServerSettings) -> None:
        self._settings = settings
        self._model: SAM2Model | None = None
        self._name: str | None = None
        self._video: VideoPredictor | None = None
        self._detector: Detector | None = None
        self._lock = threading.Lock()
        self._detector_lock = threading.Lock()  # loading it must not hold up SAM 2 requests

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def name(self) -> str:
        """The model served: the loaded one's name, else what the setting will load ("auto"
        resolved to the official tiny model if cached, else the bundled nano model)."""
        if self._name is None:
            if self._settings.model_factory is not None:
                self._name = self._settings.model
            else:
                from masklet.checkpoints import resolve_model_name

                self._name = resolve_model_name(self._settings.model)
        return self._name

    def model(self) -> SAM2Model:
        with self._lock:
            if self._model is None:
                factory = self._settings.model_factory
                if factory is not None:
                    from masklet.precision import apply_precision

                    self._model = factory(self._settings)
                    apply_precision(self._model, self._settings.precision)
                else:
                    from masklet.checkpoints import load_model, resolve_model_name

                    name = resolve_model_name(self._settings.model)
                    loaded = load_model(
                        name,
                        device=self._settings.device,
                        backend=self._settings.backend,
                        precision=self._settings.precision,
                    )
                    self._name = name
                    self._model = loaded  # type: ignore[assignment]
            assert self._model is not None  # set just above; narrows the type
            return self._model

    @property
    def precision(self) -> str:
        """The loaded model's mode and why, else the setting (auto decides at load)."""
        from masklet.precision import model_precision

        choice = model_precision(self._model) if self._model is not None else None
        return choice.describe() if choice else f"precision {self._settings.precision}"

    def video_predictor(self) -> VideoPredictor:
        """One predictor for every session: its state lives in each session, not in it."""
        from masklet.video.predictor import VideoPredictor

        model = self.model()
        with self._lock:
            if self._video is None:
                self._video = VideoPredictor(model)
            return self._video

    def detector(self) -> Detector:
        """The text-prompt detector, loaded on first use. A failed load is not remembered (the
        operator may install transformers or download weights meanwhile); it is answered
        `DETECTOR_UNAVAILABLE_STATUS` with the one-line message of `masklet.text`."""
        from masklet.text import GroundingDINODetector, TextExtraMissingError

        with self._detector_lock:
            if self._detector is None:
                factory = self._settings.detector_factory
                try:
                    if factory is not None:
                        self._detector = factory(self._settings)
                    else:
                        self._detector = GroundingDINODetector(
                            self._settings.detector, device=self._settings.device
                        )
                except (TextExtraMissingError, CheckpointError) as error:
                    raise ApiError(
                        DETECTOR_UNAVAILABLE_STATUS, "detector_unavailable", str(error)
                    ) from error
            return self._detector


@dataclass
class _FileEntry:
    path: Path
    created: float
    owned_dir: Path | None  # deleted with the entry (outputs of a prediction); None: a session's


class FileStore:
    """Download links `/v1/files/{token}/{name}` for generated outputs.

    The token is an unguessable capability (like a signed URL), so a browser can follow the link
    without sending the API key. Links die with their session or after the TTL."""

    def __init__(self, root: Path, ttl_seconds: float) -> None:
        self.root = root / "outputs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_seconds = ttl_seconds
        self._entries: dict[str, _FileEntry] = {}
        self._lock = threading.Lock()

    def new_directory(self) -> Path:
        """A fresh folder for outputs not tied to a session (deleted after the TTL)."""
        directory = self.root / secrets.token_urlsafe(FILE_TOKEN_BYTES)
        directory.mkdir()
        return directory

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(FILE_TOKEN_BYTES)

    def register(
        self,
        path: Path,
        owned_dir: Path | None = None,
        *,
        token: str | None = None,
        age_seconds: float = 0.0,
    ) -> str:
        """The download link of `path` (under `token`: a link restored after a restart, as
        old as `age_seconds`; else a new token)."""
        token = token or self.new_token()
        with self._lock:
            self._entries[token] = _FileEntry(path, time.monotonic() - age_seconds, owned_dir)
        return f"/v1/files/{token}/{path.name}"

    def forget(self, token: str) -> None:
        with self._lock:
            self._entries.pop(token, None)

    def lookup(self, token: str, name: str) -> Path | None:
        with self._lock:
            entry = self._entries.get(token)
        if entry is None or entry.path.name != name or not entry.path.is_file():
            return None
        return entry.path

    def sweep(self) -> int:
        now = time.monotonic()
        with self._lock:
            stale = {
                token: e
                for token, e in self._entries.items()
                if not e.path.exists() or now - e.created >= self.ttl_seconds
            }
            for token in stale:
                del self._entries[token]
        for entry in stale.values():
            if entry.owned_dir is not None:
                shutil.rmtree(entry.owned_dir, ignore_errors=True)
        return len(stale)


@dataclass
class ServerContext:
    """ephemeral: the data directory was made for this process (no --data-dir): it is deleted
    on shutdown, as nothing could restore from it."""

    settings: ServerSettings
    data_dir: Path
    models: ModelHolder
    pool: WorkerPool
    sessions: SessionStore
    files: FileStore
    ephemeral: bool = False

    @classmethod
    def create(cls, settings: ServerSettings, ephemeral: bool = False) -> ServerContext:
        data_dir = settings.data_dir
        if data_dir is None:  # create_app resolves it; keep mypy and direct callers honest
            settings = settings.resolved()
            data_dir = settings.data_dir
            assert data_dir is not None
        return cls(
            settings=settings,
            data_dir=data_dir,
            models=ModelHolder(settings),
            # per-key quotas when there are keys (without, every request is the one local user)
            pool=WorkerPool(
                settings.workers,
                settings.queue_size,
                per_owner=settings.max_jobs_per_key if settings.api_keys else None,
            ),
            sessions=SessionStore(
                data_dir,
                settings.max_sessions,
                settings.session_ttl_seconds,
                per_owner=settings.max_sessions_per_key if settings.api_keys else None,
            ),
            files=FileStore(data_dir, settings.session_ttl_seconds),
            ephemeral=ephemeral,
        )

    @property
    def limits(self) -> Limits:
        return self.settings.limits

    def link(self, path: str) -> str:
        """An app path as a link: under the configured public URL, else relative (never from
        the request's Host header, which the client chooses)."""
        base = self.settings.public_url
        return path if base is None else base.rstrip("/") + path

    def sweep(self) -> int:
        return self.sessions.sweep() + self.files.sweep()

    def cancel_jobs(self) -> int:
        """Cancel every running or queued job (a shutdown); returns how many."""
        return self.pool.cancel_all() + self.sessions.cancel_jobs()

    def recover(self) -> tuple[int, dict[str, int]]:
        """On start: remove what a previous run left behind (`.partial` files, stale uploads,
        dead download folders, expired sessions) and rebuild its live sessions, with their
        export links. Returns how
        many sessions were restored and what was removed."""
        from masklet.server.exports import restore_export_links
        from masklet.server.persist import replay, sweep_data_dir

        keep, removed = sweep_data_dir(self.data_dir, self.settings.session_ttl_seconds)
        restored = 0
        for directory in keep:
            try:
                predictor = self.models.video_predictor()  # loads the model: only if needed
                session = self.sessions.restore(
                    directory, predictor.init_state, partial(replay, predictor)
                )
                restore_export_links(self.files, session)
                restored += 1
            except Exception:
                log.exception("cannot restore session %s: deleting it", directory.name)
                shutil.rmtree(directory, ignore_errors=True)
                removed["sessions"] += 1
        return restored, removed

    def close(self) -> None:
        self.cancel_jobs()
        self.pool.shutdown()
        self.sessions.close_all(delete=self.ephemeral)
        if self.ephemeral:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def get_context(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.context
    return ctx


_bearer = HTTPBearer(auto_error=False, description="API key (required when keys are configured)")


def require_owner(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The owner id of the request's API key; 401 when keys are configured and it is wrong."""
    keys = get_context(request).settings.api_keys
    if not keys:
        return ANONYMOUS
    if credentials is None or not credentials.credentials:
        raise UnauthorizedError("missing API key: send the header 'Authorization: Bearer <key>'")
    given = credentials.credentials.strip()
    for key in keys:
        if secrets.compare_digest(given.encode(), key.encode()):
            return owner_of(key)
    raise UnauthorizedError("wrong API key")


Context = Annotated[ServerContext, Depends(get_context)]
Owner = Annotated[str, Depends(require_owner)]
