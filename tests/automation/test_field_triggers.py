"""Field events start workflows end to end: a real alert raised by the gateway's alert
stage (telemetry batch -> rule -> alert, in the batch's transaction) and escalated by the
alerts service, geofence events and a completed visit produced by the live geofence engine
from a phone's GPS fixes, each start their workflow once (the capture triggers on alerts,
geo_events and visits, the matcher, a real worker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from alerts import store as alert_store
from alerts.rules import Severity
from alerts.stage import AlertStage
from automation.clock import ManualClock
from crm_sync.loop import CrmVisitHooks
from crm_sync.workorders import CrmAlertHooks
from geo.live import LiveGeo
from tests.alerts.test_alert_stage import T0_MS, _batch, _site_with_rule
from tests.automation.harness import deactivate_all, query, save_workflow, worker_thread
from tests.eventually import eventually
from tests.geo.test_live_db import feed, make_site, visit_track
from tests.world import People

pytestmark = pytest.mark.integration


@pytest.fixture
def worker(db_dsn: str) -> Iterator[None]:
    deactivate_all(db_dsn)
    with worker_thread(db_dsn, ManualClock()):
        yield


def _tasks(dsn: str, like: str) -> list[tuple[str, int | None, int | None]]:
    return [
        (str(r[0]), r[1], r[2])
        for r in query(
            dsn,
            "SELECT subject, owner_id, account_id FROM activities WHERE source = 'automation'"
            " AND subject LIKE %s ORDER BY id",
            (like,),
        )
    ]


def _task_workflow(
    dsn: str, owner: int, name: str, trigger: dict[str, object], subject: str
) -> int:
    return save_workflow(
        dsn,
        owner,
        {
            "name": name,
            "trigger": trigger,
            "steps": [{"id": "task", "action": "create_task", "subject": subject,
                       "owner": "workflow_owner", "due_in_s": 3600}],
        },
    )  # fmt: skip


def test_a_real_alert_raised_and_escalated_starts_its_workflows_once(
    db_dsn: str, db: psycopg.Connection, people: People, worker: None
) -> None:
    tag = uuid.uuid4().hex[:6]
    manager = people.users["manager"]
    _task_workflow(
        db_dsn, manager, f"Critical alert {tag}",
        {"on": "alert.raised", "when": [{"field": "severity", "op": "eq", "value": "critical"}]},
        "Call about {{record.alert_type}} on {{record.device_id}} " + tag,
    )  # fmt: skip
    _task_workflow(
        db_dsn, manager, f"Escalated {tag}", {"on": "alert.escalated"},
        "Escalated to {{record.severity}} " + tag,
    )  # fmt: skip
    # the gateway's alert stage on a telemetry batch: a vibration excursion raises an alert
    site = _site_with_rule(db, severity="critical")
    stage = AlertStage(hooks=CrmAlertHooks())
    stage.handle(db, _batch(site.device_id, [9.0] * 10))
    db.commit()
    (raised,) = stage.last_events
    stage.handle(db, _batch(site.device_id, [9.5] * 10, start=10))  # repeats: no new trigger
    db.commit()
    got = eventually(
        lambda: _tasks(db_dsn, f"Call about %{tag}") or None, what="the alert's workflow ran"
    )
    assert got == [
        (f"Call about {raised.alert.alert_type} on {site.device_id} {tag}", manager, None)
    ]
    # the alerts service escalates another device's warning to critical
    other = f"dev-{tag}"
    alert_store.raise_alert(db, other, "overheat", Severity.WARNING, T0_MS)
    db.commit()
    alert_store.raise_alert(db, other, "overheat", Severity.CRITICAL, T0_MS + 60_000)
    db.commit()
    eventually(lambda: _tasks(db_dsn, f"Escalated %{tag}"), what="the escalation's workflow ran")
    # the warning raise did not match the critical-only workflow; nothing ran twice
    eventually(
        lambda: (
            query(
                db_dsn,
                "SELECT count(*) FROM automation_changes WHERE event LIKE 'alert.%%'",
            )[0][0]
            == 0
        ),
        what="every alert change matched",
    )
    assert len(_tasks(db_dsn, f"Call about %{tag}")) == 1
    assert _tasks(db_dsn, f"Escalated %{tag}") == [(f"Escalated to critical {tag}", manager, None)]


def test_geofence_events_and_a_completed_visit_from_gps_start_their_workflows(
    db_dsn: str, db: psycopg.Connection, people: People, worker: None
) -> None:
    tag = uuid.uuid4().hex[:6]
    rep = people.users["rep1"]
    account_id, _visit_rep, fence, device = make_site(db)
    db.execute(
        "UPDATE accounts SET territory_id = %s, owner_id = %s WHERE id = %s",
        (people.t1, rep, account_id),
    )
    db.commit()
    try:
        _geofence_workflows(db_dsn, db, people, tag, rep, account_id, device)
    finally:
        # the site's fence is committed: left active it would double every later live-engine
        # test's events at the same place
        db.rollback()
        db.execute("UPDATE geofences SET active = false WHERE id = %s", (fence,))
        db.commit()


def _geofence_workflows(
    db_dsn: str,
    db: psycopg.Connection,
    people: People,
    tag: str,
    rep: int,
    account_id: int,
    device: str,
) -> None:
    _task_workflow(
        db_dsn, rep, f"Arrived {tag}", {"on": "geofence.enter"},
        "Arrived at site (device {{record.subject_id}}) " + tag,
    )  # fmt: skip
    wid = _task_workflow(
        db_dsn, rep, f"Visit done {tag}",
        {"on": "visit.completed", "when": [{"field": "duration_s", "op": "gte", "value": 600}]},
        "Follow up the visit of {{record.duration_s}} s " + tag,
    )  # fmt: skip
    # the live geofence engine on the phone's fixes: enter, dwell (the check-in), exit
    live = LiveGeo(visit_hooks=CrmVisitHooks())
    events = feed(live, db, device, visit_track())
    db.commit()
    assert [k for k, _ in events] == ["enter", "dwell", "exit"]
    eventually(lambda: _tasks(db_dsn, f"Arrived at site %{tag}"), what="the geofence workflow")
    got = eventually(
        lambda: _tasks(db_dsn, f"Follow up the visit %{tag}") or None, what="the visit workflow"
    )
    assert got == [(f"Follow up the visit of 860 s {tag}", rep, account_id)]
    assert _tasks(db_dsn, f"Arrived at site %{tag}") == [
        (f"Arrived at site (device {device}) {tag}", rep, account_id)
    ]

    # the task is made by the run's step; the run is marked completed when the worker
    # next takes it (after the step's commit: on a loaded machine a moment later)
    def finished() -> tuple[Any, ...] | None:
        (run,) = query(
            db_dsn, "SELECT record_object, record_id, status FROM automation_runs"
            " WHERE workflow_id = %s", (wid,),
        )  # fmt: skip
        return run if run[2] not in ("ready", "waiting") else None

    run = eventually(finished, what="the visit workflow's run to finish")
    assert run == ("accounts", str(account_id), "completed")
    # what automation did to the account: its log lists the task
    log = query(
        db_dsn,
        "SELECT summary FROM automation_record_log WHERE record_object = 'accounts' AND record_id = %s",
        (str(account_id),),
    )
    assert len(log) == 2 and all("created task" in r[0] for r in log)
