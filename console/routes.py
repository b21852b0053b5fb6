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
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from psycopg.rows import dict_row

from console.live import LiveHub, pump
from fieldmesh.api import NotFound
from fieldmesh.app import DB_POOL, SETTINGS
from fieldmesh.auth import Principal, current_user, principal_for_token
from fieldmesh.settings import PROJECT_ROOT

STATIC_DIR = Path(__file__).resolve().parent / "static"
LEAFLET_DIR = PROJECT_ROOT / "node_modules" / "leaflet" / "dist"
HUB = web.AppKey("console_live_hub", LiveHub)
HUB_TASK = web.AppKey("console_live_task", asyncio.Task[None])
TILE_URL_ENV = "FIELDMESH_CONSOLE_TILE_URL"  # e.g. https://tiles.example/{z}/{x}/{y}.png

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


def _tile_url() -> str:
    return os.environ.get(TILE_URL_ENV, "").strip()


def _file_response(path: Path, *, no_cache: bool = False) -> web.FileResponse:
    tiles = _tile_url()
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
    return _file_response(STATIC_DIR / "index.html", no_cache=True)


async def rep_index(request: web.Request) -> web.StreamResponse:
    return _file_response(STATIC_DIR / "rep" / "index.html", no_cache=True)


async def static_file(request: web.Request) -> web.StreamResponse:
    rel = request.match_info["path"]
    return _file_response(_safe_file(STATIC_DIR, rel), no_cache=True)


async def leaflet_file(request: web.Request) -> web.StreamResponse:
    return _file_response(_safe_file(LEAFLET_DIR, request.match_info["path"]))


async def config(request: web.Request) -> web.Response:
    del request
    return web.json_response({"tile_url": _tile_url() or None})


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


async def positions(request: web.Request) -> web.Response:
    """The newest known position and status of every visible device (the map's first frame)."""
    principal = await current_user(request)
    visible = visibility(principal, await _device_reps(request))
    async with request.app[DB_POOL].connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            """
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
        )
        rows = [r for r in await cur.fetchall() if visible(r["device_id"])]
    return web.json_response({"devices": rows})


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
    r.add_get("/console/live", live_socket)
    r.add_get("/console/vendor/leaflet/{path:.+}", leaflet_file)
    r.add_get("/console/{path:.+}", static_file)
