"""The aiohttp application: the one place that mounts every package's routes.

A package exposes `routes.setup(app)` (adding its routes, and its start-up/clean-up steps
to `app.cleanup_ctx`); ROUTE_MODULES lists them in mounting order.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from fieldmesh.api import ApiError
from fieldmesh.settings import Settings

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
DB_POOL = web.AppKey("db_pool", AsyncConnectionPool)

# Modules with a `setup(app: web.Application) -> None`; add yours here.
ROUTE_MODULES: tuple[str, ...] = (
    "crm.routes",
    "telemetry.routes",
    "ar_viewer.routes",
    "ledger.routes",
    "geo.routes",
    "console.routes",
    "crm_sync.routes",
    "telemetry.maintenance.routes",
    "gateway.alert_routes",
    "routing.routes",
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json_error(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "field": field}},
        status=status,
        headers=headers,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
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
    except json.JSONDecodeError as exc:
        return _json_error(400, "invalid_json", f"request body is not valid JSON: {exc.msg}")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _json_error(500, "internal", "internal server error")


async def _db_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = AsyncConnectionPool(app[SETTINGS].dsn, min_size=1, max_size=10, open=False)
    await pool.open(wait=True, timeout=30)
    app[DB_POOL] = pool
    yield
    await pool.close()


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_app(
    settings: Settings, route_modules: tuple[str, ...] = ROUTE_MODULES
) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=16 * 1024 * 1024)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_db_pool_ctx)
    app.router.add_get("/health", health)
    for name in route_modules:
        importlib.import_module(name).setup(app)
    return app
