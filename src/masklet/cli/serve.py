"""`masklet serve`: the HTTP API and the web page (FastAPI + uvicorn).

Every flag can also come from a MASKLET_* environment variable (flags win), e.g.
MASKLET_API_KEY, MASKLET_DATA_DIR, MASKLET_MAX_UPLOAD_MB.
"""

from __future__ import annotations

import argparse

from masklet.backends import BACKENDS
from masklet.cli.common import BACKEND_HELP, add_precision_option
from masklet.errors import InvalidInputError

Flag = tuple[str, type, str | None, str]  # (flag, type, metavar, help)
# the service's settings beside its limits (masklet.server.settings), None = default
SERVICE_FLAGS: tuple[Flag, ...] = (
    ("--public-url", str, "URL", "base of the links in responses, e.g. "
     "https://masks.example.org (default: relative links; never taken from the Host header)"),
    ("--shutdown-grace", float, "SECONDS",
     "on SIGTERM / Ctrl-C, cancel running jobs and exit within this time (default 10)"),
)  # fmt: skip
# every limit of the server, None = default
LIMIT_FLAGS: tuple[Flag, ...] = (
    ("--max-upload-mb", float, "MB", "largest upload (default 2048)"),
    ("--max-video-frames", int, "N", "longest video accepted (default 20000)"),
    ("--max-sessions", int, "N", "open sessions at once (default 16)"),
    ("--max-sessions-per-key", int, "N", "open sessions one API key may hold (default 8)"),
    ("--max-jobs-per-key", int, "N", "running or queued jobs of one API key (default 4)"),
    ("--max-objects", int, "N", "objects per request (default 256)"),
    ("--max-points", int, "N", "clicks per object and frame (default 512)"),
    ("--max-image-pixels", int, "N", "width x height of an image or frame (default 50000000)"),
    ("--max-frame-objects", int, "N", "frames x objects of one video job (default 1000000)"),
    (
        "--max-everything-prompts",
        int,
        "N",
        "point prompts of one segment-everything request (default 16384)",
    ),
    ("--max-json-depth", int, "N", "nesting of a JSON body or field (default 32)"),
    ("--max-json-bytes", int, "N", "size of a JSON body or field (default 1000000)"),
    ("--session-ttl", float, "SECONDS", "idle time before a session is deleted (default 900)"),
    ("--workers", int, "N", "model threads (default 1)"),
    ("--queue-size", int, "N", "jobs that may wait before requests get 429 (default 8)"),
)
# the settings not named like their flag
SETTING_NAMES = {
    "--session-ttl": "session_ttl_seconds",
    "--shutdown-grace": "shutdown_grace_seconds",
}


def setting_name(flag: str) -> str:
    """`--max-upload-mb` -> `max_upload_mb`: the `ServerSettings` field a table flag sets."""
    return SETTING_NAMES.get(flag, _dest(flag))


def _dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run the HTTP API and the web page")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000)")
    model = p.add_argument_group("model")
    choice = model.add_mutually_exclusive_group()
    choice.add_argument(
        "--model",
        default=None,
        help="model name (default auto: sam2.1_hiera_tiny if downloaded, else the "
        "bundled masklet-nano-synthetic)",
    )
    choice.add_argument("--checkpoint", default=None, help="path to a .pt or .safetensors file")
    model.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best one)")
    model.add_argument("--backend", choices=BACKENDS, default=None, help=BACKEND_HELP)
    add_precision_option(model, default=None)  # None: MASKLET_PRECISION, else fp32
    model.add_argument(
        "--detector", default=None, metavar="MODEL_ID_OR_PATH",
        help="GroundingDINO for text prompts: hub id, 'tiny', 'base' or a local directory",
    )  # fmt: skip
    p.add_argument("--data-dir", default=None, help="uploads and outputs (default: in the cache)")
    for flag, kind, metavar, text in SERVICE_FLAGS:
        p.add_argument(flag, type=kind, default=None, metavar=metavar, help=text)
    p.add_argument(
        "--api-key", action="append", default=None, metavar="KEY",
        help="accepted bearer key (repeatable); required when --host is not a loopback address",
    )  # fmt: skip
    limits = p.add_argument_group("limits")
    for flag, kind, metavar, text in LIMIT_FLAGS:
        limits.add_argument(flag, type=kind, default=None, metavar=metavar, help=text)
    p.set_defaults(run=run)


def settings_from_args(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from masklet.server.settings import settings_from_env

    tabled = {setting_name(f[0]): getattr(args, _dest(f[0])) for f in SERVICE_FLAGS + LIMIT_FLAGS}
    return settings_from_env(
        host=args.host, port=args.port, model=args.checkpoint or args.model, device=args.device,
        backend=args.backend, precision=args.precision, detector=args.detector,
        data_dir=args.data_dir, api_keys=tuple(args.api_key) if args.api_key else None, **tabled,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # noqa: F401  (checked here to name the extra)

        from masklet.server.app import create_app, serve
    except ImportError as error:
        raise InvalidInputError(
            f"masklet serve needs the server extra: pip install 'masklet[server]' ({error})"
        ) from None
    settings = settings_from_args(args)
    app = create_app(settings)  # validates: refuses a public host without an API key
    print(f"masklet serve: http://{settings.host}:{settings.port}/ (API schema at /openapi.json)")
    serve(app, settings)  # SIGTERM / Ctrl-C: jobs cancelled, exit within --shutdown-grace
    return 0
