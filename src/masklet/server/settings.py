"""Server settings: one frozen dataclass, filled from command-line flags and MASKLET_* variables.

Limits are generous by default (the reference demo caps uploads at 70 MB / 10 s; we allow far
more) and every one can be changed. Binding to anything but a loopback address without an API
key is refused: a model server open to the network must not be usable by anyone who finds it.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masklet.errors import InvalidInputError
from masklet.pipelines.limits import Limits

if TYPE_CHECKING:
    from masklet.modeling.sam2 import SAM2Model
    from masklet.text.detector import Detector

# "auto": the official tiny model when it is in the cache, else the bundled nano model, so the
# server and its web page work offline out of the box
DEFAULT_MODEL = "auto"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
ENV_PREFIX = "MASKLET_"
LOOPBACK_NAMES = ("localhost", "ip6-localhost")
# masklet.text.DEFAULT_DETECTOR, spelt out: importing masklet.text here would load torch for
# every `masklet serve --help` (a test keeps the two equal)
DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-tiny"

ModelFactory = Callable[["ServerSettings"], "SAM2Model"]
DetectorFactory = Callable[["ServerSettings"], "Detector"]
_FACTORIES = ("model_factory", "detector_factory")  # code, not settings a variable can give


def default_data_dir() -> Path:
    """A per-process folder under the user cache (XDG_CACHE_HOME or ~/.cache)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = cache / "masklet" / "server"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="data-", dir=root))


@dataclass(frozen=True)
class ServerSettings:
    """Everything `create_app` needs.

    model: an official model name, a checkpoint path (see `masklet models`), or "auto".
    precision: fp32, bf16, fp16 or auto (`masklet.precision`); /healthz says what auto picked.
    data_dir: uploads, session files and outputs live here (None: a fresh folder in the cache).
    api_keys: accepted `Authorization: Bearer` keys; each key sees only its own sessions.
    max_upload_mb: largest request body; max_video_frames: longest video accepted.
    max_objects / max_points / max_image_pixels / max_frame_objects / max_everything_prompts:
        the pipeline `Limits` of every request (objects, clicks per object, pixels of an image
        or frame, frames x objects of a video job, point prompts of one segment-everything).
    max_json_depth / max_json_bytes: nesting and size of a JSON body or JSON form field
        (checked before parsing; `/predictions` bodies, which may carry a file, only for depth).
    max_sessions: open video sessions at once; max_sessions_per_key: of those, how many one
        API key may hold (so one key cannot lock the others out); session_ttl_seconds: idle
        time before a session and its files are deleted.
    max_jobs_per_key: model jobs (running or queued) one API key may have at once.
    public_url: base of the links the server hands out (e.g. "https://masks.example.org");
        None: relative links. Never taken from the request's Host header.
    shutdown_grace_seconds: on SIGTERM / Ctrl-C, running jobs are cancelled and the server
        exits within this time.
    workers: threads running model work; queue_size: jobs that may wait for a worker before
        requests are answered 429.
    backend: "pytorch" or "onnxruntime" (`model` is then a `masklet export onnx` folder);
        None: whichever `model` is for.
    model_factory: builds the model on first use (tests inject a tiny random model); None
        loads `model` with `masklet.checkpoints.load_model`.
    detector: the GroundingDINO model for text prompts: a hub id, "tiny" / "base", or a
        local `save_pretrained` directory. Loaded on the first text request.
    detector_factory: builds the detector on first use (tests inject a `ScriptedDetector`);
        None loads `detector` with `masklet.text.GroundingDINODetector`.
    """

    model: str = DEFAULT_MODEL
    device: str | None = None
    backend: str | None = None
    precision: str = "fp32"
    data_dir: Path | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_keys: tuple[str, ...] = ()
    max_upload_mb: float = 2048.0
    max_video_frames: int = 20_000
    max_sessions: int = 16
    max_sessions_per_key: int = 8
    max_jobs_per_key: int = 4
    max_objects: int = 256
    max_points: int = 512
    max_image_pixels: int = 50_000_000
    max_frame_objects: int = 1_000_000
    max_everything_prompts: int = 16_384
    max_json_depth: int = 32
    max_json_bytes: int = 1_000_000
    session_ttl_seconds: float = 900.0
    public_url: str | None = None
    shutdown_grace_seconds: float = 10.0
    workers: int = 1
    queue_size: int = 8
    retry_after_seconds: int = 2
    model_factory: ModelFactory | None = field(default=None, compare=False, repr=False)
    detector: str = DEFAULT_DETECTOR
    detector_factory: DetectorFactory | None = field(default=None, compare=False, repr=False)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def limits(self) -> Limits:
        """The pipeline limits of every request to this server."""
        return Limits(
            max_objects=self.max_objects, max_points_per_object=self.max_points,
            max_image_pixels=self.max_image_pixels, max_frames=self.max_video_frames,
            max_frame_objects=self.max_frame_objects, max_upload_bytes=self.max_upload_bytes,
            max_everything_prompts=self.max_everything_prompts,
            max_json_depth=self.max_json_depth, max_json_bytes=self.max_json_bytes,
        )  # fmt: skip

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)

    def validate(self) -> None:
        """Raise `InvalidInputError` for settings the server must not start with."""
        from masklet.precision import parse_precision

        parse_precision(self.precision)  # says the valid names
        if not self.is_loopback and not self.api_keys:
            raise InvalidInputError(
                f"binding to {self.host!r} exposes the server to the network: give an API key "
                "with --api-key or MASKLET_API_KEY, or bind to 127.0.0.1"
            )
        for key in self.api_keys:
            if len(key) < MIN_KEY_LENGTH or any(c.isspace() for c in key):
                raise InvalidInputError(
                    f"API keys must be at least {MIN_KEY_LENGTH} characters without spaces; "
                    "make one with: python -c 'import secrets; print(secrets.token_urlsafe())'"
                )
        positive = (
            "max_upload_mb", "max_video_frames", "max_sessions", "workers", "queue_size",
            "max_sessions_per_key", "max_jobs_per_key",
            "max_objects", "max_points", "max_image_pixels", "max_frame_objects",
            "max_everything_prompts", "max_json_depth", "max_json_bytes",
        )  # fmt: skip
        for name in positive:
            if getattr(self, name) <= 0:
                raise InvalidInputError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.public_url is not None and not _is_base_url(self.public_url):
            raise InvalidInputError(
                f"public_url must be an http(s) base URL such as 'https://masks.example.org', "
                f"got {self.public_url!r}"
            )
        if self.shutdown_grace_seconds < 0:
            raise InvalidInputError(
                f"shutdown_grace_seconds must be >= 0, got {self.shutdown_grace_seconds}"
            )
        if self.session_ttl_seconds < 0:
            raise InvalidInputError(
                f"session_ttl_seconds must be >= 0, got {self.session_ttl_seconds}"
            )

    def resolved(self) -> ServerSettings:
        """These settings with a data directory chosen and created."""
        data_dir = Path(self.data_dir) if self.data_dir is not None else default_data_dir()
        data_dir.mkdir(parents=True, exist_ok=True)
        return replace(self, data_dir=data_dir.resolve())


MIN_KEY_LENGTH = 8  # shorter keys are guessable


def _is_base_url(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.query


def is_loopback_host(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "port": int,
    "max_upload_mb": float,
    "max_video_frames": int,
    "max_sessions": int,
    "max_sessions_per_key": int,
    "max_jobs_per_key": int,
    "shutdown_grace_seconds": float,
    "max_objects": int,
    "max_points": int,
    "max_image_pixels": int,
    "max_frame_objects": int,
    "max_everything_prompts": int,
    "max_json_depth": int,
    "max_json_bytes": int,
    "session_ttl_seconds": float,
    "workers": int,
    "queue_size": int,
    "retry_after_seconds": int,
    "data_dir": Path,
    "api_keys": lambda text: tuple(k.strip() for k in text.split(",") if k.strip()),
}
_ENV_NAMES = {"api_keys": "API_KEY"}  # MASKLET_API_KEY=k1,k2 reads naturally


def settings_from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> ServerSettings:
    """Settings from MASKLET_<FIELD> variables (e.g. MASKLET_MAX_UPLOAD_MB, MASKLET_API_KEY),
    then `overrides` (flags that were given; None values are ignored)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(ServerSettings):
        if f.name in _FACTORIES:
            continue
        name = ENV_PREFIX + _ENV_NAMES.get(f.name, f.name.upper())
        if name in env and env[name] != "":
            convert = _CONVERTERS.get(f.name, str)
            try:
                values[f.name] = convert(env[name])
            except ValueError as error:
                raise InvalidInputError(f"{name}={env[name]!r} is not valid: {error}") from error
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ServerSettings(**values)
