"""HTTP API of crm_sync (webhook delivery runs as a job: crm_sync.jobs).

POST /api/v1/webhooks/subscriptions                   admin: {url, event_types} -> {id, secret}
GET  /api/v1/webhooks/subscriptions/{id}/deliveries   admin: every delivery with its status
POST /api/v1/webhooks/deliveries/{id}/replay          admin: send again
POST /api/v1/connectors                               admin: {name} -> {name, secret}
POST /api/v1/connectors/{name}/inbound                signed by the connector's secret:
                                                      upsert accounts and contacts
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

import psycopg
import psycopg.errors
from aiohttp import web

from crm_sync import inbound, webhooks
from crm_sync.errors import BadSignature, InvalidInput
from crm_sync.signing import HEADER, verify
from identity.auth import current_user
from kernel import jobs
from kernel.errors import ApiError, Conflict, NotFound, Unprocessable

log = logging.getLogger(__name__)


def _pool(request: web.Request) -> Any:
    from kernel.web import DB_POOL

    return request.app[DB_POOL]


async def _admin(request: web.Request) -> None:
    (await current_user(request)).require_admin()


async def _body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except json.JSONDecodeError as exc:
        raise ApiError(f"request body is not valid JSON: {exc.msg}", code="invalid_json") from exc


def _id(request: web.Request, name: str = "id") -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise ApiError(f"{name} must be an integer", field=name) from None


def _invalid(exc: InvalidInput) -> Unprocessable:
    return Unprocessable(exc.message, field=exc.field)


async def create_subscription(request: web.Request) -> web.Response:
    await _admin(request)
    body = await _body(request)
    if not isinstance(body, dict):
        raise Unprocessable("body must be an object", field="$")
    try:
        url = webhooks.validate_url(str(body.get("url", "")))
        raw_types = body.get("event_types")
        if not isinstance(raw_types, list):
            raise InvalidInput("event_types", "must be a list of event types")
        types = webhooks.validate_event_types(str(t) for t in raw_types)
    except InvalidInput as exc:
        raise _invalid(exc) from exc
    secret = secrets.token_hex(32)
    async with _pool(request).connection() as conn:
        cur = await conn.execute(
            "INSERT INTO webhook_subscriptions (url, event_types, secret) VALUES (%s, %s, %s) "
            "RETURNING id",
            (url, types, secret),
        )
        row = await cur.fetchone()
    return web.json_response(
        {"id": row[0], "url": url, "event_types": types, "secret": secret}, status=201
    )


async def list_deliveries(request: web.Request) -> web.Response:
    await _admin(request)
    sub_id = _id(request)
    async with _pool(request).connection() as conn:
        cur = await conn.execute("SELECT 1 FROM webhook_subscriptions WHERE id = %s", (sub_id,))
        if await cur.fetchone() is None:
            raise NotFound(f"no webhook subscription {sub_id}", field="id")
        cur = await conn.execute(
            "SELECT id, event_id, event_type, status, attempts, last_status, last_error, "
            "next_attempt_at, delivered_at FROM webhook_outbox WHERE subscription_id = %s "
            "ORDER BY id DESC LIMIT 500",
            (sub_id,),
        )
        rows = await cur.fetchall()
    keys = (
        "id",
        "event_id",
        "event_type",
        "status",
        "attempts",
        "last_status",
        "last_error",
        "next_attempt_at",
        "delivered_at",
    )
    items = [
        {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in zip(keys, r, strict=True)}
        for r in rows
    ]
    return web.json_response({"items": items})


async def replay_delivery(request: web.Request) -> web.Response:
    await _admin(request)
    outbox_id = _id(request)
    async with _pool(request).connection() as conn:
        cur = await conn.execute(
            "UPDATE webhook_outbox SET status = 'pending', attempts = 0, next_attempt_at = now() "
            "WHERE id = %s",
            (outbox_id,),
        )
        if cur.rowcount == 0:
            raise NotFound(f"no delivery {outbox_id}", field="id")
        await jobs.enqueue(conn, webhooks.DELIVER_TASK, dedupe_key=webhooks.DELIVER_TASK)
    return web.json_response({"id": outbox_id, "status": "pending"}, status=202)


async def create_connector(request: web.Request) -> web.Response:
    await _admin(request)
    body = await _body(request)
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str):
        raise Unprocessable("name is required", field="name")
    secret = secrets.token_hex(32)
    try:
        async with _pool(request).connection() as conn:
            await conn.execute(
                "INSERT INTO inbound_connectors (name, secret) VALUES (%s, %s)", (name, secret)
            )
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(f"connector {name!r} exists", field="name") from exc
    except psycopg.errors.CheckViolation as exc:
        raise Unprocessable(
            "name must be lowercase letters, digits, '-' or '_'", field="name"
        ) from exc
    return web.json_response({"name": name, "secret": secret}, status=201)


async def inbound_push(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    raw = await request.read()
    async with _pool(request).connection() as conn:
        cur = await conn.execute("SELECT secret FROM inbound_connectors WHERE name = %s", (name,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no connector {name!r}", field="name")
        try:
            verify(str(row[0]).encode(), request.headers.get(HEADER), raw, now_s=time.time())
        except BadSignature as exc:
            raise ApiError(str(exc), code="bad_signature", status=401) from exc
        try:
            batch = inbound.parse_batch(json.loads(raw))
        except json.JSONDecodeError as exc:
            raise ApiError(
                f"request body is not valid JSON: {exc.msg}", code="invalid_json"
            ) from exc
        except InvalidInput as exc:
            raise _invalid(exc) from exc
        try:
            async with conn.transaction():
                counts = await inbound.upsert(conn, batch)
                await conn.execute(
                    "UPDATE inbound_connectors SET last_used_at = now() WHERE name = %s", (name,)
                )
        except InvalidInput as exc:
            raise _invalid(exc) from exc
        except psycopg.errors.IntegrityError as exc:
            raise Conflict(
                f"the batch conflicts with existing records: {exc.diag.message_primary}"
            ) from exc
    return web.json_response(
        {
            "accounts": {"created": counts.accounts_created, "updated": counts.accounts_updated},
            "contacts": {"created": counts.contacts_created, "updated": counts.contacts_updated},
        }
    )


_ASSET_COLUMNS = (
    "id, account_id, device_id, equipment_model, serial, installed_on, contract_tier, "
    "sla_hours, required_skills, created_at"
)
_TIERS = ("basic", "standard", "premium")


def _asset_json(r: tuple[Any, ...]) -> dict[str, Any]:
    keys = [k.strip() for k in _ASSET_COLUMNS.split(",")]
    return {
        k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in zip(keys, r, strict=True)
    }


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    v = body.get(key)
    if v is not None and (not isinstance(v, str) or not v.strip() or len(v) > 200):
        raise Unprocessable(f"{key} must be a non-empty string", field=key)
    return v


async def create_asset(request: web.Request) -> web.Response:
    (await current_user(request)).require_write()
    body = await _body(request)
    if not isinstance(body, dict):
        raise Unprocessable("body must be an object", field="$")
    account_id = body.get("account_id")
    if not isinstance(account_id, int) or isinstance(account_id, bool):
        raise Unprocessable("account_id is required (integer)", field="account_id")
    model = _opt_str(body, "equipment_model")
    if model is None:
        raise Unprocessable("equipment_model is required", field="equipment_model")
    tier = body.get("contract_tier", "standard")
    if tier not in _TIERS:
        raise Unprocessable(
            f"contract_tier must be one of {', '.join(_TIERS)}", field="contract_tier"
        )
    sla = body.get("sla_hours", 48)
    if not isinstance(sla, int) or isinstance(sla, bool) or not 1 <= sla <= 24 * 365:
        raise Unprocessable("sla_hours must be an integer in [1, 8760]", field="sla_hours")
    skills = body.get("required_skills", [])
    if not isinstance(skills, list) or not all(isinstance(x, str) and x for x in skills):
        raise Unprocessable("required_skills must be a list of strings", field="required_skills")
    installed = _opt_str(body, "installed_on")
    async with _pool(request).connection() as conn:
        cur = await conn.execute("SELECT 1 FROM accounts WHERE id = %s", (account_id,))
        if await cur.fetchone() is None:
            raise Unprocessable(f"no account {account_id}", field="account_id")
        try:
            cur = await conn.execute(
                f"""
                INSERT INTO assets (account_id, device_id, equipment_model, serial, installed_on,
                                    contract_tier, sla_hours, required_skills)
                VALUES (%s, %s, %s, %s, %s::date, %s, %s, %s) RETURNING {_ASSET_COLUMNS}
                """,
                (
                    account_id,
                    _opt_str(body, "device_id"),
                    model,
                    _opt_str(body, "serial"),
                    installed,
                    tier,
                    sla,
                    skills,
                ),
            )
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict("that device already belongs to an asset", field="device_id") from exc
        except psycopg.errors.DataError as exc:
            raise Unprocessable(
                "installed_on must be a date (YYYY-MM-DD)", field="installed_on"
            ) from exc
        row = await cur.fetchone()
    return web.json_response(_asset_json(row), status=201)


async def get_asset(request: web.Request) -> web.Response:
    await current_user(request)
    asset_id = _id(request)
    async with _pool(request).connection() as conn:
        cur = await conn.execute(f"SELECT {_ASSET_COLUMNS} FROM assets WHERE id = %s", (asset_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no asset {asset_id}", field="id")
    return web.json_response(_asset_json(row))


async def list_assets(request: web.Request) -> web.Response:
    await current_user(request)
    try:
        account_id = int(request.query["account_id"])
    except (KeyError, ValueError):
        raise Unprocessable("account_id (integer) is required", field="account_id") from None
    async with _pool(request).connection() as conn:
        cur = await conn.execute(
            f"SELECT {_ASSET_COLUMNS} FROM assets WHERE account_id = %s ORDER BY id", (account_id,)
        )
        rows = await cur.fetchall()
    return web.json_response({"items": [_asset_json(r) for r in rows]})


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/webhooks/subscriptions", create_subscription)
    app.router.add_get("/api/v1/webhooks/subscriptions/{id}/deliveries", list_deliveries)
    app.router.add_post("/api/v1/webhooks/deliveries/{id}/replay", replay_delivery)
    app.router.add_post("/api/v1/connectors", create_connector)
    app.router.add_post("/api/v1/connectors/{name}/inbound", inbound_push)
    app.router.add_post("/api/v1/assets", create_asset)
    app.router.add_get("/api/v1/assets", list_assets)
    app.router.add_get("/api/v1/assets/{id}", get_asset)
