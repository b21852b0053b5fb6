from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from alerts.model import AlertBook
from alerts.rules import Severity
from crm_sync import webhooks
from crm_sync.errors import UnknownAsset
from crm_sync.workorders import open_work_order, publish_alert
from tests.crm_sync.fixtures import LOOPBACK

from .fixtures import make_site

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _alert(device_id: str, severity: Severity = Severity.CRITICAL):  # type: ignore[no-untyped-def]
    book = AlertBook()
    ev = book.raise_alert(
        device_id,
        "vibration_mm_s:threshold:above",
        severity,
        1_764_000_000_000,
        window_start_ms=1_763_999_000_000,
        message="vibration 9.1 mm/s above 7.0 for 60 s",
    )
    return ev.alert


def test_critical_alert_opens_one_urgent_work_order_for_the_skilled_least_loaded_rep(
    db: psycopg.Connection,
) -> None:
    site = make_site(db, tier="premium", sla_hours=48)
    sub_id, _ = webhooks.create_subscription(
        db,
        "http://127.0.0.1:9/hook",
        ["work_order.created", "work_order.urgent"],
        allow=LOOPBACK,
    )
    alert = _alert(site.device_id)
    res = open_work_order(db, alert, now=NOW)
    assert res is not None and res.created
    assert res.priority == "urgent" and res.urgent
    assert res.assignee_id == site.pump_rep  # bo has open work, cy lacks the skill
    wo = db.execute(
        "SELECT account_id, status, sla_due_at, required_skills, territory_id "
        "FROM work_orders WHERE id = %s",
        (res.work_order_id,),
    ).fetchone()
    assert wo == (
        site.account_id,
        "assigned",
        NOW + timedelta(hours=24),
        ["pump"],
        site.territory_id,
    )
    timeline = db.execute(
        "SELECT subject FROM activities WHERE account_id = %s AND work_order_id = %s",
        (site.account_id, res.work_order_id),
    ).fetchall()
    assert len(timeline) == 1
    # the evidence window is read by people in any zone: seconds, in UTC, named
    (description,) = db.execute(
        "SELECT description FROM work_orders WHERE id = %s", (res.work_order_id,)
    ).fetchone() or ("",)
    assert description.endswith("; evidence window 2025-11-24, 15:43:20 to 16:00:00 UTC.")
    # the equipment by its model and device, not by a row id people cannot look up
    (model,) = db.execute(
        "SELECT equipment_model FROM assets WHERE device_id = %s", (site.device_id,)
    ).fetchone() or ("",)
    second = description.splitlines()[1]
    assert second.startswith(f"{model} ") and f"(device {site.device_id}) at " in second
    assert "Asset " not in description
    events = {d.event_type for d in webhooks.deliveries(db, sub_id)}
    assert events == {"work_order.created", "work_order.urgent"}
    db.rollback()


def test_redelivered_alert_does_not_open_a_second_work_order(db: psycopg.Connection) -> None:
    site = make_site(db)
    alert = _alert(site.device_id)
    first = open_work_order(db, alert, now=NOW)
    db.commit()
    again = open_work_order(db, alert, now=NOW + timedelta(minutes=5))
    db.commit()
    assert first is not None and again is not None
    assert (again.work_order_id, again.created) == (first.work_order_id, False)
    (count,) = db.execute(
        "SELECT count(*) FROM work_orders WHERE source = 'alert' AND source_ref = %s",
        (f"alert:{alert.alert_id}",),
    ).fetchone() or (0,)
    assert count == 1
    (acts,) = db.execute(
        "SELECT count(*) FROM activities WHERE work_order_id = %s", (first.work_order_id,)
    ).fetchone() or (0,)
    assert acts == 1


def test_priority_and_sla_follow_the_contract_and_severity(db: psycopg.Connection) -> None:
    site = make_site(db, tier="basic", sla_hours=72)
    res = open_work_order(db, _alert(site.device_id, Severity.WARNING), now=NOW)
    assert res is not None and res.priority == "normal" and not res.urgent
    (due,) = db.execute(
        "SELECT sla_due_at FROM work_orders WHERE id = %s", (res.work_order_id,)
    ).fetchone() or (None,)
    assert due == NOW + timedelta(hours=72)
    db.rollback()


def test_alert_below_the_severity_opens_nothing(db: psycopg.Connection) -> None:
    site = make_site(db)
    assert open_work_order(db, _alert(site.device_id, Severity.INFO), now=NOW) is None
    db.rollback()


def test_alert_on_an_unknown_asset_is_a_clear_error(db: psycopg.Connection) -> None:
    with pytest.raises(UnknownAsset, match="no asset has device 'ghost-"):
        open_work_order(db, _alert(f"ghost-{uuid.uuid4().hex[:6]}"), now=NOW)
    db.rollback()


def test_alert_changes_become_webhook_events_once_per_occurrence(db: psycopg.Connection) -> None:
    sub_id, _ = webhooks.create_subscription(
        db, "http://127.0.0.1:9/h", ["alert.raised"], allow=LOOPBACK
    )
    alert = _alert("dev-any")
    assert publish_alert(db, alert, "raised") >= 1  # other tests' subscribers may count
    assert publish_alert(db, alert, "raised") == 0  # the same occurrence again
    assert [d.event_type for d in webhooks.deliveries(db, sub_id)] == ["alert.raised"]
    db.rollback()
