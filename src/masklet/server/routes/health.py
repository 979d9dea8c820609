"""`/healthz`, the object colours, and downloads of generated files."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from masklet.server.context import Context
from masklet.server.errors import ApiError
from masklet.server.routes.common import ERROR_RESPONSES
from masklet.server.schemas import HealthInfo

router = APIRouter()

MEDIA_TYPES = {
    ".mp4": "video/mp4", ".zip": "application/zip", ".json": "application/json",
    ".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp",
}  # fmt: skip


@router.get("/healthz", response_model=HealthInfo, tags=["server"])
def healthz(ctx: Context) -> HealthInfo:
    """Liveness: answers at once, even while the model loads."""
    return HealthInfo(
        status="ok",
        model=ctx.models.name,
        model_loaded=ctx.models.loaded,
        precision=ctx.models.precision,
        sessions=len(ctx.sessions),
        jobs=ctx.pool.pending,
    )


MAX_COLORS = 4096


@router.get("/v1/colors", tags=["server"])
def colors(
    count: Annotated[int, Query(ge=1, le=MAX_COLORS, description="ids 1..count")] = 256,
) -> dict[str, str]:
    """Object id -> "#rrggbb": the colour every masklet output draws the object with
    (`masklet.io.overlay.object_color`), so the page shows what the exports will contain."""
    from masklet.io.overlay import object_color

    return {str(i): "#{:02x}{:02x}{:02x}".format(*object_color(i)) for i in range(1, count + 1)}


@router.get(
    "/v1/files/{token}/{name}", tags=["files"], responses=ERROR_RESPONSES,
    response_class=FileResponse,
)  # fmt: skip
def download(token: str, name: str, ctx: Context) -> FileResponse:
    """A generated output (export, prediction). The link itself is the credential: it holds an
    unguessable token, so browsers can follow it without the API key."""
    path = ctx.files.lookup(token, name)
    if path is None:
        raise ApiError(404, "not_found", "no such file (links expire with their session)")
    return FileResponse(
        path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"), filename=name
    )
