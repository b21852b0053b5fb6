"""HTTP API of alert rules and alerts.

    GET    /api/v1/alert-rules                  every rule
    PUT    /api/v1/alert-rules/{rule_id}        admin: create or replace a rule
    DELETE /api/v1/alert-rules/{rule_id}        admin
    GET    /api/v1/alerts?state=active|all&device_id=...
    POST   /api/v1/alerts/{alert_id}/acknowledge    who acknowledges is the caller

A rule on an unknown equipment model, or on a metric the model does not report, is
refused (422 naming the field). A model reports the simulator's metrics if it is one of
the simulator's models, and whatever its assets' devices have reported.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web

from crm_sync.webhooks import enqueue_async
from gateway.alert_store import alert_from_row
from gateway.rules import Direction, Rule, RuleError, RuleKind, Severity, validate_rules
from identity.auth import current_user
from kernel.errors import ApiError, Conflict, NotFound, Unprocessable

_RULE_COLUMNS = (
    "rule_id, equipment_model, metric, kind, direction, limit_value, clear_at, "
    "min_duration_s, rate_window_s, severity, updated_at"
)
_ALERT_COLUMNS = (
    "alert_id, device_id, alert_type, severity, state, message, raised_at, window_start, "
    "window_end, occurrences, acknowledged_by, acknowledged_at, cleared_at"
)


def _pool(request: web.Request) -> Any:
    from kernel.web import DB_POOL

    return request.app[DB_POOL]


def _plain(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def _rule_json(r: tuple[Any, ...]) -> dict[str, Any]:
    keys = [k.strip() for k in _RULE_COLUMNS.split(",")]
    out = {k: _plain(v) for k, v in zip(keys, r, strict=True)}
    out["limit"] = out.pop("limit_value")
    return out


def _alert_json(r: tuple[Any, ...]) -> dict[str, Any]:
    keys = [k.strip() for k in _ALERT_COLUMNS.split(",")]
    return {k: _plain(v) for k, v in zip(keys, r, strict=True)}


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


def _parse_rule(rule_id: str, body: Any) -> Rule:
    if not isinstance(body, dict):
        raise Unprocessable("body must be an object", field="$")

    def need(key: str, kind: type) -> Any:
        v = body.get(key)
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, kind):
            raise Unprocessable(f"{key} is required ({kind.__name__})", field=key)
        return v

    def opt_float(key: str, default: float) -> float:
        v = body.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise Unprocessable(f"{key} must be a number", field=key)
        return float(v)

    try:
        return Rule(
            rule_id=rule_id,
            equipment_model=need("equipment_model", str),
            metric=need("metric", str),
            kind=RuleKind(need("kind", str)),
            direction=Direction(need("direction", str)),
            limit=need("limit", float),
            clear_at=need("clear_at", float),
            min_duration_s=opt_float("min_duration_s", 0.0),
            rate_window_s=opt_float("rate_window_s", 3600.0),
            severity=Severity(body.get("severity", "warning")),
        )
    except ValueError as exc:  # an unknown enum value, or RuleError (a ValueError)
        raise Unprocessable(str(exc)) from exc


async def list_rules(request: web.Request) -> web.Response:
    await current_user(request)
    async with _pool(request).connection() as conn:
        cur = await conn.execute(f"SELECT {_RULE_COLUMNS} FROM alert_rules ORDER BY rule_id")
        rows = await cur.fetchall()
    return web.json_response({"items": [_rule_json(r) for r in rows]})


async def put_rule(request: web.Request) -> web.Response:
    (await current_user(request)).require_admin()
    try:
        body = json.loads(await request.read())
    except json.JSONDecodeError as exc:
        raise ApiError(f"request body is not valid JSON: {exc.msg}", code="invalid_json") from exc
    rule = _parse_rule(request.match_info["rule_id"], body)
    async with _pool(request).connection() as conn:
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
    return web.json_response(_rule_json(row[:-1]), status=201 if row[-1] else 200)


async def delete_rule(request: web.Request) -> web.Response:
    (await current_user(request)).require_admin()
    rule_id = request.match_info["rule_id"]
    async with _pool(request).connection() as conn:
        cur = await conn.execute("DELETE FROM alert_rules WHERE rule_id = %s", (rule_id,))
        if cur.rowcount == 0:
            raise NotFound(f"no rule {rule_id!r}", field="rule_id")
    return web.Response(status=204)


async def list_alerts(request: web.Request) -> web.Response:
    await current_user(request)
    state = request.query.get("state", "active")
    if state not in ("active", "all"):
        raise Unprocessable("state must be active or all", field="state")
    device = request.query.get("device_id")
    async with _pool(request).connection() as conn:
        cur = await conn.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts "
            "WHERE (%s = 'all' OR state <> 'cleared') AND (%s::text IS NULL OR device_id = %s) "
            "ORDER BY raised_at DESC LIMIT 500",
            (state, device, device),
        )
        rows = await cur.fetchall()
    return web.json_response({"items": [_alert_json(r) for r in rows]})


async def acknowledge(request: web.Request) -> web.Response:
    user = await current_user(request)
    user.require_write()
    alert_id = request.match_info["alert_id"]
    async with _pool(request).connection() as conn, conn.transaction():
        cur = await conn.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = %s FOR UPDATE", (alert_id,)
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no alert {alert_id!r}", field="alert_id")
        if row[4] == "cleared":
            raise Conflict(f"alert {alert_id} is cleared: nothing to acknowledge")
        cur = await conn.execute(
            f"UPDATE alerts SET state = 'acknowledged', acknowledged_by = %s, "
            f"acknowledged_at = now() WHERE alert_id = %s RETURNING {_ALERT_COLUMNS}",
            (user.email, alert_id),
        )
        row = await cur.fetchone()
        alert = alert_from_row(row)
        await enqueue_async(
            conn,
            "alert.acknowledged",
            f"alert.acknowledged:{alert_id}:{alert.occurrences}",
            {"alert_id": alert_id, "device_id": alert.asset_id, "by": user.email},
        )
    return web.json_response(_alert_json(row))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/alert-rules", list_rules)
    app.router.add_put("/api/v1/alert-rules/{rule_id}", put_rule)
    app.router.add_delete("/api/v1/alert-rules/{rule_id}", delete_rule)
    app.router.add_get("/api/v1/alerts", list_alerts)
    app.router.add_post("/api/v1/alerts/{alert_id}/acknowledge", acknowledge)
