"""Alerts and rules in PostgreSQL: the life cycle of `alerts.model.AlertBook`, with the
database as the one source of truth shared by every gateway instance and the API.

The partial unique index `alerts_one_active (device_id, alert_type) WHERE state <>
'cleared'` is the de-duplication: a second raise while one is active only counts an
occurrence (and may escalate, which asks for a new acknowledgement); a raise soon after a
clear reopens the cleared alert (a flapping sensor makes one alert, not a storm).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from alerts.model import Alert, AlertEvent, AlertState, Change
from alerts.rules import Direction, Rule, RuleKind, Severity

_COLUMNS = (
    "alert_id, device_id, alert_type, severity, state, message, raised_at, window_start, "
    "window_end, occurrences, acknowledged_by, acknowledged_at, cleared_at"
)
_QUALIFIED = ", ".join(f"alerts.{c.strip()}" for c in _COLUMNS.split(","))
_RANK = "CASE %s WHEN 'info' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"
_RANK_COL = "CASE alerts.severity WHEN 'info' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"


def _ms(t: datetime | None) -> int | None:
    return None if t is None else int(t.timestamp() * 1000)


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def alert_from_row(r: tuple[Any, ...]) -> Alert:
    return Alert(
        alert_id=r[0],
        asset_id=r[1],
        alert_type=r[2],
        severity=Severity(r[3]),
        state=AlertState(r[4]),
        message=r[5],
        raised_at_ms=_ms(r[6]) or 0,
        window_start_ms=_ms(r[7]) or 0,
        window_end_ms=_ms(r[8]) or 0,
        occurrences=r[9],
        acknowledged_by=r[10],
        acknowledged_at_ms=_ms(r[11]),
        cleared_at_ms=_ms(r[12]),
    )


def load_rules(conn: psycopg.Connection[Any]) -> list[Rule]:
    rows = conn.execute(
        "SELECT rule_id, equipment_model, metric, kind, direction, limit_value, clear_at, "
        "min_duration_s, rate_window_s, severity FROM alert_rules ORDER BY rule_id"
    ).fetchall()
    return [
        Rule(
            rule_id=r[0],
            equipment_model=r[1],
            metric=r[2],
            kind=RuleKind(r[3]),
            direction=Direction(r[4]),
            limit=r[5],
            clear_at=r[6],
            min_duration_s=r[7],
            rate_window_s=r[8],
            severity=Severity(r[9]),
        )
        for r in rows
    ]


def rules_version(conn: psycopg.Connection[Any]) -> tuple[int, datetime | None]:
    """Changes whenever a rule is added, edited or removed (cheap to poll)."""
    row = conn.execute("SELECT count(*), max(updated_at) FROM alert_rules").fetchone()
    assert row is not None
    return int(row[0]), row[1]


def device_models(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """device_id -> equipment model of the asset it belongs to."""
    rows = conn.execute(
        "SELECT device_id, equipment_model FROM assets WHERE device_id IS NOT NULL"
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def active_keys(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    rows = conn.execute("SELECT device_id, alert_type FROM alerts WHERE state <> 'cleared'")
    return [(str(r[0]), str(r[1])) for r in rows.fetchall()]


def raise_alert(
    conn: psycopg.Connection[Any],
    device_id: str,
    alert_type: str,
    severity: Severity,
    t_ms: int,
    *,
    window_start_ms: int | None = None,
    message: str = "",
    reopen_within_s: float = 3600.0,
) -> AlertEvent:
    t = _ts(t_ms)
    sev = severity.value
    row = conn.execute(
        f"""
        WITH old AS (
            SELECT alert_id, severity FROM alerts
            WHERE device_id = %(dev)s AND alert_type = %(type)s AND state <> 'cleared'
            FOR UPDATE
        )
        UPDATE alerts SET
            occurrences = alerts.occurrences + 1,
            window_end = greatest(alerts.window_end, %(t)s),
            message = CASE WHEN %(msg)s = '' THEN alerts.message ELSE %(msg)s END,
            state = CASE WHEN {_RANK % "%(sev)s"} > {_RANK_COL} THEN 'raised' ELSE alerts.state END,
            severity = CASE WHEN {_RANK % "%(sev)s"} > {_RANK_COL} THEN %(sev)s
                            ELSE alerts.severity END
        FROM old WHERE alerts.alert_id = old.alert_id
        RETURNING {_QUALIFIED}, old.severity
        """,
        {"t": t, "msg": message, "sev": sev, "dev": device_id, "type": alert_type},
    ).fetchone()
    if row is not None:
        alert = alert_from_row(row)
        return AlertEvent(Change.REPEATED, alert, escalated=row[13] != alert.severity.value)
    row = conn.execute(
        f"""
        UPDATE alerts SET
            state = 'raised', cleared_at = NULL, acknowledged_by = NULL, acknowledged_at = NULL,
            occurrences = occurrences + 1, window_end = greatest(window_end, %(t)s),
            severity = CASE WHEN {_RANK % "%(sev)s"} > {_RANK_COL} THEN %(sev)s ELSE severity END,
            message = CASE WHEN %(msg)s = '' THEN message ELSE %(msg)s END
        WHERE alert_id = (
            SELECT alert_id FROM alerts
            WHERE device_id = %(dev)s AND alert_type = %(type)s AND state = 'cleared'
              AND cleared_at >= %(t)s - make_interval(secs => %(reopen)s)
            ORDER BY cleared_at DESC LIMIT 1
        )
        RETURNING {_COLUMNS}
        """,
        {
            "t": t,
            "msg": message,
            "sev": sev,
            "dev": device_id,
            "type": alert_type,
            "reopen": reopen_within_s,
        },
    ).fetchone()
    if row is not None:
        return AlertEvent(Change.REOPENED, alert_from_row(row))
    start = _ts(min(window_start_ms if window_start_ms is not None else t_ms, t_ms))
    row = conn.execute(
        f"""
        INSERT INTO alerts (alert_id, device_id, alert_type, severity, state, message,
                            raised_at, window_start, window_end)
        VALUES (%s, %s, %s, %s, 'raised', %s, %s, %s, %s)
        ON CONFLICT (device_id, alert_type) WHERE state <> 'cleared' DO NOTHING
        RETURNING {_COLUMNS}
        """,
        (uuid.uuid4().hex, device_id, alert_type, sev, message, t, start, t),
    ).fetchone()
    if row is None:  # another writer created it just now: count this raise on it
        return raise_alert(
            conn,
            device_id,
            alert_type,
            severity,
            t_ms,
            window_start_ms=window_start_ms,
            message=message,
            reopen_within_s=reopen_within_s,
        )
    return AlertEvent(Change.CREATED, alert_from_row(row))


def clear_alert(
    conn: psycopg.Connection[Any], device_id: str, alert_type: str, t_ms: int
) -> AlertEvent | None:
    t = _ts(t_ms)
    row = conn.execute(
        f"""
        UPDATE alerts SET state = 'cleared', cleared_at = %s, window_end = greatest(window_end, %s)
        WHERE device_id = %s AND alert_type = %s AND state <> 'cleared'
        RETURNING {_COLUMNS}
        """,
        (t, t, device_id, alert_type),
    ).fetchone()
    return None if row is None else AlertEvent(Change.CLEARED, alert_from_row(row))
