"""The OpenAPI 3 document of the whole API, assembled from what each package contributes.

A package's `routes.setup(app)` calls `add_fragment(app, paths=..., schemas=...)` with the
OpenAPI `paths` it serves (under /api/v1) and the component schemas they reference
(`#/components/schemas/<Name>`). The first call also mounts GET /api/v1/openapi.json.
Shared pieces every package may reference: the `Error` schema, the `bearer` security
scheme, and the responses `BadRequest`, `Unauthorized`, `Forbidden`, `NotFound`,
`Conflict`, `PreconditionFailed`, `PreconditionRequired`, `Unprocessable`.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from fieldmesh.api import Conflict

Json = dict[str, Any]

FRAGMENTS = web.AppKey("openapi_fragments", list)
OPENAPI_PATH = "/api/v1/openapi.json"

ERROR_SCHEMA: Json = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string", "nullable": True},
            },
        }
    },
}

_RESPONSES = {
    "BadRequest": "The request is malformed (bad JSON, bad filter, bad parameter)",
    "Unauthorized": "Missing, unknown, expired or revoked token",
    "Forbidden": "The role does not allow this action",
    "NotFound": "No such record, or one the caller may not see",
    "Conflict": "Conflicts with the current state (duplicate, idempotency key in use)",
    "PreconditionFailed": "If-Match does not match the record's current ETag",
    "PreconditionRequired": "The update needs an If-Match header",
    "Unprocessable": "A field has a value that cannot be accepted",
}


def error_response(name: str) -> Json:
    return {"$ref": f"#/components/responses/{name}"}


def add_fragment(
    app: web.Application,
    *,
    paths: Json,
    schemas: Json | None = None,
    tags: list[Json] | None = None,
) -> None:
    """Contribute paths and schemas; a path defined twice is a programming error."""
    if FRAGMENTS not in app:
        app[FRAGMENTS] = []
        app.router.add_get(OPENAPI_PATH, _serve)
    for fragment in app[FRAGMENTS]:
        clash = set(fragment["paths"]) & set(paths)
        if clash:
            raise Conflict(f"OpenAPI paths registered twice: {sorted(clash)}")
    app[FRAGMENTS].append({"paths": paths, "schemas": schemas or {}, "tags": tags or []})


def document(app: web.Application) -> Json:
    paths: Json = {}
    schemas: Json = {"Error": ERROR_SCHEMA}
    tags: list[Json] = []
    for fragment in app.get(FRAGMENTS, []):
        paths.update(copy.deepcopy(fragment["paths"]))
        schemas.update(copy.deepcopy(fragment["schemas"]))
        tags.extend(fragment["tags"])
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "fieldmesh API",
            "version": "1.0.0",
            "description": (
                "Field-operations CRM. Authenticate with `Authorization: Bearer <token>` "
                "(POST /api/v1/auth/token). Errors always have the shape "
                '{"error": {"code", "message", "field"}}.'
            ),
        },
        "servers": [{"url": "/"}],
        "tags": tags,
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
            "responses": {
                name: {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                for name, text in _RESPONSES.items()
            },
        },
    }


async def _serve(request: web.Request) -> web.Response:
    return web.json_response(document(request.app))
