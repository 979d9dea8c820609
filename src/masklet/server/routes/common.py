"""Shared OpenAPI error descriptions."""

from __future__ import annotations

from typing import Any

from masklet.server.schemas import ErrorBody

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "a body that cannot be read (broken multipart)"},
    401: {"model": ErrorBody, "description": "missing or wrong API key"},
    404: {"model": ErrorBody, "description": "unknown (or someone else's) session or object"},
    413: {"model": ErrorBody, "description": "upload or video over the server's limits"},
    422: {"model": ErrorBody, "description": "malformed input; `field` names it"},
    429: {"model": ErrorBody, "description": "busy: retry after `Retry-After` seconds"},
    503: {"model": ErrorBody, "description": "cancelled (server stopping) or model unavailable"},
}
