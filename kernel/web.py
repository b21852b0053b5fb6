"""The HTTP kernel: typed application keys, the JSON error middleware, the database pool.

Every package's routes use these; the composition root (`fieldmesh.app`) mounts them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from kernel.errors import ApiError
from kernel.settings import Settings

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
DB_POOL = web.AppKey("db_pool", AsyncConnectionPool)

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


async def db_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = AsyncConnectionPool(app[SETTINGS].dsn, min_size=1, max_size=10, open=False)
    await pool.open(wait=True, timeout=30)
    app[DB_POOL] = pool
    yield
    await pool.close()
