"""OpenAPI links: how ids flow from one response into the next request.

`POST /v1/sessions` answers a `SessionInfo` whose `id` is the `{session_id}` of every session
route; a response listing objects (`FrameMasks`) gives the `{object_id}` of the object routes.
Clients and stateful fuzzers (schemathesis) follow these links to chain real requests:
create -> prompt -> propagate -> masks -> export -> delete.
"""

from __future__ import annotations

from typing import Any

SESSION_PARAMETER = "{session_id}"
OBJECT_PARAMETER = "{object_id}"
CREATE_SESSION = ("/v1/sessions", "post", "201")
# responses listing `objects: [{id, ...}]` (FrameMasks)
OBJECT_SOURCES = (
    ("/v1/sessions/{session_id}/prompts", "post", "200"),
    ("/v1/sessions/{session_id}/clear", "post", "200"),
)
# responses after which the same session goes on (prompt, then propagate, masks, export ...)
CONTINUE_SOURCES = (("/v1/sessions/{session_id}/prompts", "post", "200"),)
DESCRIBE_SESSION = ("/v1/sessions/{session_id}", "get", "200")  # a SessionInfo, like creation
Operation = dict[str, Any]


def _operations(schema: dict[str, Any], part: str) -> list[Operation]:
    """The operations whose path holds `part` (e.g. "{session_id}")."""
    return [op for path, ops in schema["paths"].items() if part in path for op in ops.values()]


def _links(
    operations: list[Operation], parameters: dict[str, str], description: str
) -> dict[str, Any]:
    """One link per operation, named after its summary ("Rename Object" -> "RenameObject")."""
    return {
        op["summary"].replace(" ", ""): {
            "operationId": op["operationId"], "parameters": parameters, "description": description,
        }
        for op in operations
    }  # fmt: skip


def session_links(schema: dict[str, Any], source: str = "$response.body#/id") -> dict[str, Any]:
    """Links to every route of the session whose id is at `source` (a runtime expression)."""
    operations = _operations(schema, SESSION_PARAMETER)
    return _links(operations, {"session_id": source}, "the same session")


def object_links(schema: dict[str, Any]) -> dict[str, Any]:
    """Links from a frame's masks to the routes of its first object, in the same session."""
    parameters = {
        "session_id": "$request.path.session_id",
        "object_id": "$response.body#/objects/0/id",
    }
    operations = _operations(schema, OBJECT_PARAMETER)
    return _links(operations, parameters, "the first object of the answered frame")


def add_links(schema: dict[str, Any]) -> None:
    """Write the links into `schema` (the app's OpenAPI document), in place."""
    same = session_links(schema, "$request.path.session_id")
    sources = [(CREATE_SESSION, session_links(schema)), (DESCRIBE_SESSION, session_links(schema))]
    sources += [(source, same) for source in CONTINUE_SOURCES]
    # after the session-only links: on a shared name, the link that also gives the object wins
    sources += [(source, object_links(schema)) for source in OBJECT_SOURCES]
    for (path, method, status), links in sources:
        response = schema["paths"][path][method]["responses"][status]
        response.setdefault("links", {}).update(links)
