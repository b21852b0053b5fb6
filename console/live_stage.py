"""Gateway stage: announce what this batch stored, on commit, to the web console.

Inside the batch transaction the stage sends `pg_notify('fm_live', <json>)`. PostgreSQL
delivers notifications only when the transaction commits (and drops them on rollback), so a
browser never sees a position or an event that was not stored. Each payload is kept under
NOTIFY_LIMIT_BYTES (PostgreSQL refuses payloads of 8000 bytes or more): a large batch is
split into several notifications.

Payload (compact JSON, `k` is the kind):
    {"k": "pos", "rt": <ms, when the gateway received the batch's earliest message (the MQTT
     hop included), or when the stage saw the batch>, "d": [[device, lon, lat, t_ms, speed_mps|null], ...]}
    {"k": "status", "d": [[device, true], ...]}  (devices that sent a stored message in this
     batch: online by telemetry.online's definition, a message received now; a device's own
     status message does not decide it, and going offline is a matter of time passing, which
     the map learns when it reloads /console/api/positions)
    {"k": "geo", "d": [[subject, fence_id, kind, at_ms, account_id|null], ...]}
    {"k": "alert", "d": [[device, alert_id, alert_type, severity, state, raised_at_ms,
                          message], ...]}  (alerts raised, escalated or cleared in this batch)
    {"k": "dead", "n": <dead letters stored in this transaction>}

Only the latest fix per device of a batch is announced: the map needs where a device is now.
Rows written in this transaction by the writer or earlier stages are found by `xmin` (the
current transaction id), so dead letters need no change to the writer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg

from gateway.pipeline import NewMessages

CHANNEL = "fm_live"
NOTIFY_LIMIT_BYTES = 7900

_THIS_XACT = "xmin = pg_current_xact_id()::text::xid"


def latest_fixes(new: NewMessages) -> list[list[Any]]:
    """[[device, lon, lat, t_ms, speed], ...]: the newest fix of each device in the batch."""
    best: dict[str, list[Any]] = {}
    for device_id, batch in new.gps:
        for f in batch.fixes:
            cur = best.get(device_id)
            if cur is None or f.t_ms >= cur[3]:
                speed = None if f.speed_mps is None else round(f.speed_mps, 1)
                best[device_id] = [device_id, round(f.lon, 6), round(f.lat, 6), f.t_ms, speed]
    return list(best.values())


def chunked_payloads(
    head: dict[str, Any], rows: Iterable[list[Any]], limit_bytes: int = NOTIFY_LIMIT_BYTES
) -> Iterator[str]:
    """JSON payloads `{**head, "d": [...]}`, each under `limit_bytes` (UTF-8)."""
    prefix = json.dumps(head, separators=(",", ":"))[:-1] + ',"d":['
    parts: list[str] = []
    size = len(prefix.encode()) + 2
    for row in rows:
        item = json.dumps(row, separators=(",", ":"))
        n = len(item.encode()) + 1
        if size + n + len(prefix) + 2 > limit_bytes and len(prefix) + 2 + n > limit_bytes:
            continue  # a single row too large to ever fit (absurd device id): skip it
        if parts and size + n > limit_bytes:
            yield prefix + ",".join(parts) + "]}"
            parts, size = [], len(prefix.encode()) + 2
        parts.append(item)
        size += n
    if parts:
        yield prefix + ",".join(parts) + "]}"


class LiveStage:
    """gateway.pipeline.StageHandler: notifications are sent in the transaction, delivered
    by PostgreSQL at commit; it keeps no state, so rollback and committed have nothing to do."""

    name = "console-live"

    def __init__(self, clock_ms: Any = None) -> None:
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._tables: dict[str, bool] = {}  # optional tables (geo, alerts) that exist
        # Highest id seen in an earlier transaction: ids this transaction allocates are
        # greater, so the index on id bounds the scan (rolled-back ids are simply gone).
        self._floor: dict[str, int] = {}

    def handle(self, conn: psycopg.Connection, new: NewMessages) -> None:
        payloads: list[str] = []
        fixes = latest_fixes(new)
        if fixes:
            received_ns = new.earliest_received_ns
            rt = received_ns // 1_000_000 if received_ns is not None else self._clock_ms()
            payloads += chunked_payloads({"k": "pos", "rt": rt}, fixes)
        sent = sorted(
            {d for d, _ in new.telemetry}
            | {d for d, _ in new.gps}
            | {d for d, _ in new.events}
            | {d for d, _, _ in new.acks}
        )
        if sent:
            payloads += chunked_payloads({"k": "status"}, ([d, True] for d in sent))
        if self._has_table(conn, "geo_events"):
            rows = conn.execute(
                "SELECT id, subject_id, fence_id, kind, (extract(epoch FROM at) * 1000)::bigint,"
                " account_id, xmin = pg_current_xact_id()::text::xid FROM geo_events"
                " WHERE id > %s ORDER BY id",
                (self._floor_of(conn, "geo_events"),),
            ).fetchall()
            if rows:
                self._floor["geo_events"] = max(r[0] for r in rows)
                events = [list(r[1:6]) for r in rows if r[6]]
                payloads += chunked_payloads({"k": "geo"}, events)
        if new.telemetry and self._has_table(conn, "alerts"):
            # Alerts change only for devices whose telemetry is in this batch (the alert
            # stage runs before this one): the (device_id, raised_at) index bounds the scan.
            devices = sorted({device_id for device_id, _ in new.telemetry})
            rows = conn.execute(
                "SELECT device_id, alert_id, alert_type, severity, state,"
                " (extract(epoch FROM raised_at) * 1000)::bigint, left(message, 200)"
                f" FROM alerts WHERE device_id = ANY(%s) AND {_THIS_XACT} ORDER BY raised_at",
                (devices,),
            ).fetchall()
            if rows:
                payloads += chunked_payloads({"k": "alert"}, (list(r) for r in rows))
        dead = conn.execute(
            "SELECT count(*) FILTER (WHERE xmin = pg_current_xact_id()::text::xid),"
            " coalesce(max(id), %s) FROM dead_letter WHERE id > %s",
            (self._floor_of(conn, "dead_letter"), self._floor_of(conn, "dead_letter")),
        ).fetchone()
        if dead is not None:
            self._floor["dead_letter"] = int(dead[1])
            if dead[0]:
                payloads.append(json.dumps({"k": "dead", "n": int(dead[0])}, separators=(",", ":")))
        for p in payloads:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, p))

    def _floor_of(self, conn: psycopg.Connection, table: str) -> int:
        if table not in self._floor:  # first batch: the newest id of an earlier transaction
            row = conn.execute(
                f"SELECT id FROM {table} WHERE xmin <> pg_current_xact_id()::text::xid"
                " ORDER BY id DESC LIMIT 1"
            ).fetchone()
            self._floor[table] = int(row[0]) if row else 0
        return self._floor[table]

    def _has_table(self, conn: psycopg.Connection, table: str) -> bool:
        """Does an optional package's table exist (geo_events, alerts)? Asked once each."""
        if table not in self._tables:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
            self._tables[table] = bool(row and row[0])
        return self._tables[table]

    def rollback(self) -> None:
        return None

    def committed(self) -> None:
        return None
