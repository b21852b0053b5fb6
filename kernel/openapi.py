"""The OpenAPI 3.1 document of the whole API, generated from the endpoint declarations.

Every route is declared through `kernel.http.Routes`; its path, query and body models and
its response model are msgspec types, whose JSON Schema (2020-12, the dialect of OpenAPI
3.1) msgspec generates. Nothing here is written by hand except the shared error shape.
`mount(app)` serves the document at GET /api/v1/openapi.json.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from kernel.http import ENDPOINTS, Access, Endpoint, RawBody, Req, Routes

Json = dict[str, Any]

OPENAPI_PATH = "/api/v1/openapi.json"
_DOC = web.AppKey("openapi_document", dict[str, Any])

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
                "field": {"type": ["string", "null"]},
            },
        }
    },
}

_ERRORS = {
    400: ("BadRequest", "The request is malformed (bad JSON, bad parameter, too deep)"),
    401: ("Unauthorized", "Missing, unknown, expired or revoked credentials"),
    403: ("Forbidden", "The role does not allow this action"),
    404: ("NotFound", "No such record, or one the caller may not see"),
    409: ("Conflict", "Conflicts with the current state (duplicate, idempotency key in use)"),
    410: ("Gone", "Existed, but no longer answers (a revoked or expired link)"),
    412: ("PreconditionFailed", "If-Match does not match the record's current ETag"),
    413: ("TooLarge", "The body is larger than this endpoint accepts"),
    415: ("UnsupportedMediaType", "The body's Content-Type is not one this endpoint reads"),
    422: ("Unprocessable", "A field has a value that cannot be accepted"),
    428: ("PreconditionRequired", "The update needs an If-Match header"),
    429: ("TooManyRequests", "Slow down; Retry-After says when to try again"),
    503: ("Unavailable", "A dependency is unavailable; retry later"),
}


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _model_schema(model: Any, components: Json) -> Json:
    """The schema of one model, its named parts added to `components`."""
    (schema,), comps = msgspec.json.schema_components(
        [model], ref_template="#/components/schemas/{name}"
    )
    for name, comp in comps.items():
        # Two different models of one class name would silently replace each other.
        if name in components and components[name] != comp:
            raise ValueError(f"two different models are both named {name!r} in the API")
        components[name] = comp
    return schema


def _resolve(schema: Json, components: Json) -> Json:
    ref = schema.get("$ref")
    if ref:
        found: Json = components.get(ref.rsplit("/", 1)[1], {})
        return found
    return schema


def _parameters(model: Any, where: str, components: Json) -> list[Json]:
    if model is None:
        return []
    schema = _resolve(_model_schema(model, components), components)
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        param: Json = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": prop,
        }
        if "description" in prop:
            param["description"] = prop["description"]
        if prop.get("type") == "array":
            param["style"] = "form"
            param["explode"] = False
        out.append(param)
    return out


def _error_codes(ep: Endpoint) -> list[int]:
    codes = set(ep.errors)
    if not ep.access.is_public:
        codes.add(401)
        # 403 for a role the endpoint refuses, or (unsafe methods) a cookie-signed request
        # without the CSRF header
        if ep.access.roles != ("admin", "manager", "rep", "viewer") or ep.method != "GET":
            codes.add(403)
    if ep.access.scope is not None or ep.path_model is not None:
        codes.add(404)
    if ep.path_model is not None or ep.query_model is not None or ep.body_model is not None:
        codes.update((400, 422))
    if ep.body_model is not None:
        codes.update((413, 415))
    if ep.websocket:
        codes.add(400)  # a plain GET without the upgrade
    return sorted(codes)


def _operation(ep: Endpoint, components: Json) -> Json:
    op: Json = {
        "operationId": ep.operation_id,
        "summary": ep.summary,
        "tags": [ep.tag],
        "description": "\n\n".join(p for p in (ep.description, ep.access.describe()) if p),
        "x-access": {
            "roles": list(ep.access.roles) or "public",
            "scope": "record" if ep.access.scope is not None else ep.access.reason,
        },
    }
    if ep.access.is_public:
        op["security"] = []
    params = _parameters(ep.path_model, "path", components) + _parameters(
        ep.query_model, "query", components
    )
    if params:
        op["parameters"] = params
    if isinstance(ep.body_model, RawBody):
        op["requestBody"] = {
            "required": True,
            "description": ep.body_model.description,
            "content": {ct: {"schema": {"type": "string"}} for ct in ep.body_model.content_types},
        }
    elif ep.body_model is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _model_schema(ep.body_model, components)}},
        }
    responses: Json = {}
    ok = str(ep.status)
    if ep.websocket:
        responses["101"] = {"description": "Switching to the WebSocket protocol"}
    elif ep.content_type is not None:
        # A JSON dialect (application/geo+json) can still declare its model with response=.
        schema = (
            {"type": "string"}
            if ep.response_model is None
            else _model_schema(ep.response_model, components)
        )
        # Several media types (a file in the format the path names) are comma-separated.
        media = [ct.strip() for ct in ep.content_type.split(",") if ct.strip()]
        responses[ok] = {"description": "OK", "content": {ct: {"schema": schema} for ct in media}}
    elif ep.response_model is None or ep.status == 204:
        responses[ok] = {"description": "Done"}
    else:
        responses[ok] = {
            "description": "OK",
            "content": {
                "application/json": {"schema": _model_schema(ep.response_model, components)}
            },
        }
    for code in _error_codes(ep):
        responses[str(code)] = {"$ref": f"#/components/responses/{_ERRORS[code][0]}"}
    op["responses"] = responses
    return op


def _oas_path(path: str) -> str:
    """aiohttp's `{name:regex}` placeholders become OpenAPI's `{name}`."""
    return re.sub(r"{(\w+):[^}]+}", r"{\1}", path)


def document(app: web.Application) -> Json:
    components: Json = {"Error": ERROR_SCHEMA}
    paths: Json = {}
    tags: dict[str, Json] = {}
    declared: list[Endpoint] = app.get(ENDPOINTS, [])
    for ep in sorted(declared, key=lambda e: (e.path, e.method)):
        paths.setdefault(_oas_path(ep.path), {})[ep.method.lower()] = _operation(ep, components)
        tags.setdefault(ep.tag, {"name": ep.tag})
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "fieldmesh API",
            "version": "1.0.0",
            "description": (
                "Field-operations CRM. Authenticate with `Authorization: Bearer <token>` "
                "(POST /api/v1/auth/token) or the session cookie. Errors always have the shape "
                '{"error": {"code", "message", "field"}}.'
            ),
        },
        "servers": [{"url": "/"}],
        "tags": sorted(tags.values(), key=lambda t: t["name"]),
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                # unsafe methods signed in by the cookie also need an X-Requested-With header
                "session": {"type": "apiKey", "in": "cookie", "name": "fm_session"},
            },
            "schemas": components,
            "responses": {
                name: {
                    "description": text,
                    "content": {"application/json": {"schema": _ref("Error")}},
                }
                for name, text in _ERRORS.values()
            },
        },
    }


routes = Routes("meta", "The API's own description")


@routes.get(
    OPENAPI_PATH,
    access=Access.public("the API's description holds no data"),
    summary="This OpenAPI 3.1 document",
    content_type="application/json",
)
async def openapi_json(req: Req) -> web.StreamResponse:
    return web.json_response(req.app[_DOC])


async def _generate(app: web.Application) -> None:
    # Once, when every module is mounted: the declarations do not change while serving.
    app[_DOC].update(document(app))


def mount(app: web.Application) -> None:
    routes.mount(app)
    app[_DOC] = {}
    app.on_startup.append(_generate)
