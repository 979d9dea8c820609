"""Request bodies, bounded before any route reads them.

`BodyLimitMiddleware` answers 413 for a body over the upload limit (at once from
Content-Length, or as soon as a streamed body passes it), and checks every body that a route
may parse as JSON (anything but a form) with the pipeline's `check_json_text`: its size and
nesting depth, before FastAPI or a route parses it (a 100,000-level `[[[...]]]` would
otherwise exhaust the parser's recursion and answer 500).
"""

from __future__ import annotations

import re

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from masklet.pipelines.limits import LimitExceededError, Limits, check_json_text
from masklet.server.errors import PayloadTooLargeError, limit_error

FORM_TYPES = (b"multipart/form-data", b"application/x-www-form-urlencoded")
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# a JSON string, escapes included (unrolled loop: linear time on megabytes of base64)
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
OFF_LOOP_BYTES = 1 << 20  # bodies larger than this are checked on a worker thread


def upload_limit_message(max_bytes: int) -> str:
    mb = max_bytes / (1024 * 1024)
    return (
        f"the upload is larger than this server's limit of {mb:g} MB; send a smaller file "
        "or start the server with a larger --max-upload-mb"
    )


def check_json_body(data: bytes, limits: Limits, field: str, *, sized: bool) -> None:
    """`check_json_text` on a request body; `sized=False` checks the depth only (bodies that
    carry a file as a data: URI are bounded by the upload limit instead). String contents are
    dropped first (they cannot nest), so a body of base64 is checked in C-speed time."""
    if sized:
        check_json_text(data, limits, field)
        return
    skeleton = _JSON_STRING.sub(b'""', data)
    check_json_text(skeleton, Limits(max_json_depth=limits.max_json_depth, max_json_bytes=None),
                    field)  # fmt: skip


class BodyLimitMiddleware:
    """413 for bodies over `max_bytes`; JSON bodies checked against `limits` (size, except on
    `file_paths` whose JSON may carry a file, and depth)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        shown_bytes: int,
        limits: Limits,
        file_paths: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.shown_bytes = shown_bytes  # the --max-upload-mb the message names
        self.limits = limits
        self.file_paths = file_paths

    def _too_large(self) -> JSONResponse:
        return PayloadTooLargeError(upload_limit_message(self.shown_bytes)).response()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return
        content_type = headers.get(b"content-type", b"").lower()
        if scope["method"] in BODY_METHODS and not content_type.startswith(FORM_TYPES):
            await self._json(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # an HTTPException passes through FastAPI's body parsing unchanged
                    raise HTTPException(413, upload_limit_message(self.shown_bytes))
            return message

        await self.app(scope, limited_receive, send)

    async def _json(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the whole body (bounded), check it, then replay it to the app."""
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending it all
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        data = b"".join(chunks)
        sized = scope["path"] not in self.file_paths
        try:
            if len(data) > OFF_LOOP_BYTES:
                await run_in_threadpool(check_json_body, data, self.limits, "body", sized=sized)
            else:
                check_json_body(data, self.limits, "body", sized=sized)
        except LimitExceededError as error:
            await limit_error(error).response()(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()  # after the body: http.disconnect when the client leaves

        await self.app(scope, replay, send)
