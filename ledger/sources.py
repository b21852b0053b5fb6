"""Field records other packages produce, pulled into the log by the sealer.

Pulling (rather than each package pushing) keeps the packages apart and loses nothing:
whatever committed row is not yet in `ledger_entry` is appended on the next tick, once,
keyed by (source, source_id). Sources: visit check-ins and completed visits (geo), work
orders done (crm). Afterwards, CRM audit entries of those records point at their receipts.
"""

from __future__ import annotations

from typing import Any

import psycopg

from ledger.store import append

VISIT_CHECKIN = "visit.checkin"
VISIT_COMPLETED = "visit.completed"
WORK_ORDER_DONE = "work_order.completed"


def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def _iso(t: Any) -> str | None:
    return None if t is None else t.isoformat()


def ingest_visits(conn: psycopg.Connection[Any], limit: int = 5_000) -> int:
    if not _exists(conn, "visits"):
        return 0
    n = 0
    rows = conn.execute(
        "SELECT v.id, v.subject_id, v.account_id, v.rep_id, v.arrived_at, v.checked_in_at FROM visits v"
        " WHERE NOT EXISTS (SELECT 1 FROM ledger_entry l WHERE l.source = %s AND l.source_id = v.id::text)"
        " ORDER BY v.id LIMIT %s",
        (VISIT_CHECKIN, limit),
    ).fetchall()
    for vid, device, account, rep, arrived, checked_in in rows:
        append(
            conn,
            VISIT_CHECKIN,
            str(vid),
            {
                "visit_id": vid,
                "device_id": device,
                "account_id": account,
                "rep_id": rep,
                "arrived_at": _iso(arrived),
                "checked_in_at": _iso(checked_in),
            },
        )
        n += 1
    rows = conn.execute(
        "SELECT v.id, v.subject_id, v.account_id, v.rep_id, v.arrived_at, v.departed_at, v.duration_s,"
        " v.activity_id FROM visits v WHERE v.status = 'completed'"
        " AND NOT EXISTS (SELECT 1 FROM ledger_entry l WHERE l.source = %s AND l.source_id = v.id::text)"
        " ORDER BY v.id LIMIT %s",
        (VISIT_COMPLETED, limit),
    ).fetchall()
    for vid, device, account, rep, arrived, departed, duration_s, activity in rows:
        append(
            conn,
            VISIT_COMPLETED,
            str(vid),
            {
                "visit_id": vid,
                "device_id": device,
                "account_id": account,
                "rep_id": rep,
                "arrived_at": _iso(arrived),
                "departed_at": _iso(departed),
                "duration_s": round(float(duration_s or 0.0), 3),
                "activity_id": activity,
            },
        )
        n += 1
    return n


def ingest_work_orders(conn: psycopg.Connection[Any], limit: int = 5_000) -> int:
    if not _exists(conn, "work_orders"):
        return 0
    rows = conn.execute(
        "SELECT w.id, w.account_id, w.title, w.priority, w.assignee_id, w.completed_at, w.source, w.source_ref"
        " FROM work_orders w WHERE w.status = 'done'"
        " AND NOT EXISTS (SELECT 1 FROM ledger_entry l WHERE l.source = %s AND l.source_id = w.id::text)"
        " ORDER BY w.id LIMIT %s",
        (WORK_ORDER_DONE, limit),
    ).fetchall()
    for wid, account, title, priority, assignee, completed, source, source_ref in rows:
        append(
            conn,
            WORK_ORDER_DONE,
            str(wid),
            {
                "work_order_id": wid,
                "account_id": account,
                "title": title,
                "priority": priority,
                "assignee_id": assignee,
                "completed_at": _iso(completed),
                "source": source,
                "source_ref": source_ref,
            },
        )
    return len(rows)


_LINK_AUDIT = """
UPDATE audit_log a
SET ledger_receipt = jsonb_build_object(
        'source', e.source, 'source_id', e.source_id, 'leaf_index', e.leaf_index,
        'event_hash', encode(e.event_hash, 'hex'), 'batch_id', r.batch_id,
        'proof', '/api/v1/ledger/events/' || e.source_id || '/proof?source=' || e.source)
FROM ledger_entry e
JOIN ledger_receipt r ON r.leaf_index = e.leaf_index
WHERE a.ledger_receipt IS NULL
  AND (
        (e.source = %(wo)s AND a.table_name = 'work_orders' AND a.record_id = e.source_id::bigint
         AND a.action = 'update' AND a.field = 'status' AND a.new_value = '"done"'::jsonb)
     OR (e.source = %(visit)s AND a.table_name = 'activities' AND a.action = 'insert'
         AND a.record_id = (e.entry_json::jsonb -> 'payload' ->> 'activity_id')::bigint)
  )
"""


def link_audit_receipts(conn: psycopg.Connection[Any]) -> int:
    """Point the CRM audit entries of completed work orders and logged visits at receipts."""
    if not _exists(conn, "audit_log"):
        return 0
    return conn.execute(_LINK_AUDIT, {"wo": WORK_ORDER_DONE, "visit": VISIT_COMPLETED}).rowcount


def ingest_all(conn: psycopg.Connection[Any]) -> int:
    return ingest_visits(conn) + ingest_work_orders(conn)
