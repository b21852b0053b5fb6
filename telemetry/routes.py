"""Telemetry over HTTP: devices, latest values, bucketed series, dead letters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from fieldmesh.api import ApiError, NotFound
from fieldmesh.app import DB_POOL
from fieldmesh.auth import Forbidden, current_user
from fieldmesh.openapi import add_fragment, error_response
from telemetry import queries

PREFIX = "/api/v1"


def _time_param(request: web.Request, name: str, default: datetime) -> datetime:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(f"{name}: not an ISO 8601 time: {raw[:40]!r}", field=name) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ApiError(f"{name}: not an integer: {raw[:40]!r}", field=name) from None
    if not lo <= v <= hi:
        raise ApiError(f"{name}: must be between {lo} and {hi}", field=name)
    return v


async def list_devices(request: web.Request) -> web.Response:
    await current_user(request)
    kind = request.query.get("kind")
    if kind not in (None, "equipment", "phone"):
        raise ApiError("kind: one of equipment, phone", field="kind")
    limit = _int_param(request, "limit", 100, 1, 1000)
    async with request.app[DB_POOL].connection() as conn:
        items = await queries.devices(
            conn, kind=kind, limit=limit, after=request.query.get("after")
        )
    nxt = items[-1]["device_id"] if len(items) == limit else None
    return web.json_response({"items": items, "next": nxt})


async def get_device(request: web.Request) -> web.Response:
    await current_user(request)
    device_id = request.match_info["device_id"]
    async with request.app[DB_POOL].connection() as conn:
        rows = await (
            await conn.execute("SELECT 1 FROM device WHERE device_id = %s", (device_id,))
        ).fetchone()
        if rows is None:
            raise NotFound(f"no device {device_id!r}", field="device_id")
        latest = await queries.latest(conn, device_id)
        status = await (
            await conn.execute(
                "SELECT online, changed_at, firmware FROM device_status WHERE device_id = %s",
                (device_id,),
            )
        ).fetchone()
    return web.json_response(
        {
            "device_id": device_id,
            "online": status[0] if status else None,
            "status_changed_at": status[1].isoformat() if status else None,
            "firmware": status[2] if status else None,
            "latest": {
                m: {"time": t.isoformat(), "value": v} for m, (t, v) in sorted(latest.items())
            },
        }
    )


async def device_series(request: web.Request) -> web.Response:
    await current_user(request)
    device_id = request.match_info["device_id"]
    metric = request.query.get("metric")
    if not metric:
        raise ApiError("metric: required", field="metric")
    now = datetime.now(UTC)
    end = _time_param(request, "to", now)
    start = _time_param(request, "from", end - timedelta(hours=24))
    bucket_s = request.query.get("bucket_s")
    try:
        bucket = queries.choose_bucket(
            start,
            end,
            timedelta(seconds=_int_param(request, "bucket_s", 0, 1, 10**8)) if bucket_s else None,
        )
    except queries.QueryError as exc:
        raise ApiError(str(exc), field=exc.field) from None
    async with request.app[DB_POOL].connection() as conn:
        buckets = await queries.aggregates(conn, device_id, metric, start, end, bucket)
    return web.json_response(
        {
            "device_id": device_id,
            "metric": metric,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "bucket_s": int(bucket.total_seconds()),
            "buckets": [
                {"start": b.start.isoformat(), "n": b.n, "min": b.min, "max": b.max, "avg": b.avg}
                for b in buckets
            ],
        }
    )


async def list_dead_letters(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user.role not in ("admin", "manager"):
        raise Forbidden("dead letters are for managers and admins")
    limit = _int_param(request, "limit", 100, 1, 1000)
    before = request.query.get("before_id")
    before_id = _int_param(request, "before_id", 0, 1, 2**62) if before else None
    async with request.app[DB_POOL].connection() as conn:
        items = await queries.dead_letters(conn, limit, before_id)
    return web.json_response(
        {"items": items, "next": items[-1]["id"] if len(items) == limit else None}
    )


def _q(name: str, typ: str, desc: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": typ},
        "description": desc,
    }


def _openapi() -> dict[str, Any]:
    errs = {"400": error_response("BadRequest"), "401": error_response("Unauthorized")}
    dev = {"name": "device_id", "in": "path", "required": True, "schema": {"type": "string"}}
    obj = {"type": "object"}
    return {
        "/api/v1/devices": {
            "get": {
                "tags": ["telemetry"],
                "summary": "Devices with their online status",
                "parameters": [
                    _q("kind", "string", "equipment or phone"),
                    _q("limit", "integer", "page size (1-1000)"),
                    _q("after", "string", "cursor: the last device_id of the previous page"),
                ],
                "responses": {
                    "200": {
                        "description": "a page of devices",
                        "content": {"application/json": {"schema": obj}},
                    },
                    **errs,
                },
            }
        },
        "/api/v1/devices/{device_id}": {
            "get": {
                "tags": ["telemetry"],
                "summary": "A device, its status and latest values",
                "parameters": [dev],
                "responses": {
                    "200": {
                        "description": "the device",
                        "content": {"application/json": {"schema": obj}},
                    },
                    "404": error_response("NotFound"),
                    **errs,
                },
            }
        },
        "/api/v1/devices/{device_id}/telemetry": {
            "get": {
                "tags": ["telemetry"],
                "summary": "Time-bucketed aggregates (count, min, max, avg) of one metric over a range",
                "parameters": [
                    dev,
                    {**_q("metric", "string", "metric name"), "required": True},
                    _q("from", "string", "ISO 8601 start (default: 24 h before 'to')"),
                    _q("to", "string", "ISO 8601 end (default: now)"),
                    _q(
                        "bucket_s",
                        "integer",
                        "bucket size in seconds (default: chosen for <= 2000 buckets)",
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "the series",
                        "content": {"application/json": {"schema": obj}},
                    },
                    **errs,
                },
            }
        },
        "/api/v1/dead-letters": {
            "get": {
                "tags": ["telemetry"],
                "summary": "Messages the gateway refused, newest first",
                "parameters": [
                    _q("limit", "integer", "page size"),
                    _q("before_id", "integer", "cursor"),
                ],
                "responses": {
                    "200": {
                        "description": "a page of dead letters",
                        "content": {"application/json": {"schema": obj}},
                    },
                    "403": error_response("Forbidden"),
                    **errs,
                },
            }
        },
    }


def setup(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/devices", list_devices)
    app.router.add_get(f"{PREFIX}/devices/{{device_id}}", get_device)
    app.router.add_get(f"{PREFIX}/devices/{{device_id}}/telemetry", device_series)
    app.router.add_get(f"{PREFIX}/dead-letters", list_dead_letters)
    add_fragment(
        app,
        paths=_openapi(),
        tags=[{"name": "telemetry", "description": "Devices and their telemetry"}],
    )
