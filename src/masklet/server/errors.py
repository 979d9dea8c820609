"""Every error leaves the server as `{"error": {"code", "message"[, "field"]}}` with a 4xx status.

masklet's typed errors map to statuses here, once: bad input 422, unknown session 404, a full
queue 429 with `Retry-After`. Request-validation errors name the offending field
(`body.points[0]`), so a client can fix its request without reading server logs.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from masklet.errors import (
    BusyError,
    CheckpointError,
    InvalidInputError,
    InvalidPromptError,
    MaskletError,
    SessionNotFoundError,
)
from masklet.pipelines.control import CancelledError
from masklet.pipelines.limits import SERVER_SETTINGS, LimitExceededError

log = logging.getLogger("masklet.server")


class ApiError(Exception):
    """An error with an HTTP status, raised by the server's own code; `response()` is the
    JSON answer every error gets."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return JSONResponse({"error": body}, status_code=self.status, headers=self.headers)


class PayloadTooLargeError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(413, "payload_too_large", message)


class UnauthorizedError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


# masklet's typed errors -> (status, code); the first match wins, so subclasses come first.
# A LimitExceededError (an InvalidInputError) is a 413 of its own: see `limit_error`.
MASKLET_STATUSES: tuple[tuple[type[MaskletError], int, str], ...] = (
    (SessionNotFoundError, 404, "not_found"),
    (BusyError, 429, "busy"),
    (InvalidPromptError, 422, "invalid_prompt"),
    (InvalidInputError, 422, "invalid_input"),
    (CheckpointError, 503, "model_unavailable"),
)
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """`("body", "points", 0)` -> `"body.points[0]"`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validation_error(error: ValidationError | RequestValidationError, prefix: str = "") -> ApiError:
    """422 naming the first bad field and listing every problem."""
    problems = error.errors()
    first = problems[0] if problems else {"loc": (), "msg": "invalid request"}
    loc = tuple(first.get("loc", ()))
    name = field_name(((prefix,) if prefix else ()) + loc)
    details = "; ".join(
        f"{field_name(((prefix,) if prefix else ()) + tuple(p.get('loc', ())))}: {p.get('msg')}"
        for p in problems
    )
    return ApiError(422, "invalid_request", f"invalid {name}: {details}", field=name)


def busy_headers(retry_after: int) -> dict[str, str]:
    return {"Retry-After": str(retry_after)}


def masklet_api_error(error: MaskletError, retry_after: int) -> ApiError:
    """The answer to a masklet error: its status by type (`MASKLET_STATUSES`), else 400."""
    if isinstance(error, LimitExceededError):
        return limit_error(error)
    for kind, status, code in MASKLET_STATUSES:
        if isinstance(error, kind):
            headers = busy_headers(retry_after) if status == 429 else None
            field = error.field if status == 422 else None
            return ApiError(status, code, str(error), field, headers)
    return ApiError(400, "bad_request", str(error))


async def _on_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # registered for ApiError only
    return exc.response()


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, (RequestValidationError, ValidationError))
    return validation_error(exc).response()


async def _on_http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return ApiError(
        exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {})
    ).response()


async def _on_cancelled(_: Request, exc: Exception) -> JSONResponse:
    # the client left (nobody reads this) or the server is shutting down
    return ApiError(503, "cancelled", "the job was cancelled (the server is stopping or the "
                    "request was abandoned); retry").response()  # fmt: skip


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return ApiError(500, "internal", f"internal error: {type(exc).__name__}").response()


def install_error_handlers(app: FastAPI, retry_after: int) -> None:
    """Every error answers `{"error": {...}}`; a busy server says when to retry."""

    async def on_masklet_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MaskletError)
        return masklet_api_error(exc, retry_after).response()

    handlers = {
        ApiError: _on_api_error, MaskletError: on_masklet_error,
        RequestValidationError: _on_validation, ValidationError: _on_validation,
        StarletteHTTPException: _on_http, CancelledError: _on_cancelled,
        Exception: _on_unexpected,
    }  # fmt: skip
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)


def server_words(error: LimitExceededError) -> str:
    """A limit's message naming the `masklet serve` flag that raises it."""
    setting = SERVER_SETTINGS.get(error.limit)
    message = str(error)
    if setting is None:
        return message
    return message.replace(f"the {error.limit} limit", f"masklet serve {setting}")


def limit_error(error: LimitExceededError) -> ApiError:
    """413 naming the limit, the value asked for and the flag that raises it."""
    return ApiError(413, "limit_exceeded", server_words(error), field=error.field)


def with_field(error: MaskletError, field: str) -> MaskletError:
    """Tag a masklet error with the request field it came from (shown in the JSON body)."""
    error.field = field  # type: ignore[attr-defined]
    return error
