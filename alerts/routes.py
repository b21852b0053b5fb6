"""HTTP API of alert rules and alerts.

Rules are fleet-wide configuration: every signed-in user reads them, admins change them.
An alert belongs to a device: a caller lists and acknowledges only alerts of devices they
may see (`telemetry.access`: through the device's account, or a phone's rep); any other
alert answers 404, as if it did not exist. Acknowledging needs a writing role (403 for
viewers); who acknowledges is the caller.

A rule on an unknown equipment model, or on a metric the model does not report, is
refused (422 naming the field). A model reports the simulator's metrics if it is one of
the simulator's models, and whatever its assets' devices have reported.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

import msgspec
from aiohttp import web
from psycopg import AsyncConnection, sql

from alerts.rules import Direction, Rule, RuleError, RuleKind, Severity, validate_rules
from alerts.store import alert_from_row
from kernel.errors import Conflict, NotFound, Unprocessable
from kernel.http import Access, Reply, Req, Routes
from telemetry.access import device_clause
from telemetry.contracts import DeviceId

routes = Routes("alerts", "Alert rules, and the alerts they raise on devices")


class AlertEvents(Protocol):
    """Where an alert's life-cycle events go (crm_sync: the webhook outbox), in the
    transaction of the change; given by the composition root."""

    async def __call__(
        self, conn: AsyncConnection[Any], event_type: str, event_id: str, data: dict[str, Any]
    ) -> object: ...


ALERT_EVENTS = web.AppKey("alert_events", AlertEvents)

_RULE_COLUMNS = (
    "rule_id, equipment_model, metric, kind, direction, limit_value, clear_at, "
    "min_duration_s, rate_window_s, severity, updated_at"
)
_ALERT_COLUMNS = (
    "alert_id, device_id, alert_type, severity, state, message, raised_at, window_start, "
    "window_end, occurrences, acknowledged_by, acknowledged_at, cleared_at"
)

Key = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\s/]+$")]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
Metric = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="metric")]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=10**8)]


class RulePath(msgspec.Struct, frozen=True):
    rule_id: Key


class RuleIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    equipment_model: Text
    metric: Metric
    kind: RuleKind
    direction: Direction
    limit: float
    clear_at: float
    min_duration_s: Seconds = 0.0
    rate_window_s: Seconds = 3600.0
    severity: Severity = Severity.WARNING


class RuleOut(msgspec.Struct, frozen=True):
    rule_id: str
    equipment_model: str
    metric: str
    kind: str
    direction: str
    limit: float
    clear_at: float
    min_duration_s: float
    rate_window_s: float
    severity: str
    updated_at: datetime


class RulePage(msgspec.Struct, frozen=True):
    items: list[RuleOut]


class AlertPath(msgspec.Struct, frozen=True):
    alert_id: Key


class AlertQuery(msgspec.Struct, frozen=True):
    state: Literal["active", "all"] = "active"
    device_id: DeviceId | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 500


class AlertOut(msgspec.Struct, frozen=True):
    alert_id: str
    device_id: str
    alert_type: str
    severity: str
    state: str
    message: str
    raised_at: datetime
    window_start: datetime
    window_end: datetime
    occurrences: int
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    cleared_at: datetime | None


class AlertPage(msgspec.Struct, frozen=True):
    items: list[AlertOut]


async def _reported_metrics(conn: Any, equipment_model: str) -> set[str] | None:
    """Metrics the model reports, or None if no such model is known."""
    from firmware_sim.physics import EQUIPMENT_MODELS, METRICS

    metrics: set[str] = set(METRICS) if equipment_model in EQUIPMENT_MODELS else set()
    cur = await conn.execute(
        "SELECT count(*) FROM assets WHERE equipment_model = %s", (equipment_model,)
    )
    row = await cur.fetchone()
    has_assets = bool(row and row[0])
    cur = await conn.execute(
        "SELECT DISTINCT l.metric FROM telemetry_latest l JOIN assets a ON a.device_id = l.device_id "
        "WHERE a.equipment_model = %s",
        (equipment_model,),
    )
    metrics |= {str(r[0]) for r in await cur.fetchall()}
    if not metrics and not has_assets and equipment_model not in EQUIPMENT_MODELS:
        return None
    return metrics


def _rule_out(r: tuple[Any, ...]) -> RuleOut:
    return RuleOut(*r)


@routes.get(
    "/api/v1/alert-rules",
    access=Access.read(unscoped="rules are fleet-wide configuration, no record data"),
    summary="Every alert rule",
)
async def list_rules(req: Req) -> RulePage:
    async with req.connection() as conn:
        cur = await conn.execute(f"SELECT {_RULE_COLUMNS} FROM alert_rules ORDER BY rule_id")
        rows = await cur.fetchall()
    return RulePage([_rule_out(r) for r in rows])


@routes.put(
    "/api/v1/alert-rules/{rule_id}",
    access=Access.admin(),
    summary="Create or replace a rule (201 when created, 200 when replaced)",
)
async def put_rule(req: Req, path: RulePath, body: RuleIn) -> Reply[RuleOut]:
    try:
        rule = Rule(
            rule_id=path.rule_id,
            equipment_model=body.equipment_model,
            metric=body.metric,
            kind=body.kind,
            direction=body.direction,
            limit=body.limit,
            clear_at=body.clear_at,
            min_duration_s=body.min_duration_s,
            rate_window_s=body.rate_window_s,
            severity=body.severity,
        )
    except RuleError as exc:
        raise Unprocessable(str(exc)) from exc
    async with req.connection() as conn:
        reported = await _reported_metrics(conn, rule.equipment_model)
        try:
            validate_rules([rule], {} if reported is None else {rule.equipment_model: reported})
        except RuleError as exc:
            field = "equipment_model" if reported is None else "metric"
            raise Unprocessable(str(exc), field=field) from exc
        cur = await conn.execute(
            f"""
            INSERT INTO alert_rules (rule_id, equipment_model, metric, kind, direction,
                limit_value, clear_at, min_duration_s, rate_window_s, severity)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (rule_id) DO UPDATE SET
                equipment_model = EXCLUDED.equipment_model, metric = EXCLUDED.metric,
                kind = EXCLUDED.kind, direction = EXCLUDED.direction,
                limit_value = EXCLUDED.limit_value, clear_at = EXCLUDED.clear_at,
                min_duration_s = EXCLUDED.min_duration_s, rate_window_s = EXCLUDED.rate_window_s,
                severity = EXCLUDED.severity, updated_at = now()
            RETURNING {_RULE_COLUMNS}, (xmax = 0)
            """,
            (
                rule.rule_id,
                rule.equipment_model,
                rule.metric,
                rule.kind.value,
                rule.direction.value,
                rule.limit,
                rule.clear_at,
                rule.min_duration_s,
                rule.rate_window_s,
                rule.severity.value,
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    return Reply(_rule_out(row[:-1]), status=201 if row[-1] else 200)


@routes.delete(
    "/api/v1/alert-rules/{rule_id}",
    access=Access.admin(),
    summary="Delete a rule",
    status=204,
)
async def delete_rule(req: Req, path: RulePath) -> None:
    async with req.connection() as conn:
        cur = await conn.execute("DELETE FROM alert_rules WHERE rule_id = %s", (path.rule_id,))
        if cur.rowcount == 0:
            raise NotFound(f"no rule {path.rule_id!r}", field="rule_id")


@routes.get(
    "/api/v1/alerts",
    access=Access.read(unscoped="the list is filtered to alerts of devices the caller may see"),
    summary="Alerts, newest first: active ones (raised or acknowledged) or all",
)
async def list_alerts(req: Req, query: AlertQuery) -> AlertPage:
    visible, params = device_clause(req.user, sql.Identifier("alerts", "device_id"))
    stmt = sql.SQL(
        "SELECT " + _ALERT_COLUMNS + " FROM alerts "
        "WHERE (%s = 'all' OR state <> 'cleared') AND (%s::text IS NULL OR device_id = %s) "
        "AND {} ORDER BY raised_at DESC LIMIT %s"
    ).format(visible)
    async with req.connection() as conn:
        cur = await conn.execute(
            stmt, [query.state, query.device_id, query.device_id, *params, query.limit]
        )
        rows = await cur.fetchall()
    return AlertPage([AlertOut(*r) for r in rows])


async def alert_scope(req: Req, path: AlertPath) -> None:
    """404 unless the alert exists and the caller may see its device."""
    visible, params = device_clause(req.user, sql.Identifier("a", "device_id"))
    async with req.connection() as conn:
        cur = await conn.execute(
            sql.SQL("SELECT 1 FROM alerts a WHERE a.alert_id = %s AND {}").format(visible),
            [path.alert_id, *params],
        )
        if await cur.fetchone() is None:
            raise NotFound(f"no alert {path.alert_id!r}", field="alert_id")


@routes.post(
    "/api/v1/alerts/{alert_id}/acknowledge",
    access=Access.write(scope=alert_scope),
    summary="Acknowledge an active alert (the caller is who acknowledged it)",
    errors=(409,),
)
async def acknowledge(req: Req, path: AlertPath) -> AlertOut:
    user = req.user
    async with req.connection() as conn, conn.transaction():
        cur = await conn.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = %s FOR UPDATE",
            (path.alert_id,),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no alert {path.alert_id!r}", field="alert_id")
        if row[4] == "cleared":
            raise Conflict(f"alert {path.alert_id} is cleared: nothing to acknowledge")
        cur = await conn.execute(
            f"UPDATE alerts SET state = 'acknowledged', acknowledged_by = %s, "
            f"acknowledged_at = now() WHERE alert_id = %s RETURNING {_ALERT_COLUMNS}",
            (user.email, path.alert_id),
        )
        row = await cur.fetchone()
        assert row is not None
        alert = alert_from_row(row)
        events = req.app.get(ALERT_EVENTS)
        if events is not None:
            await events(
                conn,
                "alert.acknowledged",
                f"alert.acknowledged:{path.alert_id}:{alert.occurrences}",
                {"alert_id": path.alert_id, "device_id": alert.asset_id, "by": user.email},
            )
    return AlertOut(*row)


def setup(app: web.Application) -> None:
    routes.mount(app)
