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
    "/metrics",
    access=Access.public(
        "operational counters only (replica state and lag, read routing, the database pool);"
        " no record data -- keep it off a public proxy route all the same"
    ),
    summary="Prometheus metrics of this API worker",
    content_type="text/plain",
)
async def metrics(req: Req) -> web.StreamResponse:
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, value: float) -> None:
        lines.extend((f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name} {value:g}"))

    router = req.app.get(REPLICA)
    if router is not None:
        st = await router.check()
        metric(
            "fieldmesh_replica_up",
            "gauge",
            "1: the replica streams within its lag bound",
            1.0 if st.status == "ok" else 0.0,
        )
        metric(
            "fieldmesh_replica_lag_seconds",
            "gauge",
            "replay lag of the read replica",
            st.lag_s if st.lag_s is not None else float("nan"),
        )
        metric(
            "fieldmesh_replica_reads_total",
            "counter",
            "lag-tolerant reads the replica served",
            st.replica_reads,
        )
        metric(
            "fieldmesh_replica_primary_reads_total",
            "counter",
            "lag-tolerant reads the primary served (replica down, stale, or read-your-writes)",
            st.primary_reads,
        )
    stats = req.app[DB_POOL].get_stats()
    metric(
        "fieldmesh_db_pool_size",
        "gauge",
        "connections in this worker's pool",
        stats.get("pool_size", 0),
    )
    metric(
        "fieldmesh_db_pool_available",
        "gauge",
        "idle connections in the pool",
        stats.get("pool_available", 0),
    )
    metric(
        "fieldmesh_db_pool_waiting",
        "gauge",
        "requests waiting for a connection",
        stats.get("requests_waiting", 0),
    )
    return web.Response(body="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")


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
    app.on_response_prepare.append(security_headers)
    _root.mount(app)
    openapi.mount(app)
    for name in route_modules:
        importlib.import_module(name).setup(app)
    return app
