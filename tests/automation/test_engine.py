"""The engine against the real database and a real jobs worker: triggers from record
changes, tasks for the right owner once, waits through the injectable clock, exits,
loops stopped, the owner's rights, SLA escalation ladders."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from automation.clock import ManualClock
from tests.automation.harness import (
    create,
    deactivate_all,
    query,
    save_workflow,
    stage_id,
    update,
    worker_thread,
)
from tests.eventually import eventually
from tests.world import People

pytestmark = pytest.mark.integration


@pytest.fixture
def clock(db_dsn: str) -> Iterator[ManualClock]:
    deactivate_all(db_dsn)
    c = ManualClock()
    with worker_thread(db_dsn, c):
        yield c


def _account(dsn: str, people: People, who: str = "rep1") -> int:
    territory = people.t1 if who in ("rep1", "manager") else people.t2
    return int(create(dsn, people.users[who], "accounts", name=f"Acme {uuid.uuid4().hex[:6]}", territory_id=territory)["id"])


def _runs(dsn: str, wid: int, status: str | None = None) -> list[tuple[int, str, str | None]]:
    return [
        (int(r[0]), str(r[1]), r[2])
        for r in query(
            dsn,
            "SELECT id, status, error FROM automation_runs WHERE workflow_id = %s"
            " AND (%s::text IS NULL OR status = %s) ORDER BY id",
            (wid, status, status),
        )
    ]


def test_a_stage_change_creates_one_task_for_the_records_owner(db_dsn: str, people: People, clock: ManualClock) -> None:
    negotiation = stage_id(db_dsn, "Negotiation")
    wid = save_workflow(
        db_dsn,
        people.users["manager"],
        {
            "name": "Negotiation follow-up",
            "trigger": {"on": "opportunities.updated", "when": [{"field": "stage_id", "op": "changed_to", "value": negotiation}]},
            "steps": [{"id": "task", "action": "create_task", "subject": "Prepare terms for {{record.name}}", "due_in_s": 86400}],
        },
    )
    account = _account(db_dsn, people)
    opp = create(db_dsn, people.users["rep1"], "opportunities", name="Big deal", account_id=account, amount=1000)
    update(db_dsn, people.users["rep1"], "opportunities", opp["id"], stage_id=negotiation)
    update(db_dsn, people.users["rep1"], "opportunities", opp["id"], amount=2000)  # no stage change

    eventually(lambda: _runs(db_dsn, wid, "completed"), what="the run completed")
    tasks = query(
        db_dsn,
        "SELECT owner_id, subject, due_at IS NOT NULL FROM activities WHERE opportunity_id = %s AND source = 'automation'",
        (opp["id"],),
    )
    assert tasks == [(people.users["rep1"], "Prepare terms for Big deal", True)]
    assert len(_runs(db_dsn, wid)) == 1
    log = query(
        db_dsn,
        "SELECT step_id, action FROM automation_record_log WHERE record_object = 'opportunities' AND record_id = %s",
        (str(opp["id"]),),
    )
    assert log == [("task", "create_task")]
