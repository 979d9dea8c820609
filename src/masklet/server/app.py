"""`create_app(settings)`: the FastAPI application of `masklet serve`.

Routes add no model logic: they validate requests, then call the same public API a Python
user would (`ImagePredictor`, `VideoPredictor`, `video.tracking`, `io`). Model work runs on a
bounded worker pool; sessions and outputs live on disk under the data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import FrameType

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from masklet import __version__
from masklet.server.bodies import BodyLimitMiddleware
from masklet.server.context import ServerContext
from masklet.server.docs import install_docs
from masklet.server.errors import install_error_handlers
from masklet.server.routes import (
    everything,
    health,
    images,
    predictions,
    sessions,
    text,
    tracking,
)
from masklet.server.settings import ServerSettings

log = logging.getLogger("masklet.server")
STATIC_DIR = Path(__file__).parent / "static"
MIN_SWEEP_SECONDS = 1.0
MAX_SWEEP_SECONDS = 60.0
# multipart framing and form fields beside the file: a little slack over the upload limit
BODY_SLACK_BYTES = 1 << 20
DESCRIPTION = (
    "Segment and track anything in images and videos (SAM 2). Masks are COCO RLE; "
    'errors are `{"error": {"code", "message", "field"}}`; when the server has '
    "API keys, send `Authorization: Bearer <key>`."
)


def sweep_interval(ttl_seconds: float) -> float:
    """Sweep often enough that a session outlives its TTL by at most half of it."""
    return min(max(ttl_seconds / 2, MIN_SWEEP_SECONDS), MAX_SWEEP_SECONDS)


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The app for `settings` (validated: e.g. a non-loopback host needs an API key)."""
    settings = settings or ServerSettings()
    settings.validate()  # before anything is created on disk
    ephemeral = settings.data_dir is None  # nothing can restart from a fresh cache folder
    settings = settings.resolved()
    context = ServerContext.create(settings, ephemeral=ephemeral)
    app = FastAPI(
        docs_url=None,  # served from the app's own files: see masklet.server.docs
        redoc_url=None,
        title="masklet",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan(context),
    )
    app.state.context = context
    install_error_handlers(app, settings.retry_after_seconds)
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_upload_bytes + BODY_SLACK_BYTES,
        shown_bytes=settings.max_upload_bytes, limits=settings.limits,
        file_paths=(predictions.PATH,),
    )  # fmt: skip
    _install_routes(app)
    return app


def _lifespan(context: ServerContext) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up (restore sessions, sweep leftovers, start the periodic sweep) and shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        restored, removed = await run_in_threadpool(context.recover)
        if restored or any(removed.values()):
            log.info("start-up: %d session(s) restored; removed %s", restored, removed)
        task = asyncio.create_task(_sweeper(context))
        try:
            yield
        finally:
            task.cancel()
            await run_in_threadpool(context.close)

    return lifespan


async def _sweeper(context: ServerContext) -> None:
    """Delete expired sessions and links, forever (until cancelled)."""
    while True:
        await asyncio.sleep(sweep_interval(context.settings.session_ttl_seconds))
        try:
            await run_in_threadpool(context.sweep)
        except Exception:  # a failed sweep must not stop the next one
            log.exception("session sweep failed")


def _install_routes(app: FastAPI) -> None:
    """The API routers, the schema and `/docs`, the web page and its files."""
    for module in (health, images, sessions, tracking, text, everything, predictions):
        app.include_router(module.router)
    keys = bool(app.state.context.settings.api_keys)
    install_docs(app, extra_schemas=predictions.SCHEMAS, keys_required=keys)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def serve(app: FastAPI, settings: ServerSettings, log_level: str = "info") -> None:
    """Run `app` with uvicorn until SIGTERM / Ctrl-C. The signal cancels every running and
    queued job at once (their requests answer 503, propagations end with `cancelled`), so
    connections close and the process exits; if something still holds it after
    `settings.shutdown_grace_seconds`, it exits anyway (state is on disk as it happens)."""
    import uvicorn

    context: ServerContext = app.state.context
    grace = settings.shutdown_grace_seconds

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            first = not self.should_exit
            super().handle_exit(sig, frame)
            if first:
                begin_shutdown(context, grace)

    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=log_level,
        timeout_graceful_shutdown=max(1, int(grace * 0.8)),
    )  # fmt: skip
    Server(config).run()


def begin_shutdown(context: ServerContext, grace: float) -> None:
    """Cancel all jobs and arm a watchdog that ends the process after `grace` seconds."""
    cancelled = context.cancel_jobs()
    log.info("shutting down: %d job(s) cancelled; exiting within %gs", cancelled, grace)

    def force() -> None:
        log.error("still running %gs after the shutdown signal: exiting now", grace)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(grace, force)
    timer.daemon = True
    timer.start()
