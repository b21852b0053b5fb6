"""HTTP API of crm_sync (webhook delivery runs as a job: crm_sync.jobs).

Webhooks and connectors are managed by admins; the inbound push is authenticated by its
connector's HMAC signature (no user). Assets belong to an account: a caller reads, lists,
creates, changes and deletes assets only on accounts they may see (`crm.access`); another
account's asset answers 404, as if it did not exist. Linking a device to an asset is checked
too (`check_device_link`): the link makes the device visible through the account.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import date, datetime
from typing import Annotated, Any

import msgspec
import psycopg.errors
from aiohttp import web
from psycopg import AsyncConnection, sql

from crm import hooks
from crm.access import account_clause, require_account
from crm.entities import ASSETS
from crm.schema import Row, models_for, to_values
from crm.store import check_if_match, etag
from crm_sync import inbound, webhooks
from crm_sync.errors import BadSignature, InvalidInput
from crm_sync.signing import HEADER, verify
from kernel import jobs
from kernel.errors import ApiError, Conflict, NotFound, Unprocessable
from kernel.http import Access, RawBody, Reply, Req, Routes, decode_json
from kernel.principal import Principal
from telemetry.access import may_see_device

routes = Routes("crm_sync", "Webhooks out, connectors in, and the assets of accounts")

Id = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
ConnectorName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="lowercase letters, digits, '-' or '_'",
    ),
]
Limit = Annotated[int, msgspec.Meta(ge=1, le=1000, description="page size")]


class IdPath(msgspec.Struct, frozen=True):
    id: Id


class ConnectorPath(msgspec.Struct, frozen=True):
    name: ConnectorName


# --------------------------------------------------------------------------- webhooks


class SubscriptionIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=webhooks.MAX_URL_LENGTH)]
    event_types: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=32)
    ]


class SubscriptionCreated(msgspec.Struct, frozen=True):
    id: int
    url: str
    event_types: list[str]
    secret: str  # shown once


class DeliveryOut(msgspec.Struct, frozen=True):
    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None


class DeliveryQuery(msgspec.Struct, frozen=True):
    limit: Limit = 500


class DeliveryPage(msgspec.Struct, frozen=True):
    items: list[DeliveryOut]


class Replayed(msgspec.Struct, frozen=True):
    id: int
    status: str


@routes.post(
    "/api/v1/webhooks/subscriptions",
    access=Access.admin(),
    summary="Subscribe a URL to event types; the signing secret is returned once",
    description="The URL must be http(s), at most 2,048 characters, with a host of at most "
    "253; it must not be, or resolve to, a loopback, private, link-local, CGNAT, multicast, "
    "reserved or unspecified address unless FIELDMESH_WEBHOOK_ALLOW names it.",
    status=201,
)
async def create_subscription(req: Req, body: SubscriptionIn) -> SubscriptionCreated:
    try:
        # resolving the host blocks: off the event loop
        url = await asyncio.to_thread(webhooks.validate_url, body.url, req.settings.webhook_allow)
        types = webhooks.validate_event_types(body.event_types)
    except InvalidInput as exc:
        raise Unprocessable(exc.message, field=exc.field) from exc
    secret = secrets.token_hex(32)
    async with req.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO webhook_subscriptions (url, event_types, secret) VALUES (%s, %s, %s) "
            "RETURNING id",
            (url, types, secret),
        )
        row = await cur.fetchone()
    assert row is not None
    return SubscriptionCreated(int(row[0]), url, types, secret)


@routes.get(
    "/api/v1/webhooks/subscriptions/{id}/deliveries",
    access=Access.admin(),
    summary="A subscription's deliveries, newest first, with their status",
)
async def list_deliveries(req: Req, path: IdPath, query: DeliveryQuery) -> DeliveryPage:
    async with req.connection() as conn:
        cur = await conn.execute("SELECT 1 FROM webhook_subscriptions WHERE id = %s", (path.id,))
        if await cur.fetchone() is None:
            raise NotFound(f"no webhook subscription {path.id}", field="id")
        cur = await conn.execute(
            "SELECT id, event_id, event_type, status, attempts, last_status, last_error, "
            "next_attempt_at, delivered_at FROM webhook_outbox WHERE subscription_id = %s "
            "ORDER BY id DESC LIMIT %s",
            (path.id, query.limit),
        )
        rows = await cur.fetchall()
    return DeliveryPage([DeliveryOut(*r) for r in rows])


@routes.post(
    "/api/v1/webhooks/deliveries/{id}/replay",
    access=Access.admin(),
    summary="Send a delivery again (delivered or dead): back to pending, due now",
    status=202,
)
async def replay_delivery(req: Req, path: IdPath) -> Replayed:
    async with req.connection() as conn:
        cur = await conn.execute(
            "UPDATE webhook_outbox SET status = 'pending', attempts = 0, next_attempt_at = now() "
            "WHERE id = %s",
            (path.id,),
        )
        if cur.rowcount == 0:
            raise NotFound(f"no delivery {path.id}", field="id")
        await jobs.enqueue(conn, webhooks.DELIVER_TASK, dedupe_key=webhooks.DELIVER_TASK)
    return Replayed(path.id, "pending")


@routes.get(
    "/api/v1/webhooks/health",
    access=Access.admin(),
    summary="The webhook dispatcher's health: last run, errors, pending, due and dead deliveries",
    description="`ok` is false when no dispatcher runs in this process, its last round "
    "failed, or a due delivery waits longer than a minute.",
)
async def dispatcher_health(req: Req) -> webhooks.DispatcherHealth:
    async with req.connection() as conn:
        return await webhooks.health(conn)


# --------------------------------------------------------------------------- connectors


class ConnectorIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: ConnectorName


class ConnectorCreated(msgspec.Struct, frozen=True):
    name: str
    secret: str  # shown once


class Counts(msgspec.Struct, frozen=True):
    created: int
    updated: int


class InboundResult(msgspec.Struct, frozen=True):
    accounts: Counts
    contacts: Counts


@routes.post(
    "/api/v1/connectors",
    access=Access.admin(),
    summary="Create an inbound connector; its signing secret is returned once",
    status=201,
)
async def create_connector(req: Req, body: ConnectorIn) -> ConnectorCreated:
    secret = secrets.token_hex(32)
    try:
        async with req.connection() as conn:
            await conn.execute(
                "INSERT INTO inbound_connectors (name, secret) VALUES (%s, %s)",
                (body.name, secret),
            )
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(f"connector {body.name!r} exists", field="name") from exc
    return ConnectorCreated(body.name, secret)


@routes.post(
    "/api/v1/connectors/{name}/inbound",
    access=Access.public("authenticated by the connector's HMAC signature"),
    summary="An external CRM pushes accounts and contacts (upserted by external id)",
    description=f"The body is signed with the connector's secret in the `{HEADER}` header "
    "(see crm_sync.signing); a missing, stale or wrong signature is a 401. The batch lands "
    "whole or not at all, through the CRM's own rules.",
    body=RawBody(
        ("application/json",),
        '{"accounts": [{"external_id", "name", "type"?, "address"?}], "contacts": '
        '[{"external_id", "first_name"?, "last_name"?, "email"?, "phone"?, '
        '"account_external_id"?, "role"?}]}, at most 5,000 records',
    ),
    max_body_bytes=8 * 1024 * 1024,
    errors=(401, 409),
)
async def inbound_push(req: Req, path: ConnectorPath, body: bytes) -> InboundResult:
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT secret FROM inbound_connectors WHERE name = %s", (path.name,)
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no connector {path.name!r}", field="name")
        try:
            verify(str(row[0]).encode(), req.header(HEADER), body, now_s=time.time())
        except BadSignature as exc:
            raise ApiError(str(exc), code="bad_signature", status=401) from exc
        # Only a signed body is decoded: strangers learn nothing about the format.
        batch = decode_json(body, inbound.InboundBatch)
        inbound.check_batch(batch)
        async with conn.transaction():
            counts = await inbound.upsert(conn, batch, inbound.connector_principal(path.name))
            await conn.execute(
                "UPDATE inbound_connectors SET last_used_at = now() WHERE name = %s",
                (path.name,),
            )
    return InboundResult(
        Counts(counts.accounts_created, counts.accounts_updated),
        Counts(counts.contacts_created, counts.contacts_updated),
    )


# --------------------------------------------------------------------------- assets
# The request models come from crm.entities.ASSETS (crm.schema.models_for), as every CRM
# entity's do, so /meta/entities, validation and its plausibility limits agree. Changes and
# deletes need If-Match with the asset's ETag ("<id>.<version>"; a trigger bumps the version
# on every update): 412 when stale, 428 when missing, as for the CRM's records.

_ASSET_COLUMNS = (
    "id, account_id, device_id, equipment_model, serial, installed_on, contract_tier, "
    "sla_hours, required_skills, created_at, updated_at, version"
)
ASSET_MODELS = models_for(ASSETS)


class AssetOut(msgspec.Struct, frozen=True):
    id: int
    account_id: int
    device_id: str | None
    equipment_model: str
    serial: str | None
    installed_on: date | None
    contract_tier: str
    sla_hours: int
    required_skills: list[str]
    created_at: datetime
    updated_at: datetime
    version: int


class AssetListQuery(msgspec.Struct, frozen=True):
    account_id: Id


class AssetPage(msgspec.Struct, frozen=True):
    items: list[AssetOut]


def _asset_reply(row: tuple[Any, ...], status: int = 200) -> Reply[AssetOut]:
    out = AssetOut(*row)
    return Reply(out, status, {"ETag": etag({"id": out.id, "version": out.version})})


async def asset_scope(req: Req, path: IdPath) -> None:
    """404 unless the asset exists and the caller may see its account."""
    visible, params = account_clause(req.user, sql.Identifier("a", "account_id"))
    async with req.connection() as conn:
        cur = await conn.execute(
            sql.SQL("SELECT 1 FROM assets a WHERE a.id = %s AND {}").format(visible),
            [path.id, *params],
        )
        if await cur.fetchone() is None:
            raise NotFound(f"no asset {path.id}", field="id")


async def check_device_link(
    conn: AsyncConnection[Any], principal: Principal, device_id: str
) -> None:
    """422 on `device_id` unless the caller may link that device to an asset.

    Linking a device makes it visible through the asset's account, so a caller may link
    only a device they already see (`telemetry.access`: through its account or its rep),
    or, for admins and managers, a device seen through nothing yet (no asset, no rep).
    Missing and refused devices get the same answer, so a device's existence does not leak.
    """
    if await may_see_device(conn, principal, device_id):
        return
    if principal.role in ("admin", "manager"):
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM device d WHERE d.device_id = %s)"
            " AND NOT EXISTS (SELECT 1 FROM device_scope ds WHERE ds.device_id = %s)",
            (device_id, device_id),
        )
        row = await cur.fetchone()
        if row and row[0]:
            return
    raise Unprocessable(
        f"device_id: no device {device_id!r} that you may link",
        field="device_id",
        code="unknown_reference",
    )


async def _locked_asset(conn: AsyncConnection[Any], asset_id: int, if_match: str | None) -> Row:
    """The asset's row, locked, once If-Match names its current version (else 428 or 412)."""
    cur = await conn.execute(
        "SELECT id, version, device_id FROM assets WHERE id = %s FOR UPDATE", (asset_id,)
    )
    found = await cur.fetchone()
    if found is None:
        raise NotFound(f"no asset {asset_id}", field="id")
    current: Row = {"id": found[0], "version": found[1], "device_id": found[2]}
    check_if_match(ASSETS, current, if_match)
    return current


@routes.post(
    "/api/v1/assets",
    access=Access.write(
        unscoped="the body's account must be one the caller may see, and its device one "
        "they may link (one they see, or for admins and managers one linked to nothing); "
        "others are refused as unknown (422)"
    ),
    summary="Create an asset (a piece of equipment) on an account",
    description="Answers with the asset's ETag, for If-Match on later changes.",
    body=ASSET_MODELS.create,
    response=AssetOut,
    status=201,
    errors=(409,),
)
async def create_asset(req: Req, body: Any) -> Reply[AssetOut]:
    values = to_values(ASSETS, body)
    account_id = values["account_id"]
    visible, params = account_clause(req.user, sql.Identifier("a", "id"))
    async with req.connection() as conn:
        cur = await conn.execute(
            sql.SQL("SELECT 1 FROM accounts a WHERE a.id = %s AND {}").format(visible),
            [account_id, *params],
        )
        if await cur.fetchone() is None:
            # the same answer whether the account is missing or not visible
            raise Unprocessable(
                f"account_id: account {account_id} not found",
                field="account_id",
                code="unknown_reference",
            )
        if values.get("device_id") is not None:
            await check_device_link(conn, req.user, values["device_id"])
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in values)
        marks = sql.SQL(", ").join(sql.Placeholder() for _ in values)
        try:
            cur = await conn.execute(
                sql.SQL("INSERT INTO assets ({}) VALUES ({}) RETURNING {}").format(
                    columns, marks, sql.SQL(_ASSET_COLUMNS)
                ),
                list(values.values()),
            )
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict("that device already belongs to an asset", field="device_id") from exc
        row = await cur.fetchone()
    assert row is not None
    return _asset_reply(row, 201)


@routes.get(
    "/api/v1/assets",
    access=Access.read(unscoped="the account is checked: one the caller may not see answers 404"),
    summary="The assets of one account",
    errors=(404,),
)
async def list_assets(req: Req, query: AssetListQuery) -> AssetPage:
    await require_account(req, query.account_id)
    async with req.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_ASSET_COLUMNS} FROM assets WHERE account_id = %s ORDER BY id LIMIT 5000",
            (query.account_id,),
        )
        rows = await cur.fetchall()
    return AssetPage([AssetOut(*r) for r in rows])


@routes.get(
    "/api/v1/assets/{id}",
    access=Access.read(scope=asset_scope),
    summary="One asset, with its ETag",
    response=AssetOut,
)
async def get_asset(req: Req, path: IdPath) -> Reply[AssetOut]:
    async with req.connection() as conn:
        cur = await conn.execute(f"SELECT {_ASSET_COLUMNS} FROM assets WHERE id = %s", (path.id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no asset {path.id}", field="id")
    return _asset_reply(row)


@routes.patch(
    "/api/v1/assets/{id}",
    access=Access.write(scope=asset_scope),
    summary="Change an asset (its account stays; a new device is checked as on create)",
    description="Only the fields given change; `null` clears an optional one. Needs "
    "`If-Match` with the asset's ETag (412 when stale, 428 when missing). A device given "
    "must be one the caller may link (one they see, or for admins and managers one linked "
    "to nothing); another is refused as unknown (422 on `device_id`).",
    body=ASSET_MODELS.patch,
    response=AssetOut,
    errors=(409, 412, 422, 428),
)
async def patch_asset(req: Req, path: IdPath, body: Any) -> Reply[AssetOut]:
    changes = to_values(ASSETS, body)
    if "account_id" in changes:
        raise Unprocessable(
            "account_id: an asset stays on its account (delete it and add it to the other)",
            field="account_id",
        )
    async with req.connection() as conn, conn.transaction():
        current = await _locked_asset(conn, path.id, req.header("If-Match"))
        device = changes.get("device_id")
        if device is not None and device != current["device_id"]:
            await check_device_link(conn, req.user, device)
        if changes:
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = %s").format(sql.Identifier(f)) for f in changes
            )
            query = sql.SQL("UPDATE assets SET {} WHERE id = %s").format(assignments)
            try:
                await conn.execute(query, [*changes.values(), path.id])
            except psycopg.errors.UniqueViolation as exc:
                raise Conflict(
                    "that device already belongs to an asset", field="device_id"
                ) from exc
        cur = await conn.execute(f"SELECT {_ASSET_COLUMNS} FROM assets WHERE id = %s", (path.id,))
        row = await cur.fetchone()
    assert row is not None
    return _asset_reply(row)


@routes.delete(
    "/api/v1/assets/{id}",
    access=Access.write(scope=asset_scope),
    summary="Delete an asset (its device, if any, is then linked to nothing)",
    description="Needs `If-Match` with the asset's ETag (412 when stale, 428 when missing).",
    response=None,
    status=204,
    errors=(412, 428),
)
async def delete_asset(req: Req, path: IdPath) -> None:
    async with req.connection() as conn, conn.transaction():
        await _locked_asset(conn, path.id, req.header("If-Match"))
        await conn.execute("DELETE FROM assets WHERE id = %s", (path.id,))


def setup(app: web.Application) -> None:
    hooks.install()  # the CRM's rules for the records the inbound connector writes
    routes.mount(app)
