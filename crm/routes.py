"""HTTP routes of the CRM under /api/v1 (aiohttp), and their OpenAPI fragment.

Generic CRUD for every entity in crm.entities, plus auth, lead conversion, contact dedupe
and merge, account hierarchy roll-ups, contact roles, timelines, audit, pipeline analytics,
and CSV import/export jobs. Records the caller may not see answer 404, never 403.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from crm import analytics, csvio, hooks, records
from crm.entities import ENTITIES, Entity, parse_body, parse_datetime
from crm.errors import CrmError
from crm.filters import parse_filter_param, parse_sort
from crm.openapi_spec import fragment
from crm.store import (
    MAX_LIMIT,
    Page,
    Row,
    create_record,
    db_errors,
    delete_record,
    etag,
    get_record,
    list_records,
    update_record,
)
from identity import auth
from identity.auth import current_user
from kernel.openapi import add_fragment
from kernel.principal import AuthError, Principal
from kernel.web import DB_POOL

API = "/api/v1"
JOBS = web.AppKey("crm_jobs", set[asyncio.Future[None]])
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


def _time_param(request: web.Request, name: str) -> dt.datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        if len(raw) == 10:
            return dt.datetime.fromisoformat(raw).replace(tzinfo=dt.UTC)
        return parse_datetime(raw)
    except ValueError as exc:
        raise CrmError(
            f"{name}: not an ISO 8601 date or time: {exc}", field=name, status=400
        ) from None


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


# --------------------------------------------------------------------------- auth routes


async def token_handler(request: web.Request) -> web.Response:
    body = await read_json(request)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("email"), str)
        or not isinstance(body.get("password"), str)
    ):
        raise CrmError(
            'the body must be {"email": ..., "password": ...}', field="email", status=422
        )
    if "\x00" in body["email"] + body["password"]:
        raise AuthError("wrong e-mail or password")
    token_id, token = await _with_conn(
        request, lambda conn: auth.login(conn, body["email"], body["password"])
    )
    return json_response({"token": token, "token_id": token_id}, status=201)


async def me_handler(request: web.Request) -> web.Response:
    p = await current_user(request)
    return json_response(
        {
            "user_id": p.user_id,
            "email": p.email,
            "role": p.role,
            "territory_id": p.territory_id,
            "team_user_ids": list(p.team_user_ids),
            "team_territory_ids": list(p.team_territory_ids),
        }
    )


async def tokens_list_handler(request: web.Request) -> web.Response:
    p = await current_user(request)

    async def run(conn: Conn) -> list[Row]:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT id, name, prefix, created_at, expires_at, last_used_at, revoked_at FROM api_tokens "
            "WHERE user_id = %s ORDER BY id",
            (p.user_id,),
        )
        return await cur.fetchall()

    return json_response({"items": await _with_conn(request, run)})


async def tokens_create_handler(request: web.Request) -> web.Response:
    p = await current_user(request)
    body = await read_json(request) if request.can_read_body else {}
    if not isinstance(body, dict):
        raise CrmError("the body must be a JSON object", status=400, code="bad_request")
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > 200 or "\x00" in name:
        raise CrmError("name must be a string of up to 200 characters", field="name", status=422)
    token_id, token = await _with_conn(
        request, lambda conn: auth.issue_token(conn, p.user_id, name)
    )
    return json_response({"token": token, "token_id": token_id}, status=201)


async def tokens_revoke_handler(request: web.Request) -> web.Response:
    p = await current_user(request)
    token_id = _record_id(request)
    revoked = await _with_conn(request, lambda conn: auth.revoke_token(conn, token_id, p))
    auth.forget_tokens()  # again after the commit, in case a request re-cached it meanwhile
    if not revoked:
        raise CrmError(f"token {token_id} not found", status=404, code="not_found")
    return web.Response(status=204)


# --------------------------------------------------------------------------- record operations


async def convert_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    lead_id = _record_id(request)
    body = await read_json(request) if request.can_read_body else {}
    if not isinstance(body, dict):
        raise CrmError("the body must be a JSON object", status=400)
    unknown = set(body) - {"account_id", "create_opportunity", "account", "contact", "opportunity"}
    if unknown:
        raise CrmError(
            f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0], status=422
        )
    options: Row = {}
    if body.get("account_id") is not None:
        if (
            isinstance(body["account_id"], bool)
            or not isinstance(body["account_id"], int)
            or body["account_id"] < 1
        ):
            raise CrmError("account_id must be a positive integer", field="account_id", status=422)
        options["account_id"] = body["account_id"]
    if "create_opportunity" in body:
        if not isinstance(body["create_opportunity"], bool):
            raise CrmError(
                "create_opportunity must be true or false", field="create_opportunity", status=422
            )
        options["create_opportunity"] = body["create_opportunity"]
    for part, ent in (
        ("account", "accounts"),
        ("contact", "contacts"),
        ("opportunity", "opportunities"),
    ):
        if body.get(part) is not None:
            options[part] = parse_body(ENTITIES[ent], body[part], partial=True)

    async def run(conn: Conn) -> tuple[int, Any, dict[str, str]]:
        async with db_errors():
            result = await records.convert_lead(conn, principal, lead_id, options)
        return 200, result, {}

    return await _idempotent(request, principal, run)


async def duplicates_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    groups = await _with_conn(request, lambda conn: records.duplicate_groups(conn, principal))
    return json_response({"items": groups})


async def merge_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    survivor = _record_id(request)
    body = await read_json(request)
    ids = body.get("merge_ids") if isinstance(body, dict) else None
    if (
        not isinstance(ids, list)
        or not ids
        or any(isinstance(i, bool) or not isinstance(i, int) or not 1 <= i < 2**63 for i in ids)
    ):
        raise CrmError(
            "merge_ids must be a non-empty list of contact ids", field="merge_ids", status=422
        )
    row = await _with_conn(
        request, lambda conn: records.merge_contacts(conn, principal, survivor, ids)
    )
    return json_response(row, headers={"ETag": etag(row)})


async def rollup_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    account_id = _record_id(request)
    return json_response(
        await _with_conn(request, lambda conn: records.rollup(conn, principal, account_id))
    )


async def timeline_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    account_id = _record_id(request)
    limit = _int_param(request, "limit", 50, 1, MAX_LIMIT)
    page = await _with_conn(
        request,
        lambda conn: records.timeline(
            conn, principal, account_id, request.query.get("cursor"), limit
        ),
    )
    return json_response(_page(page))


async def account_contacts_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    account_id = _record_id(request)
    rows = await _with_conn(
        request, lambda conn: records.account_contacts(conn, principal, account_id)
    )
    return json_response({"items": rows})


async def account_contact_put_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    account_id = _record_id(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise CrmError("the body must be a JSON object", status=400)
    contact_id = body.get("contact_id")
    if (
        isinstance(contact_id, bool)
        or not isinstance(contact_id, int)
        or not 1 <= contact_id < 2**63
    ):
        raise CrmError("contact_id must be a positive integer", field="contact_id", status=422)
    role = body.get("role", "secondary")
    if not isinstance(role, str):
        raise CrmError("role must be a string", field="role", status=422)

    async def run(conn: Conn) -> Row:
        try:
            await get_record(conn, ENTITIES["contacts"], principal, contact_id)
        except CrmError:
            raise
        except Exception as exc:
            if getattr(exc, "status", 0) == 404:
                raise CrmError(
                    f"contact_id: contact {contact_id} not found", field="contact_id", status=422
                ) from None
            raise
        return await records.set_account_contact(conn, principal, account_id, contact_id, role)

    return json_response(await _with_conn(request, run))


async def account_contact_delete_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    account_id = _record_id(request)
    contact_id = _record_id(request, "contact_id")
    await _with_conn(
        request,
        lambda conn: records.remove_account_contact(conn, principal, account_id, contact_id),
    )
    return web.Response(status=204)


async def stage_history_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    opp_id = _record_id(request)

    async def run(conn: Conn) -> list[Row]:
        await get_record(conn, ENTITIES["opportunities"], principal, opp_id)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT id, from_stage_id, to_stage_id, amount, changed_by, changed_at FROM opportunity_stage_history "
            "WHERE opportunity_id = %s ORDER BY changed_at, id",
            (opp_id,),
        )
        return await cur.fetchall()

    return json_response({"items": await _with_conn(request, run)})


# --------------------------------------------------------------------------- analytics


async def _default_pipeline(request: web.Request, conn: Conn) -> int:
    if "pipeline_id" in request.query:
        return _int_param(request, "pipeline_id", 0, 1, 2**63 - 1)
    cur = await conn.execute("SELECT id FROM pipelines ORDER BY is_default DESC, id LIMIT 1")
    row = await cur.fetchone()
    if row is None:
        raise CrmError("no pipeline exists", status=404, code="not_found")
    return int(row[0])


async def stages_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)

    async def run(conn: Conn) -> Any:
        pid = await _default_pipeline(request, conn)
        return {"pipeline_id": pid, "items": await analytics.stage_summary(conn, principal, pid)}

    return json_response(await _with_conn(request, run))


async def conversion_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    end = _time_param(request, "end") or dt.datetime.now(dt.UTC)
    start = _time_param(request, "start") or end - dt.timedelta(days=90)
    if start >= end:
        raise CrmError("start must be before end", field="start", status=400)

    async def run(conn: Conn) -> Any:
        pid = await _default_pipeline(request, conn)
        rows = await analytics.conversion(conn, principal, pid, start, end)
        for r in rows:
            r["rate"] = round(r["advanced"] / r["entered"], 4) if r["entered"] else None
        return {"pipeline_id": pid, "start": start, "end": end, "items": rows}

    return json_response(await _with_conn(request, run))


async def forecast_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    start, end = _time_param(request, "start"), _time_param(request, "end")

    async def run(conn: Conn) -> Any:
        pid = await _default_pipeline(request, conn) if "pipeline_id" in request.query else None
        rows = await analytics.forecast(
            conn, principal, pid, start.date() if start else None, end.date() if end else None
        )
        return {"pipeline_id": pid, "items": rows}

    return json_response(await _with_conn(request, run))


async def owners_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    start, end = _time_param(request, "start"), _time_param(request, "end")
    rows = await _with_conn(request, lambda conn: analytics.owners(conn, principal, start, end))
    return json_response({"items": rows})


# --------------------------------------------------------------------------- import / export jobs


def _spawn(app: web.Application, coro: Awaitable[None]) -> None:
    task = asyncio.ensure_future(coro)
    app[JOBS].add(task)
    task.add_done_callback(app[JOBS].discard)


async def import_create_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    principal.require_write()
    entity_name_ = request.query.get("entity", "")
    entity = ENTITIES.get(entity_name_)
    if entity is None or not entity.csv:
        raise CrmError("entity must be accounts, contacts or leads", field="entity", status=400)
    key = request.query.get("key", "id")
    if key not in entity.upsert_keys:
        raise CrmError(
            f"key must be one of {', '.join(entity.upsert_keys)}", field="key", status=400
        )
    content = await request.read()
    if not content:
        raise CrmError("the body must be the CSV file", status=400)
    try:  # a bad header is refused now; bad rows are reported by the job
        header = next(csv.reader(io.StringIO(content.decode("utf-8-sig"))), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CrmError(f"the body is not a UTF-8 CSV file: {exc}", status=400) from None
    csvio.check_header(entity, header, key)

    async def run(conn: Conn) -> tuple[int, Any, dict[str, str]]:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "INSERT INTO import_jobs (entity, key_field, filename, content, created_by) VALUES (%s, %s, %s, %s, %s) "
            "RETURNING id, entity, key_field, status, created_at",
            (entity.name, key, request.query.get("filename"), content, principal.user_id),
        )
        job = await cur.fetchone()
        assert job is not None
        return 202, job, {"Location": f"{API}/imports/{job['id']}"}

    response = await _idempotent(request, principal, run)
    if response.headers.get("Idempotent-Replayed") != "true":
        job_id = json.loads(response.body)["id"]  # type: ignore[arg-type]
        _spawn(request.app, csvio.run_import(request.app[DB_POOL], job_id))
    return response


_IMPORT_COLS = (
    "id, entity, key_field, filename, status, total_rows, processed_rows, inserted_rows, updated_rows, "
    "failed_rows, error, created_by, created_at, started_at, finished_at, reverted_at"
)


async def _own_job(conn: Conn, principal: Principal, table: str, cols: str, job_id: int) -> Row:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"SELECT {cols} FROM {table} WHERE id = %s", (job_id,))
    job = await cur.fetchone()
    if job is None or (job["created_by"] != principal.user_id and not principal.is_admin):
        raise CrmError(f"job {job_id} not found", status=404, code="not_found")
    return job


async def import_get_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    job_id = _record_id(request)
    return json_response(
        await _with_conn(
            request, lambda c: _own_job(c, principal, "import_jobs", _IMPORT_COLS, job_id)
        )
    )


async def import_errors_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    job_id = _record_id(request)

    async def run(conn: Conn) -> list[Row]:
        await _own_job(conn, principal, "import_jobs", _IMPORT_COLS, job_id)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT line_no, field, message, raw FROM import_job_errors WHERE job_id = %s ORDER BY line_no",
            (job_id,),
        )
        return await cur.fetchall()

    return json_response({"items": await _with_conn(request, run)})


async def import_revert_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    principal.require_write()
    job_id = _record_id(request)

    async def run(conn: Conn) -> Row:
        await csvio.revert_import(conn, principal, job_id)
        return await _own_job(conn, principal, "import_jobs", _IMPORT_COLS, job_id)

    return json_response(await _with_conn(request, run))


_EXPORT_COLS = "id, entity, filter, status, total_rows, processed_rows, error, created_by, created_at, finished_at"


async def export_create_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise CrmError("the body must be a JSON object", status=400)
    entity = ENTITIES.get(body.get("entity", "")) if isinstance(body.get("entity"), str) else None
    if entity is None or not entity.csv:
        raise CrmError("entity must be accounts, contacts or leads", field="entity", status=422)
    if set(body) - {"entity", "filter"}:
        raise CrmError(
            "only entity and filter are accepted",
            field=sorted(set(body) - {"entity", "filter"})[0],
            status=422,
        )
    node = body.get("filter")
    from crm.filters import compile_filter

    compile_filter(entity, node)  # refuse a bad filter now, not in the job

    async def run(conn: Conn) -> tuple[int, Any, dict[str, str]]:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"INSERT INTO export_jobs (entity, filter, created_by) VALUES (%s, %s::jsonb, %s) RETURNING {_EXPORT_COLS}",
            (entity.name, json.dumps(node) if node is not None else None, principal.user_id),
        )
        job = await cur.fetchone()
        assert job is not None
        return 202, job, {"Location": f"{API}/exports/{job['id']}"}

    response = await _idempotent(request, principal, run)
    if response.headers.get("Idempotent-Replayed") != "true":
        job_id = json.loads(response.body)["id"]  # type: ignore[arg-type]
        _spawn(request.app, csvio.run_export(request.app[DB_POOL], job_id))
    return response


async def export_get_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    job_id = _record_id(request)
    return json_response(
        await _with_conn(
            request, lambda c: _own_job(c, principal, "export_jobs", _EXPORT_COLS, job_id)
        )
    )


async def export_download_handler(request: web.Request) -> web.Response:
    principal = await current_user(request)
    job_id = _record_id(request)

    async def run(conn: Conn) -> Row:
        return await _own_job(
            conn, principal, "export_jobs", "id, status, created_by, result, entity", job_id
        )

    job = await _with_conn(request, run)
    if job["status"] != "done":
        raise CrmError(
            f"export {job_id} is {job['status']}, not done", status=409, code="not_ready"
        )
    return web.Response(
        body=bytes(job["result"]),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{job["entity"]}-{job_id}.csv"'},
    )


# --------------------------------------------------------------------------- setup


async def _jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    app[JOBS] = set()
    yield
    jobs: set[asyncio.Future[None]] = app[JOBS]
    pending = list(jobs)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def setup(app: web.Application) -> None:
    hooks.install()
    app.cleanup_ctx.append(_jobs_ctx)
    r = app.router
    r.add_post(f"{API}/auth/token", token_handler)
    r.add_get(f"{API}/auth/me", me_handler)
    r.add_get(f"{API}/auth/tokens", tokens_list_handler)
    r.add_post(f"{API}/auth/tokens", tokens_create_handler)
    r.add_delete(f"{API}/auth/tokens/{{id}}", tokens_revoke_handler)

    r.add_post(f"{API}/leads/{{id}}/convert", convert_handler)
    r.add_get(f"{API}/contacts/duplicates", duplicates_handler)
    r.add_post(f"{API}/contacts/{{id}}/merge", merge_handler)
    r.add_get(f"{API}/accounts/{{id}}/rollup", rollup_handler)
    r.add_get(f"{API}/accounts/{{id}}/timeline", timeline_handler)
    r.add_get(f"{API}/accounts/{{id}}/contacts", account_contacts_handler)
    r.add_put(f"{API}/accounts/{{id}}/contacts", account_contact_put_handler)
    r.add_delete(f"{API}/accounts/{{id}}/contacts/{{contact_id}}", account_contact_delete_handler)
    r.add_get(f"{API}/opportunities/{{id}}/stage_history", stage_history_handler)

    r.add_get(f"{API}/analytics/pipeline/stages", stages_handler)
    r.add_get(f"{API}/analytics/pipeline/conversion", conversion_handler)
    r.add_get(f"{API}/analytics/pipeline/forecast", forecast_handler)
    r.add_get(f"{API}/analytics/pipeline/owners", owners_handler)

    r.add_post(f"{API}/imports", import_create_handler)
    r.add_get(f"{API}/imports/{{id}}", import_get_handler)
    r.add_get(f"{API}/imports/{{id}}/errors", import_errors_handler)
    r.add_post(f"{API}/imports/{{id}}/revert", import_revert_handler)
    r.add_post(f"{API}/exports", export_create_handler)
    r.add_get(f"{API}/exports/{{id}}", export_get_handler)
    r.add_get(f"{API}/exports/{{id}}/download", export_download_handler)

    names = "|".join(ENTITIES)
    ent = f"{{entity:{names}}}"
    r.add_get(f"{API}/{ent}", list_handler)
    r.add_post(f"{API}/{ent}", create_handler)
    r.add_get(f"{API}/{ent}/{{id}}", get_handler)
    r.add_patch(f"{API}/{ent}/{{id}}", update_handler)
    r.add_delete(f"{API}/{ent}/{{id}}", delete_handler)
    r.add_get(f"{API}/{ent}/{{id}}/audit", audit_handler)
    add_fragment(app, **fragment())
