"""The OpenAPI schema and `/docs`, both working without a network.

`/docs` is Swagger UI served from the app's own files (the `swagger-ui-bundle` package of the
server extra), never from a CDN. That bundle is Swagger UI 4, which reads OpenAPI 3.0
documents: it is given `/docs/openapi.json`, the same schema labelled 3.0.3. Without the
package, `/docs` is a plain page linking the schema. Schemas that routes declare by hand
(`openapi_extra`) are added to `components.schemas`, so every `$ref` resolves; OpenAPI links
(`masklet.server.links`) say how a response's ids feed the next request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from masklet.server.links import add_links

ASSETS_PATH = "/docs/assets"
SWAGGER_OPENAPI_VERSION = "3.0.3"  # what Swagger UI 4 accepts

_PLAIN_DOCS = """<!doctype html><html><head><meta charset="utf-8"><title>{title} API</title>
</head><body><h1>{title} API</h1><p>The OpenAPI schema is at <a href="/openapi.json">
/openapi.json</a>. Install <code>swagger-ui-bundle</code> (<code>pip install
'masklet[server]'</code>) for an interactive page here.</p></body></html>"""


def swagger_assets() -> Path | None:
    """The folder of Swagger UI's files, if the server extra's bundle is installed."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    path = Path(str(swagger_ui_path))
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def install_docs(
    app: FastAPI, extra_schemas: dict[str, dict[str, Any]], *, keys_required: bool = True
) -> None:
    """A complete `/openapi.json` (with `extra_schemas` in components) and an offline `/docs`.
    `keys_required=False` (a server without API keys) documents the bearer key as optional."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_schema(app, extra_schemas, keys_required=keys_required)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    assets = swagger_assets()

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if assets is None:
            return HTMLResponse(_PLAIN_DOCS.format(title=app.title))
        return get_swagger_ui_html(
            openapi_url="/docs/openapi.json", title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
        )  # fmt: skip

    @app.get("/docs/openapi.json", include_in_schema=False)
    def docs_schema() -> JSONResponse:
        return JSONResponse({**openapi(), "openapi": SWAGGER_OPENAPI_VERSION})

    if assets is not None:
        app.mount(ASSETS_PATH, StaticFiles(directory=assets), name="docs-assets")


def build_schema(
    app: FastAPI, extra_schemas: dict[str, dict[str, Any]], *, keys_required: bool
) -> dict[str, Any]:
    """The app's OpenAPI document: FastAPI's, with `extra_schemas` in components, the links
    between operations, and the API key optional where the server has none."""
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in extra_schemas.items():
        components.setdefault(name, definition)
    add_links(schema)
    if not keys_required:
        optional_security(schema)
    return schema


def optional_security(schema: dict[str, Any]) -> None:
    """Add "no credentials" (`{}`) to every operation's security requirements, in place."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            if operation.get("security") and {} not in operation["security"]:
                operation["security"].append({})
