"""The HTTP kernel: typed application keys, the JSON error middleware, the database pool,
and the security headers every response gets.

Every package's routes use these; the composition root (`fieldmesh.app`) mounts them.
"""

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec
import psycopg
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from psycopg import AsyncConnection
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from kernel.dberrors import refusal
from kernel.errors import ApiError
from kernel.replica import ReadRouter
from kernel.settings import Settings

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
REPLICA = web.AppKey("replica", ReadRouter)
# Set on a successful write: the writer's reads go to the primary while the replica may
# not have it yet (read-your-writes across API workers, which share no memory).
WROTE_COOKIE = "fm_wrote"
DB_POOL = web.AppKey("db_pool", AsyncConnectionPool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# the message of an error answer made here, for the page a browser gets instead
_ERROR = web.ResponseKey("fm_error", str)


def _json_error(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    resp = web.json_response(
        {"error": {"code": code, "message": message, "field": field}},
        status=status,
        headers=headers,
    )
    resp[_ERROR] = message
    return resp


def _wants_page(request: web.Request) -> bool:
    """A person's browser opening a link (a booking page, a shared scene, an article, an
    unsubscribe link), not a program calling the API: it asks for HTML."""
    return (
        request.method in ("GET", "HEAD")
        and not request.path.startswith("/api/")
        and "text/html" in request.headers.get("Accept", "")
    )


_PAGE_TITLES = {
    401: "Sign in first",
    403: "Not allowed",
    404: "This link leads nowhere",
    410: "This link no longer works",
    429: "Too many requests",
}
_PAGE_TEXTS = {
    # the API's words for a 404 name the path's parameter ("path token: Expected `str`
    # matching regex ..."): a person is told what may have happened instead
    404: "It may be mistyped or cut short, or what it led to was removed. Check the link you "
    "were sent, or ask its sender for a new one.",
    401: "This page is for signed-in users of fieldmesh: sign in to the console, then open "
    "the link again.",
    403: "Your account may not open this page.",
    429: "Wait a minute, then reload this page.",
}


def _error_page(status: int, message: str, headers: Any) -> web.Response:
    title = _PAGE_TITLES.get(status, "Something went wrong")
    text = _PAGE_TEXTS.get(status) or (
        f"{message[:1].upper()}{message[1:]}."  # the API's own words: "... has expired"
        if status == 410
        else "This link cannot be opened as it is: check the link you were sent."
        if status < 500
        else f"Try again later (HTTP {status})."
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>body{{font:16px/1.5 system-ui,sans-serif;"
        "max-width:36em;margin:2em auto;padding:0 1em;color:#222}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></main></body></html>"
    )
    keep = {k: v for k, v in headers.items() if k in ("Retry-After", "WWW-Authenticate")}
    return web.Response(status=status, text=page, content_type="text/html", headers=keep)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as JSON ({"error": {code, message, field}}); a browser opening a page's link
    that fails (an expired booking link, a revoked share) gets the same status as a short
    page in words instead of the JSON."""
    resp = await _errors_as_json(request, handler)
    message = resp.get(_ERROR) if isinstance(resp, web.Response) else None
    if message is not None and _wants_page(request):
        return _error_page(resp.status, message, resp.headers)
    return resp


async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _json_error(exc.status, exc.code, exc.message, exc.field, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status, "http_error"
        )
        return _json_error(exc.status, code, exc.reason)
    except (HttpProcessingError, RequestPayloadError) as exc:
        # the body could not be read as sent: a Content-Encoding it does not match (gzip
        # that is not gzip), a broken chunked transfer
        cause = exc.__cause__ or exc.__context__ or exc
        detail = getattr(cause, "message", "") or getattr(exc, "message", "") or "malformed"
        return _json_error(400, "bad_body", f"the request body cannot be read: {detail}")
    except json.JSONDecodeError as exc:
        return _json_error(400, "invalid_json", f"request body is not valid JSON: {exc.msg}")
    except (psycopg.OperationalError, PoolTimeout) as exc:
        # the database went away (restart, failover, a terminated connection) or the pool
        # is exhausted: a retry will do; a write carrying an Idempotency-Key stays once
        log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        return _json_error(
            503,
            "database_unavailable",
            "the database is unavailable: retry shortly",
            headers={"Retry-After": "2"},
        )
    except psycopg.Error as exc:
        # a refusal of the request's data that no package mapped (e.g. a deferred
        # constraint firing at COMMIT) is the client's to correct, not a 500
        mapped = refusal(exc)
        if mapped is None:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return _json_error(500, "internal", "internal server error")
        log.info("database refused %s %s: %s", request.method, request.path, exc)
        return _json_error(mapped.status, mapped.code, mapped.message, mapped.field)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _json_error(500, "internal", "internal server error")


# A page that sets no Content-Security-Policy of its own gets this one: scripts only from
# our origin and never inline, styles may be inline (the pages' own <style> blocks),
# images and workers may come from blob:/data: (model-viewer and the map make them), and
# no other site may frame the page. A handler that sets its own CSP (a page with a known
# tile server, or with a hashed inline script) keeps it.
DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' data: blob:; "
    "connect-src 'self' ws: wss: data: blob:; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
_EVERY_RESPONSE = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
_HTML_PAGES = {
    "Content-Security-Policy": DEFAULT_CSP,
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An `on_response_prepare` hook: defaults every package's responses get; a header the
    handler already set wins (setdefault), so a page can carry its own policy."""
    headers = response.headers
    for name, value in _EVERY_RESPONSE.items():
        headers.setdefault(name, value)
    if response.content_type in ("text/html", "application/xhtml+xml"):
        for name, value in _HTML_PAGES.items():
            headers.setdefault(name, value)


def same_origin(request: web.Request) -> bool:
    """Whether a request (a WebSocket upgrade) comes from a page of this very origin, or
    from no page at all: a cross-site page's socket carries the user's cookies, which then
    prove nothing. The origin's host must equal the request's exactly (a suffix match lets
    `evil-crm.example.com` pass for `crm.example.com`)."""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


# HTTP parser limits of every API server. aiohttp's defaults (8 KiB request line) answer a
# longer query string with a plain-text 400 before the app sees it; up to these, the app's
# typed query decoding answers instead, with the one JSON error shape and its own limits.
SERVER_LIMITS: dict[str, int] = {"max_line_size": 65_536, "max_field_size": 16_384}


async def _reset(conn: AsyncConnection[Any]) -> None:
    """Every connection goes back to the pool transactional, whatever its borrower set."""
    if conn.autocommit:
        await conn.set_autocommit(False)


def _json_loads(data: str | bytes) -> Any:
    """json/jsonb columns decoded by msgspec, several times faster than the standard
    library on every row of every list; what msgspec refuses but PostgreSQL stores (a
    number beyond a double, e.g. 1e400) goes to the standard library as before."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return json.loads(data)


async def _configure(conn: AsyncConnection[Any]) -> None:
    set_json_loads(_json_loads, conn)


async def db_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = AsyncConnectionPool(
        app[SETTINGS].dsn,
        min_size=1,
        max_size=10,
        open=False,
        configure=_configure,
        reset=_reset,
    )
    await pool.open(wait=True, timeout=30)
    app[DB_POOL] = pool
    yield
    await pool.close()


def replica_ctx(
    replica_dsn: str, max_lag_s: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Lag-tolerant reads from this replica (after db_pool_ctx in cleanup_ctx)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        router = ReadRouter(app[DB_POOL], replica_dsn, max_lag_s)
        await router.open()
        app[REPLICA] = router
        yield
        await router.close()

    return ctx


@web.middleware
async def read_your_writes_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    router = request.app.get(REPLICA)
    if (
        router is not None
        and request.method not in ("GET", "HEAD", "OPTIONS")
        and response.status < 400
        and isinstance(response, web.Response)
    ):
        max_age = int(router.max_lag_s) + 2
        response.set_cookie(
            WROTE_COOKIE, f"{time.time():.3f}", max_age=max_age, httponly=True, samesite="Lax"
        )
    return response
