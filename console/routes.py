"""HTTP side of the console: static front end, Leaflet, config, snapshot and the live socket.

Sign-in uses the API's bearer tokens (POST /api/v1/auth/token); the front end keeps the
token in localStorage and sends `Authorization: Bearer`. The API accepts only bearer tokens
(fieldmesh/auth.py), which cannot be forged cross-site (no CSRF surface), and the offline
queue of the rep's view needs the token to replay actions. XSS is the risk of that choice,
so every page is served with a strict Content-Security-Policy (scripts only from 'self', no
inline script). The WebSocket takes the token as its first message (browsers cannot set
headers on a WebSocket, and a token in the URL would end up in logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from psycopg.rows import dict_row

from console.live import LiveHub, pump
from identity.auth import current_user, principal_for_token
from kernel.errors import NotFound, Unprocessable
from kernel.principal import Principal
from kernel.settings import PROJECT_ROOT, Settings
from kernel.web import DB_POOL, SETTINGS

STATIC_DIR = Path(__file__).resolve().parent / "static"
LEAFLET_DIR = PROJECT_ROOT / "node_modules" / "leaflet" / "dist"
HUB = web.AppKey("console_live_hub", LiveHub)
HUB_TASK = web.AppKey("console_live_task", asyncio.Task[None])

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob: {tiles}; connect-src 'self' ws: wss:; worker-src 'self'; "
    "manifest-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("application/manifest+json", ".webmanifest")


def _safe_file(root: Path, rel: str) -> Path:
    """`rel` inside `root`, or 404: no '..' or absolute paths out of the static folder."""
    path = (root / rel).resolve()
    if root.resolve() not in path.parents or not path.is_file():
        raise NotFound(f"no console file {rel[:80]!r}")
    return path


def _tile_url(settings: Settings) -> str:
    """Settings.console_tile_url (FIELDMESH_CONSOLE_TILE_URL), or '' for no tiles."""
    return settings.console_tile_url or ""


def _file_response(request: web.Request, path: Path, *, no_cache: bool = False) -> web.FileResponse:
    tiles = _tile_url(request.app[SETTINGS])
    origin = tiles.split("/{", 1)[0] if tiles else ""
    headers = {
        "Content-Security-Policy": CSP.format(tiles=origin).replace("  ", " "),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache" if no_cache else "public, max-age=300",
    }
    if path.name == "sw.js":
        headers["Service-Worker-Allowed"] = "/"
    return web.FileResponse(path, headers=headers)


async def index(request: web.Request) -> web.StreamResponse:
    return _file_response(request, STATIC_DIR / "index.html", no_cache=True)


async def rep_index(request: web.Request) -> web.StreamResponse:
    return _file_response(request, STATIC_DIR / "rep" / "index.html", no_cache=True)


async def static_file(request: web.Request) -> web.StreamResponse:
    rel = request.match_info["path"]
    return _file_response(request, _safe_file(STATIC_DIR, rel), no_cache=True)


async def leaflet_file(request: web.Request) -> web.StreamResponse:
    return _file_response(request, _safe_file(LEAFLET_DIR, request.match_info["path"]))


async def config(request: web.Request) -> web.Response:
    return web.json_response({"tile_url": _tile_url(request.app[SETTINGS]) or None})


def _rep_devices_sql() -> str:
    return "SELECT device_id, user_id FROM geo_device_rep"


async def _device_reps(request: web.Request) -> dict[str, int]:
    async with request.app[DB_POOL].connection() as conn:
        cur = await conn.execute("SELECT to_regclass('geo_device_rep') IS NOT NULL")
        row = await cur.fetchone()
        if not row or not row[0]:
            return {}
        cur = await conn.execute(_rep_devices_sql())
        return {d: int(u) for d, u in await cur.fetchall()}


def visibility(principal: Principal, device_reps: dict[str, int]) -> Any:
    """Which devices a principal sees live: admins, viewers and managers every device; a rep
    only the phones mapped to them (geo_device_rep)."""
    if principal.sees_everything or principal.role == "manager":
        return lambda _device: True
    mine = {d for d, u in device_reps.items() if u in principal.team_user_ids}
    return lambda device: device in mine


async def _has_tables(conn: Any, *tables: str) -> bool:
    cur = await conn.execute(
        "SELECT bool_and(to_regclass(t) IS NOT NULL) FROM unnest(%s::text[]) t", (list(tables),)
    )
    row = await cur.fetchone()
    return bool(row and row[0])


# Equipment sits at its account's site (crm_sync assets); phones where their last fix is.
_POSITIONS_SQL = """
SELECT d.device_id, d.kind, d.name, s.online,
       coalesce(f.lon, st_x(a.location::geometry)) AS lon,
       coalesce(f.lat, st_y(a.location::geometry)) AS lat,
       (extract(epoch FROM f.time) * 1000)::bigint AS t_ms,
       a.account_id, a.account_name, a.owner_id, a.territory_id, a.equipment_model,
       al.alert_state
FROM device d
LEFT JOIN device_status s USING (device_id)
LEFT JOIN LATERAL (
    SELECT lon, lat, time FROM gps_fix g WHERE g.device_id = d.device_id
    ORDER BY time DESC LIMIT 1
) f ON d.kind = 'phone'
LEFT JOIN LATERAL (
    SELECT x.account_id, c.name AS account_name, c.owner_id, c.territory_id, c.location,
           x.equipment_model
    FROM assets x JOIN accounts c ON c.id = x.account_id WHERE x.device_id = d.device_id
) a ON d.kind <> 'phone'
LEFT JOIN LATERAL (
    SELECT min(state) AS alert_state  -- 'acknowledged' < 'raised': any still unacknowledged?
    FROM alerts WHERE device_id = d.device_id AND state <> 'cleared'
) al ON true
ORDER BY d.device_id
"""
_POSITIONS_SQL_BARE = """
SELECT d.device_id, d.kind, d.name, s.online, f.lon, f.lat,
       (extract(epoch FROM f.time) * 1000)::bigint AS t_ms
FROM device d
LEFT JOIN device_status s USING (device_id)
LEFT JOIN LATERAL (
    SELECT lon, lat, time FROM gps_fix g WHERE g.device_id = d.device_id
    ORDER BY time DESC LIMIT 1
) f ON d.kind = 'phone'
ORDER BY d.device_id
"""


async def positions(request: web.Request) -> web.Response:
    """The newest known position and status of every visible device (the map's first frame):
    phones at their last fix, equipment at its account's site, with any active alert."""
    principal = await current_user(request)
    visible = visibility(principal, await _device_reps(request))
    async with request.app[DB_POOL].connection() as conn:
        full = await _has_tables(conn, "assets", "alerts")
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_POSITIONS_SQL if full else _POSITIONS_SQL_BARE)
        rows = [r for r in await cur.fetchall() if visible(r["device_id"])]
    for r in rows:
        if full:
            owner_id, territory_id = r.pop("owner_id"), r.pop("territory_id")
            # the site is shown; the account's name and link only under record-level access
            if r["account_id"] is not None and not principal.may_see(owner_id, territory_id):
                r["account_id"] = r["account_name"] = None
    return web.json_response({"devices": rows})


def _date_param(request: web.Request) -> date:
    raw = request.query.get("date")
    if not raw:
        return date.today()
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise Unprocessable(f"date must be YYYY-MM-DD: {raw[:40]!r}", field="date") from None


async def plans(request: web.Request) -> web.Response:
    """The newest ready routing plan of each territory for a day (`?date=`, default today),
    among those the caller may see: the routing API has no list, the map needs the ids."""
    principal = await current_user(request)
    day = _date_param(request)
    async with request.app[DB_POOL].connection() as conn:
        if not await _has_tables(conn, "routing_plans"):
            return web.json_response({"date": day.isoformat(), "plans": []})
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            """
            SELECT DISTINCT ON (territory_id) id, territory_id, created_by, created_at
            FROM routing_plans WHERE plan_date = %s AND status = 'ready'
            ORDER BY territory_id, created_at DESC, id DESC
            """,
            (day,),
        )
        rows = await cur.fetchall()
    out = [
        {
            "id": r["id"],
            "territory_id": r["territory_id"],
            "created_at": r["created_at"].isoformat(),
        }
        for r in rows
        if principal.may_see(r["created_by"], r["territory_id"])
    ]
    return web.json_response({"date": day.isoformat(), "plans": out})


async def visits(request: web.Request) -> web.Response:
    """Automatic geofence check-ins (geo `visits`) of a day (`?date=`, default today): a rep
    gets their own, a manager their team's, admins and viewers everyone's."""
    principal = await current_user(request)
    day = _date_param(request)
    async with request.app[DB_POOL].connection() as conn:
        if not await _has_tables(conn, "visits"):
            return web.json_response({"date": day.isoformat(), "visits": []})
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            """
            SELECT id, subject_id, account_id, rep_id, checked_in_at, departed_at,
                   duration_s, status
            FROM visits
            WHERE (arrived_at >= %s::date AND arrived_at < %s::date + 1 OR status = 'open')
              AND (%s OR rep_id = ANY(%s))
            ORDER BY arrived_at
            """,
            (day, day, principal.sees_everything, list(principal.team_user_ids)),
        )
        rows = await cur.fetchall()
    for r in rows:
        for k in ("checked_in_at", "departed_at"):
            r[k] = r[k].isoformat() if r[k] is not None else None
    return web.json_response({"date": day.isoformat(), "visits": rows})


async def live_socket(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(heartbeat=20.0)
    await ws.prepare(request)
    try:
        first = await ws.receive(timeout=10.0)
    except TimeoutError:
        await ws.close(code=4401, message=b'send {"token": ...} first')
        return ws
    token = ""
    if first.type == WSMsgType.TEXT:
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            token = str(json.loads(first.data).get("token", ""))
    principal = None
    if token:
        async with request.app[DB_POOL].connection() as conn:
            principal = await principal_for_token(conn, token)
    if principal is None:
        await ws.send_str(
            json.dumps({"k": "error", "message": "unknown, expired or revoked token"})
        )
        await ws.close(code=4401, message=b"unauthorized")
        return ws
    hub = request.app[HUB]
    q = hub.add(visibility(principal, await _device_reps(request)))
    await ws.send_str(
        json.dumps({"k": "hello", "role": principal.role, "user_id": principal.user_id})
    )
    sender = asyncio.create_task(pump(q, ws.send_str))
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str('{"k":"pong"}')
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
        hub.remove(q)
    return ws


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = LiveHub(app[SETTINGS].dsn)
    app[HUB] = hub
    app[HUB_TASK] = asyncio.create_task(hub.run())
    yield
    app[HUB_TASK].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await app[HUB_TASK]


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/")


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_hub_ctx)
    r = app.router
    r.add_get("/console", _redirect)
    r.add_get("/console/", index)
    r.add_get("/console/rep/", rep_index)
    r.add_get("/console/config.json", config)
    r.add_get("/console/api/positions", positions)
    r.add_get("/console/api/plans", plans)
    r.add_get("/console/api/visits", visits)
    r.add_get("/console/live", live_socket)
    r.add_get("/console/vendor/leaflet/{path:.+}", leaflet_file)
    r.add_get("/console/{path:.+}", static_file)
