"""The aiohttp application: the one place that mounts every package's routes.

A package exposes `routes.setup(app)` (adding its routes, and its start-up/clean-up steps
to `app.cleanup_ctx`); ROUTE_MODULES lists them in mounting order.
"""

from __future__ import annotations

import importlib

import msgspec
from aiohttp import web

from alerts.routes import ALERT_EVENTS
from crm.access import account_clause
from crm_sync.webhooks import enqueue_async
from engage.reports import ServiceReportMailer
from engage.send import send_config
from fieldmesh import services
from identity.auth import current_user
from kernel import openapi
from kernel.http import AUTHENTICATE, Access, Req, Routes
from kernel.settings import Settings
from kernel.web import (
    DB_POOL,
    REPLICA,
    SETTINGS,
    db_pool_ctx,
    error_middleware,
    read_your_writes_middleware,
    replica_ctx,
    security_headers,
)
from ledger.routes import RECORD_SCOPES, RecordScopes
from phone.attachments import store_for
from phone.routes import REPORT_HOOKS
from telemetry.access import device_clause

__all__ = ["DB_POOL", "ROUTE_MODULES", "SETTINGS", "build_app"]

# Modules with a `setup(app: web.Application) -> None`; add yours here.
ROUTE_MODULES: tuple[str, ...] = (
    "identity.routes",
    "crm.routes",
    "telemetry.routes",
    "ar_viewer.routes",
    "ledger.routes",
    "geo.routes",
    "console.routes",
    "crm_sync.routes",
    "insights.maintenance.routes",
    "insights.routes",
    "alerts.routes",
    "routing.routes",
    "assistant.routes",
    "notify.routes",
    "calendars.routes",
    "calendars.booking_routes",
    "devices.routes",
    "engage.routes",
    "automation.routes",
    "phone.routes",
)


_root = Routes("meta")


class Health(msgspec.Struct, omit_defaults=True):
    status: str
    # the read replica (absent without one): ok | stale | down | unknown; its replay lag
    replica: str = "none"
    replica_lag_s: float | None = None


@_root.get("/health", access=Access.public("liveness probes carry no data"), summary="Liveness")
async def health(req: Req) -> Health:
    router = req.app.get(REPLICA)
    if router is None:
        return Health("ok")
    st = await router.check()  # a down replica degrades reads, not the API: still "ok"
    return Health("ok", st.status, st.lag_s)


@_root.get(
    "/",
    access=Access.public("the front door: it only sends a browser on to the console"),
    summary="Redirect to the web console",
    status=302,
)
async def front_door() -> web.StreamResponse:
    raise web.HTTPFound("/console/")


def build_app(
    settings: Settings, route_modules: tuple[str, ...] = ROUTE_MODULES
) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, read_your_writes_middleware],
        client_max_size=16 * 1024 * 1024,
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(db_pool_ctx)
    replica = services.replica_dsn(settings)
    if replica is not None:
        app.cleanup_ctx.append(replica_ctx(replica, settings.replica_max_lag_s))
    app[AUTHENTICATE] = current_user
    # receipts are scoped by the records they prove; the ledger imports neither policy
    app[RECORD_SCOPES] = RecordScopes(device=device_clause, account=account_clause)
    # an acknowledged alert is announced through the webhook outbox
    app[ALERT_EVENTS] = enqueue_async
    # a signed service report is e-mailed to the customer by engage
    app[REPORT_HOOKS] = ServiceReportMailer(send_config(settings), store_for(settings).get)
    app.on_response_prepare.append(security_headers)
    _root.mount(app)
    openapi.mount(app)
    for name in route_modules:
        importlib.import_module(name).setup(app)
    return app
