"""The live WebSocket (/console/live): what one browser may see, for as long as it may see it.

Authentication: the upgrade request goes through the app's authenticator (a session cookie,
or an Authorization header from non-browser clients); when that gives no user, the socket
waits for the token as its first message (browsers cannot set headers on a WebSocket, and a
token in the URL would end up in logs). A cookie counts only on a same-origin upgrade, since
browsers send cookies on cross-site WebSocket requests too.

Scope: the socket forwards only the devices the caller may see (the `device_clause` rule,
resolved to a set of ids), and fleet-wide counts (dead letters) only to admins and managers.

Revocation: the credential is re-checked against the database every RECHECK_S seconds and
before a batch is pushed when the last check is older than that; the scope is refreshed with
it (new devices, a changed territory). A revoked or expired token, or a deactivated user,
closes the socket with code 4401 and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from aiohttp import WSMsgType, web
from psycopg import AsyncConnection, sql
from psycopg_pool import PoolTimeout

from console.live import ClientQueue, LiveHub, pump
from identity.auth import load_principal, principal_for_token
from kernel.errors import ApiError
from kernel.http import AUTHENTICATE, MANAGER_ROLES, Access, Req, Routes
from kernel.principal import Principal, access_clause
from kernel.web import SETTINGS, same_origin

log = logging.getLogger(__name__)

HUB = web.AppKey("console_live_hub", LiveHub)
HUB_TASK = web.AppKey("console_live_task", asyncio.Task[None])
# How often a live socket re-checks its credential: the principal cache's lifetime
# (identity.auth.PRINCIPAL_CACHE_S), so a socket outlives a revocation no longer than a request.
RECHECK_S = 2.0
CLOSE_UNAUTHORIZED = 4401

routes = Routes("console", "The web console's pages, files and map data")


@dataclass(frozen=True, slots=True)
class Credential:
    """What the socket re-checks: the raw token when the client gave one, else the user and
    the token (session) id the authenticator resolved."""

    user_id: int
    token: str | None = None
    token_id: int | None = None


async def recheck(conn: AsyncConnection[Any], cred: Credential) -> Principal | None:
    """The principal as the database has it now, or None if the credential no longer holds."""
    if cred.token is not None:
        return await principal_for_token(conn, cred.token)
    principal = await load_principal(conn, cred.user_id)  # active users only
    if principal is None or cred.token_id is None:
        return principal
    row = await (
        await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM api_tokens WHERE id = %s AND revoked_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > now()))",
            (cred.token_id,),
        )
    ).fetchone()
    return replace(principal, token_id=cred.token_id) if row and row[0] else None


async def visible_devices(
    conn: AsyncConnection[Any], principal: Principal
) -> Callable[[str], bool]:
    """The live feed's device filter: the rule of `device_clause` (telemetry.access) as a set
    of ids, read from the `device_scope` view itself, so that a phone mapped to its rep is
    visible before the gateway has registered it."""
    if principal.sees_everything:
        return lambda _device: True
    cond, params = access_clause(principal, "ds")
    stmt = sql.SQL("SELECT ds.device_id FROM device_scope ds WHERE {}").format(cond)
    ids = frozenset(r[0] for r in await (await conn.execute(stmt, params)).fetchall())
    return ids.__contains__


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def _authenticate_upgrade(request: web.Request) -> tuple[Principal, Credential] | None:
    bearer = _bearer(request)
    if bearer is None and not same_origin(request):
        return None  # a cross-site page must send a token; its cookies prove nothing
    try:
        principal = await request.app[AUTHENTICATE](request)
    except ApiError:
        return None
    return principal, Credential(principal.user_id, bearer, principal.token_id)


async def _token_from_first_message(
    ws: web.WebSocketResponse, req: Req
) -> tuple[Principal, Credential] | None:
    try:
        first = await ws.receive(timeout=10.0)
    except TimeoutError:
        return None
    token = ""
    if first.type == WSMsgType.TEXT:
        with contextlib.suppress(json.JSONDecodeError, AttributeError, TypeError):
            token = str(json.loads(first.data).get("token") or "")
    if not token or len(token) > 200:
        return None
    async with req.connection() as conn:
        principal = await principal_for_token(conn, token)
    if principal is None:
        return None
    return principal, Credential(principal.user_id, token, principal.token_id)


class _Closed(Exception):
    """The socket was closed because its credential no longer holds."""


@dataclass(slots=True)
class _Session:
    req: Req
    ws: web.WebSocketResponse
    cred: Credential
    queue: ClientQueue
    every_s: float
    checked_at: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def check(self, *, force: bool = False) -> None:
        """Re-check the credential (when due, or now) and refresh the scope; close if gone."""
        async with self.lock:
            if self.ws.closed:
                raise _Closed
            if not force and time.monotonic() - self.checked_at < self.every_s:
                return
            try:
                async with self.req.connection() as conn:
                    principal = await recheck(conn, self.cred)
                    visible = await visible_devices(conn, principal) if principal else None
            except (psycopg.Error, PoolTimeout) as exc:
                # unchecked is not an option: close, the browser reconnects with backoff
                log.warning("live: cannot re-check a socket's credential: %s", exc)
                await self.ws.close(code=1011, message=b"cannot check credentials now")
                raise _Closed from exc
            self.checked_at = time.monotonic()
            if principal is None or visible is None:
                reason = "token revoked or expired, or user deactivated"
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.ws.send_str(json.dumps({"k": "error", "message": reason}))
                await self.ws.close(code=CLOSE_UNAUTHORIZED, message=reason.encode())
                raise _Closed
            self.queue.operator = principal.role in MANAGER_ROLES
            self.queue.rescope(visible)

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            await self.check(force=True)


@routes.get(
    "/console/live",
    access=Access.public(
        "the socket authenticates itself (the app's authenticator on the upgrade, or a token "
        "as the first message) and sends nothing before; it forwards only what the caller "
        "may see and closes when the credential is revoked"
    ),
    summary="Live positions, status, geofence events and alerts (WebSocket)",
    websocket=True,
)
async def live_socket(req: Req) -> web.StreamResponse:
    request = req.request
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
    upgraded = await _authenticate_upgrade(request)
    await ws.prepare(request)
    who = upgraded or await _token_from_first_message(ws, req)
    if who is None:
        # the client may already have gone (a phone going offline): nothing to tell it then
        with contextlib.suppress(ConnectionError):
            await ws.send_str(
                json.dumps({"k": "error", "message": "unknown, expired or revoked token"})
            )
            await ws.close(code=CLOSE_UNAUTHORIZED, message=b"unauthorized")
        return ws
    principal, cred = who
    async with req.connection() as conn:
        visible = await visible_devices(conn, principal)
    hub = request.app[HUB]
    q = hub.add(visible, operator=principal.role in MANAGER_ROLES)
    session = _Session(req, ws, cred, q, RECHECK_S)
    try:
        await ws.send_str(
            json.dumps({"k": "hello", "role": principal.role, "user_id": principal.user_id})
        )
    except ConnectionError:  # the client left before its greeting
        hub.remove(q)
        return ws
    tasks = [
        asyncio.create_task(pump(q, ws.send_str, before_batch=session.check)),
        asyncio.create_task(session.watch()),
    ]
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                try:
                    await ws.send_str('{"k":"pong"}')
                except ConnectionError:  # the client left mid-answer
                    break
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, _Closed):
                await task
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


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_hub_ctx)
    routes.mount(app)
