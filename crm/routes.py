"""The CRM's HTTP routes: every endpoint is declared on kernel.http (typed models, a declared
access policy, generated OpenAPI) in record_routes, operation_routes, analytics_routes and
job_routes; `setup` mounts them.

Transition: the users admin (/api/v1/users...) below is still plain aiohttp handlers with a
hand-written OpenAPI fragment; the identity package takes it over on the endpoint way, and
this part goes. (Sign-in and tokens, /api/v1/auth/..., are identity.routes.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from crm import hooks
from crm.analytics_routes import analytics_routes
from crm.entities import ENTITIES, USERS, Entity
from crm.errors import CrmError
from crm.filters import parse_filter_param, parse_sort
from crm.job_routes import job_routes
from crm.operation_routes import operation_routes
from crm.record_routes import all_routes
from crm.schema import FILTER_DOC, models_for, parse_body
from crm.store import (
    MAX_LIMIT,
    Page,
    Row,
    create_record,
    delete_record,
    etag,
    get_record,
    list_records,
    update_record,
)
from identity.auth import current_user
from kernel.openapi import add_fragment, error_response
from kernel.principal import Principal
from kernel.web import DB_POOL

API = "/api/v1"
_encoder = msgspec.json.Encoder(decimal_format="number")
Conn = AsyncConnection[Any]


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_encoder.encode(data), status=status, headers=headers, content_type="application/json"
    )


def _to_plain(data: Any) -> Any:
    """JSON-compatible value (for storing an idempotent response)."""
    return json.loads(_encoder.encode(data))


# --------------------------------------------------------------------------- request parsing


async def read_json(request: web.Request) -> Any:
    if not request.can_read_body:
        raise CrmError("the request needs a JSON body", status=400, code="bad_request")
    raw = await request.read()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CrmError(
            f"the body is not valid JSON: {exc}", status=400, code="invalid_json"
        ) from None


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise CrmError(f"{name} must be an integer", field=name, status=400) from None
    if not lo <= value <= hi:
        raise CrmError(f"{name} must be between {lo} and {hi}", field=name, status=400)
    return value


def _bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise CrmError(f"{name} must be true or false", field=name, status=400)


def _record_id(request: web.Request, name: str = "id") -> int:
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise CrmError(f"{name} must be an integer", field=name, status=400) from None
    if not 1 <= value < 2**63:
        raise CrmError(f"{entity_name(request)} {value} not found", status=404, code="not_found")
    return value


def entity_name(request: web.Request) -> str:
    return request.match_info.get("entity", "record")


def _page(page: Page) -> dict[str, Any]:
    out: dict[str, Any] = {"items": page.items, "next_cursor": page.next_cursor}
    if page.total is not None:
        out["total"] = page.total
    return out


# --------------------------------------------------------------------------- plumbing


async def _with_conn(request: web.Request, fn: Callable[[Conn], Awaitable[Any]]) -> Any:
    async with request.app[DB_POOL].connection() as conn, conn.transaction():
        return await fn(conn)


async def _idempotent(
    request: web.Request,
    principal: Principal,
    run: Callable[[Conn], Awaitable[tuple[int, Any, dict[str, str]]]],
) -> web.Response:
    """Run a creating request once per Idempotency-Key: a repeat with the same body gets
    the stored response (Idempotent-Replayed: true); the same key with another body is 422."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise CrmError(
            "Idempotency-Key must have 1 to 200 characters", field="Idempotency-Key", status=400
        )
    body = await request.read()
    digest = hashlib.sha256(
        b"\n".join([request.method.encode(), request.path_qs.encode(), body])
    ).hexdigest()
    async with request.app[DB_POOL].connection() as conn, conn.transaction():
        if key is not None:
            cur = await conn.execute(
                "INSERT INTO idempotency_keys (user_id, key, method, path, request_hash) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING RETURNING 1",
                (principal.user_id, key, request.method, request.path, digest),
            )
            if await cur.fetchone() is None:
                dcur = conn.cursor(row_factory=dict_row)
                await dcur.execute(
                    "SELECT request_hash, status, response FROM idempotency_keys WHERE user_id = %s AND key = %s",
                    (principal.user_id, key),
                )
                prior = await dcur.fetchone()
                assert prior is not None
                if prior["request_hash"] != digest:
                    raise CrmError(
                        "this Idempotency-Key was used for another request",
                        field="Idempotency-Key",
                        status=422,
                        code="idempotency_key_reused",
                    )
                stored = prior["response"] or {}
                return json_response(
                    stored.get("body"),
                    status=prior["status"] or 200,
                    headers={**stored.get("headers", {}), "Idempotent-Replayed": "true"},
                )
        status, payload, headers = await run(conn)
        if key is not None:
            await conn.execute(
                "UPDATE idempotency_keys SET status = %s, response = %s::jsonb WHERE user_id = %s AND key = %s",
                (
                    status,
                    json.dumps({"body": _to_plain(payload), "headers": headers}),
                    principal.user_id,
                    key,
                ),
            )
    return json_response(payload, status=status, headers=headers)


def _entity(request: web.Request) -> Entity:
    return ENTITIES[request.match_info["entity"]]


# --------------------------------------------------------------------------- generic CRUD


async def list_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    entity = _entity(request)
    sort = parse_sort(entity, request.query.get("sort"))
    node = parse_filter_param(request.query.get("filter"))
    limit = _int_param(request, "limit", 50, 1, MAX_LIMIT)
    with_total = _bool_param(request, "total")
    page = await _with_conn(
        request,
        lambda conn: list_records(
            conn,
            entity,
            principal,
            filter_node=node,
            sort=sort,
            cursor=request.query.get("cursor"),
            limit=limit,
            with_total=with_total,
            q=request.query.get("q"),
        ),
    )
    return json_response(_page(page))


async def create_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    entity = _entity(request)
    values = parse_body(entity, await read_json(request), partial=False)

    async def run(conn: Conn) -> tuple[int, Any, dict[str, str]]:
        row = await create_record(conn, entity, principal, values)
        return 201, row, {"ETag": etag(row), "Location": f"{API}/{entity.name}/{row['id']}"}

    return await _idempotent(request, principal, run)


async def get_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    entity = _entity(request)
    row = await _with_conn(
        request, lambda conn: get_record(conn, entity, principal, _record_id(request))
    )
    return json_response(row, headers={"ETag": etag(row)})


async def update_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    entity = _entity(request)
    record_id = _record_id(request)
    values = parse_body(entity, await read_json(request), partial=True)
    row = await _with_conn(
        request,
        lambda conn: update_record(
            conn, entity, principal, record_id, values, request.headers.get("If-Match")
        ),
    )
    return json_response(row, headers={"ETag": etag(row)})


async def delete_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    entity = _entity(request)
    record_id = _record_id(request)
    await _with_conn(
        request,
        lambda conn: delete_record(
            conn, entity, principal, record_id, request.headers.get("If-Match")
        ),
    )
    return web.Response(status=204)


async def audit_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    entity = _entity(request)
    record_id = _record_id(request)
    limit = _int_param(request, "limit", 100, 1, 1000)

    async def run(conn: Conn) -> list[Row]:
        await get_record(conn, entity, principal, record_id)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT id, action, field, old_value, new_value, actor_id, at, ledger_receipt FROM audit_log "
            "WHERE table_name = %s AND record_id = %s ORDER BY id DESC LIMIT %s",
            (entity.table, record_id, limit),
        )
        return await cur.fetchall()

    return json_response({"items": await _with_conn(request, run)})


# --------------------------------------------------------------------------- setup


def _legacy_fragment() -> dict[str, Any]:
    """OpenAPI of the users routes above (transition: identity declares them on the endpoint way)."""
    m = models_for(USERS)
    (create, patch, record, page), schemas = msgspec.json.schema_components(
        [m.create, m.patch, m.record, m.page], ref_template="#/components/schemas/{name}"
    )
    obj: dict[str, Any] = {"type": "object"}

    def op(op_id: str, ok: str, schema: Any, *errors: str, **more: Any) -> dict[str, Any]:
        codes = {"BadRequest": "400", "Unauthorized": "401", "Forbidden": "403"}
        codes |= {"NotFound": "404", "Conflict": "409", "Unprocessable": "422"}
        responses: dict[str, Any] = {
            ok: {"description": "OK", "content": {"application/json": {"schema": schema}}}
            if schema is not None
            else {"description": "Done"}
        }
        responses |= {codes[e]: error_response(e) for e in ("Unauthorized", *errors)}
        return {"operationId": op_id, "tags": ["auth"], "responses": responses, **more}

    def body(schema: Any) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    Json = dict[str, Any]
    rid: Json = {"name": "id", "in": "path", "required": True}
    rid["schema"] = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    limit: Json = {"name": "limit", "in": "query"}
    limit["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}
    list_params = [
        {"name": "filter", "in": "query", "schema": {"type": "string"}, "description": FILTER_DOC},
        {"name": "sort", "in": "query", "schema": {"type": "string"}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
        limit,
        {"name": "q", "in": "query", "schema": {"type": "string"}},
        {"name": "total", "in": "query", "schema": {"type": "boolean"}},
    ]
    items: Json = {"type": "object", "required": ["items"]}
    items["properties"] = {"items": {"type": "array", "items": obj}}
    users = "/api/v1/users"
    paths = {
        users: {
            "get": op("list_users", "200", page, "BadRequest", parameters=list_params),
            "post": op(
                "create_users",
                "201",
                record,
                "BadRequest",
                "Forbidden",
                "Conflict",
                "Unprocessable",
                requestBody=body(create),
            ),
        },
        users + "/{id}": {
            "get": op("get_users", "200", record, "BadRequest", "NotFound", parameters=[rid]),
            "patch": op(
                "update_users",
                "200",
                record,
                "BadRequest",
                "Forbidden",
                "NotFound",
                "Conflict",
                "Unprocessable",
                parameters=[rid],
                requestBody=body(patch),
            ),
            "delete": op(
                "delete_users",
                "204",
                None,
                "BadRequest",
                "Forbidden",
                "NotFound",
                "Conflict",
                parameters=[rid],
            ),
        },
        users + "/{id}/audit": {
            "get": op(
                "audit_users", "200", items, "BadRequest", "NotFound", parameters=[rid, limit]
            ),
        },
    }
    return {"paths": paths, "schemas": schemas, "tags": [{"name": "auth"}]}


def setup(app: web.Application) -> None:
    hooks.install()
    # Specific paths first: /contacts/duplicates before /contacts/{id}.
    for routes in (operation_routes(), analytics_routes(), job_routes(), *all_routes()):
        routes.mount(app)

    r = app.router  # transition: identity takes these over
    users = f"{API}/{{entity:users}}"
    r.add_get(users, list_handler)
    r.add_post(users, create_handler)
    r.add_get(f"{users}/{{id}}", get_handler)
    r.add_patch(f"{users}/{{id}}", update_handler)
    r.add_delete(f"{users}/{{id}}", delete_handler)
    r.add_get(f"{users}/{{id}}/audit", audit_handler)
    add_fragment(app, **_legacy_fragment())
