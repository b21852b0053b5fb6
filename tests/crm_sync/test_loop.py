from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from alerts.model import AlertBook
from alerts.rules import Severity
from crm_sync import webhooks
from crm_sync.loop import on_check_in, on_visit_completed
from crm_sync.workorders import open_work_order
from tests.crm_sync.fixtures import LOOPBACK

from .fixtures import make_site

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_visit_starts_and_completes_the_alert_work_order(db: psycopg.Connection) -> None:
    site = make_site(db)
    sub, _ = webhooks.create_subscription(
        db, "http://127.0.0.1:9/h", ["visit.checked_in", "visit.completed"], allow=LOOPBACK
    )
    alert = AlertBook().raise_alert(site.device_id, "vib", Severity.CRITICAL, 1).alert
    wo = open_work_order(db, alert, now=NOW)
    assert wo is not None and wo.assignee_id == site.pump_rep

    # another rep's visit does not touch it
    assert on_check_in(db, visit_id=1, account_id=site.account_id, rep_id=site.other_rep,
                       arrived_at=NOW) == []  # fmt: skip
    started = on_check_in(
        db, visit_id=2, account_id=site.account_id, rep_id=site.pump_rep, arrived_at=NOW
    )
    assert started == [wo.work_order_id]
    done = on_visit_completed(
        db,
        visit_id=2,
        account_id=site.account_id,
        rep_id=site.pump_rep,
        departed_at=NOW + timedelta(minutes=50),
    )
    assert done == [wo.work_order_id]
    status = db.execute(
        "SELECT status, completed_at FROM work_orders WHERE id = %s", (wo.work_order_id,)
    ).fetchone()
    assert status == ("done", NOW + timedelta(minutes=50))
    # replaying the check-out changes nothing
    assert (
        on_visit_completed(
            db,
            visit_id=2,
            account_id=site.account_id,
            rep_id=site.pump_rep,
            departed_at=NOW + timedelta(minutes=50),
        )
        == []
    )
    (acts,) = db.execute(
        "SELECT count(*) FROM activities WHERE work_order_id = %s", (wo.work_order_id,)
    ).fetchone() or (0,)
    assert acts == 2  # opened, completed on site
    events = [d.event_id for d in webhooks.deliveries(db, sub)]
    assert events == ["visit.checked_in:1", "visit.checked_in:2", "visit.completed:2"]
    db.rollback()
