"""Visits and completed work orders reach the ledger, and the CRM audit points at receipts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from crm_sync.visits import log_visit_activity
from kernel.settings import Settings
from ledger import store
from ledger.chain import Chain
from ledger.receipt import verify_receipt
from ledger.sources import VISIT_CHECKIN, VISIT_COMPLETED, WORK_ORDER_DONE
from tests.ledger.test_sealer import make_sealer

pytestmark = pytest.mark.integration


def _field_records(dsn: str) -> tuple[int, int, int]:
    """An account, a completed visit with its activity, and a work order marked done."""
    arrived = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        account = conn.execute(
            "INSERT INTO accounts (name) VALUES (%s) RETURNING id",
            (f"Acme {uuid.uuid4().hex[:6]}",),
        ).fetchone()[0]  # type: ignore[index]
        fence = conn.execute(
            "INSERT INTO geofences (name, kind, geom, radius_m, account_id)"
            " VALUES ('site', 'circle', ST_SetSRID(ST_MakePoint(4.8, 45.7), 4326)::geography, 50, %s)"
            " RETURNING id",
            (account,),
        ).fetchone()
        assert fence is not None
        visit = conn.execute(
            "INSERT INTO visits (subject_id, fence_id, account_id, arrived_at, checked_in_at, departed_at,"
            " duration_s, status) VALUES ('rep-phone', %s, %s, %s, %s, %s, 1800, 'completed') RETURNING id",
            (
                fence[0],
                account,
                arrived,
                arrived + timedelta(minutes=5),
                arrived + timedelta(minutes=30),
            ),
        ).fetchone()[0]  # type: ignore[index]
        activity = log_visit_activity(
            conn,
            visit_id=visit,
            account_id=account,
            rep_id=None,
            arrived_at=arrived,
            departed_at=arrived + timedelta(minutes=30),
            device_id="rep-phone",
        )
        conn.execute("UPDATE visits SET activity_id = %s WHERE id = %s", (activity, visit))
        wo = conn.execute(
            "INSERT INTO work_orders (account_id, title, priority) VALUES (%s, 'Replace seal', 'high') RETURNING id",
            (account,),
        ).fetchone()[0]  # type: ignore[index]
        for status in ("assigned", "in_progress", "done"):  # the CRM refuses shortcuts
            conn.execute("UPDATE work_orders SET status = %s WHERE id = %s", (status, wo))
    return visit, wo, activity


def test_visits_and_work_orders_are_anchored_and_audit_points_at_receipts(
    db_dsn: str, test_settings: Settings
) -> None:
    visit, wo, activity = _field_records(db_dsn)
    chain = Chain.connect(None)
    with make_sealer(db_dsn, chain, batch_size=1) as sealer:
        sealer.tick(force_seal=True)
        sealer.tick(force_seal=True)
        sealer.tick()
        with psycopg.connect(db_dsn) as conn:
            receipts = {
                src: store.receipt_for(conn, str(sid), src)
                for src, sid in (
                    (VISIT_CHECKIN, visit),
                    (VISIT_COMPLETED, visit),
                    (WORK_ORDER_DONE, wo),
                )
            }
            audit = conn.execute(
                "SELECT table_name, ledger_receipt FROM audit_log WHERE ledger_receipt IS NOT NULL"
                " AND ((table_name = 'work_orders' AND record_id = %s) OR (table_name = 'activities' AND record_id = %s))",
                (wo, activity),
            ).fetchall()
    for src, receipt in receipts.items():
        assert receipt is not None, f"{src} has no receipt"
        assert verify_receipt(receipt, chain).ok
    assert receipts[WORK_ORDER_DONE].entry["payload"]["title"] == "Replace seal"  # type: ignore[union-attr]
    linked = {row[0]: row[1] for row in audit}
    assert linked["work_orders"]["source"] == WORK_ORDER_DONE
    assert linked["activities"]["source"] == VISIT_COMPLETED
    assert linked["work_orders"]["proof"].endswith(f"/{wo}/proof?source={WORK_ORDER_DONE}")
