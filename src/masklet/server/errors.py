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
    """An error with an HTTP status, raised by the server's own code."""

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


class PayloadTooLargeError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(413, "payload_too_large", message)


class UnauthorizedError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status, headers=headers)


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


def install_error_handlers(app: FastAPI, retry_after: int) -> None:
    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)  # registered for ApiError only
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)

    async def on_masklet_error(_: Request, exc: Exception) -> JSONResponse:
        message = str(exc)
        if isinstance(exc, SessionNotFoundError):
            return error_response(404, "not_found", message)
        if isinstance(exc, BusyError):
            return error_response(429, "busy", message, headers=busy_headers(retry_after))
        if isinstance(exc, LimitExceededError):
            return limit_response(exc)
        if isinstance(exc, InvalidPromptError):
            return error_response(422, "invalid_prompt", message, field=getattr(exc, "field", None))
        if isinstance(exc, InvalidInputError):
            return error_response(422, "invalid_input", message, field=getattr(exc, "field", None))
        if isinstance(exc, CheckpointError):
            return error_response(503, "model_unavailable", message)
        return error_response(400, "bad_request", message)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, (RequestValidationError, ValidationError))
        return await on_api_error(request, validation_error(exc))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        return error_response(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )

    async def on_cancelled(_: Request, exc: Exception) -> JSONResponse:
        # the client left (nobody reads this) or the server is shutting down
        return error_response(503, "cancelled", "the job was cancelled (the server is stopping "
                              "or the request was abandoned); retry")  # fmt: skip

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal", f"internal error: {type(exc).__name__}")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(MaskletError, on_masklet_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(ValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(CancelledError, on_cancelled)
    app.add_exception_handler(Exception, on_unexpected)


def server_words(error: LimitExceededError) -> str:
    """A limit's message naming the `masklet serve` flag that raises it."""
    setting = SERVER_SETTINGS.get(error.limit)
    message = str(error)
    if setting is None:
        return message
    return message.replace(f"the {error.limit} limit", f"masklet serve {setting}")


def limit_response(error: LimitExceededError) -> JSONResponse:
    """413 naming the limit, the value asked for and the flag that raises it."""
    return error_response(413, "limit_exceeded", server_words(error), field=error.field)


def with_field(error: MaskletError, field: str) -> MaskletError:
    """Tag a masklet error with the request field it came from (shown in the JSON body)."""
    error.field = field  # type: ignore[attr-defined]
    return error
