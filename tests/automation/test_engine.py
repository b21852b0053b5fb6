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
    return int(
        create(
            dsn,
            people.users[who],
            "accounts",
            name=f"Acme {uuid.uuid4().hex[:6]}",
            territory_id=territory,
        )["id"]
    )


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


def test_a_stage_change_creates_one_task_for_the_records_owner(
    db_dsn: str, people: People, clock: ManualClock
) -> None:
    negotiation = stage_id(db_dsn, "Negotiation")
    wid = save_workflow(
        db_dsn,
        people.users["manager"],
        {
            "name": "Negotiation follow-up",
            "trigger": {
                "on": "opportunities.updated",
                "when": [{"field": "stage_id", "op": "changed_to", "value": negotiation}],
            },
            "steps": [
                {
                    "id": "task",
                    "action": "create_task",
                    "subject": "Prepare terms for {{record.name}}",
                    "due_in_s": 86400,
                }
            ],
        },
    )
    account = _account(db_dsn, people)
    opp = create(
        db_dsn,
        people.users["rep1"],
        "opportunities",
        name="Big deal",
        account_id=account,
        amount=1000,
    )
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


def _notified(dsn: str, user_id: int, needle: str) -> int:
    return int(
        query(
            dsn,
            "SELECT count(*) FROM notifications WHERE user_id = %s AND kind = 'automation' AND title LIKE %s",
            (user_id, f"%{needle}%"),
        )[0][0]
    )


def test_a_workflow_that_triggers_itself_is_stopped_with_a_clear_error(
    db_dsn: str, people: People, clock: ManualClock
) -> None:
    wid = save_workflow(
        db_dsn,
        people.users["rep1"],
        {
            "name": "Touch on every change",
            "trigger": {"on": "accounts.updated"},
            "steps": [
                {
                    "id": "touch",
                    "action": "update_record",
                    "values": {"custom": {"touched": "{{record.version}}"}},
                }
            ],
        },
    )
    account = _account(db_dsn, people)
    update(
        db_dsn, people.users["rep1"], "accounts", account, name=f"Renamed {uuid.uuid4().hex[:6]}"
    )
    stopped = eventually(lambda: _runs(db_dsn, wid, "stopped"), what="the second run stopped")
    assert "loop stopped" in (stopped[0][2] or "") and f"workflow {wid}" in (stopped[0][2] or "")
    assert [r[1] for r in _runs(db_dsn, wid)] == ["completed", "stopped"]
    assert query(
        db_dsn,
        "SELECT last_error LIKE 'loop stopped%%' FROM automation_workflows WHERE id = %s",
        (wid,),
    ) == [(True,)]
    assert (
        query(
            db_dsn,
            "SELECT count(*) FROM notifications WHERE user_id = %s AND kind = 'automation.loop'",
            (people.users["rep1"],),
        )[0][0]
        >= 1
    )


def test_a_workflow_cannot_write_a_record_its_owner_may_not(
    db_dsn: str, people: People, clock: ManualClock
) -> None:
    from automation import service
    from tests.automation.harness import principal, run

    # rep2 (territory 2) owns a workflow; an admin starts it on rep1's opportunity
    wid = save_workflow(
        db_dsn,
        people.users["rep2"],
        {
            "name": "Mark as lost",
            "trigger": {"on": "manual", "object": "opportunities"},
            "steps": [{"id": "mark", "action": "update_record", "values": {"amount": 1}}],
        },
    )
    account = _account(db_dsn, people)
    opp = create(
        db_dsn,
        people.users["rep1"],
        "opportunities",
        name="Not yours",
        account_id=account,
        amount=500,
    )

    async def start() -> int:
        from psycopg import AsyncConnection

        admin = await principal(db_dsn, people.users["admin"])
        async with await AsyncConnection.connect(db_dsn) as conn:
            rid = await service.start_manual(conn, admin, wid, "opportunities", opp["id"], {})
            await conn.commit()
            return rid

    run(start())
    failed = eventually(lambda: _runs(db_dsn, wid, "failed"), what="the run failed")
    assert "step 'mark'" in (failed[0][2] or "") and "not found" in (failed[0][2] or "")
    assert (
        query(db_dsn, "SELECT amount FROM opportunities WHERE id = %s", (opp["id"],))[0][0] == 500
    )

    # and a change of a record the owner may not see does not start the owner's workflow
    watcher = save_workflow(
        db_dsn,
        people.users["rep2"],
        {
            "name": "Watch deals",
            "trigger": {"on": "opportunities.updated"},
            "steps": [
                {"id": "n", "action": "notify", "to": ["workflow_owner"], "title": "changed"}
            ],
        },
    )
    mine = create(
        db_dsn,
        people.users["rep2"],
        "opportunities",
        name="Mine",
        account_id=_account(db_dsn, people, "rep2"),
    )
    update(db_dsn, people.users["rep1"], "opportunities", opp["id"], amount=700)
    update(db_dsn, people.users["rep2"], "opportunities", mine["id"], amount=800)
    eventually(lambda: _runs(db_dsn, watcher, "completed"), what="the run on rep2's deal")
    assert [r[0] for r in _runs(db_dsn, watcher)] == [
        r[0] for r in _runs(db_dsn, watcher, "completed")
    ]
    assert len(_runs(db_dsn, watcher)) == 1


def _wake_ran_after(dsn: str, mark: object) -> bool:
    got = query(
        dsn,
        "SELECT count(*) FROM jobs WHERE task = 'automation.wake' AND status = 'done' AND finished_at > %s",
        (mark,),
    )
    return int(got[0][0]) >= 2


def test_a_sequence_sends_step_one_waits_and_exits_on_reply(
    db_dsn: str, people: People, clock: ManualClock
) -> None:
    from psycopg import AsyncConnection

    from automation import service
    from tests.automation.harness import principal, run

    seq = save_workflow(
        db_dsn,
        people.users["rep1"],
        {
            "name": "Welcome",
            "trigger": {"on": "manual", "object": "contacts"},
            "exit_on": [{"on": "email.replied"}, {"on": "meeting.booked"}],
            "steps": [
                {
                    "id": "hello",
                    "action": "send_message",
                    "channel": "email",
                    "subject": "Hello {{record.first_name}}",
                    "body": "Hi",
                    "business_hours": False,
                },
                {"id": "pause", "action": "wait", "duration_s": 3 * 86400},
                {
                    "id": "again",
                    "action": "send_message",
                    "channel": "email",
                    "subject": "Following up",
                    "body": "Still there?",
                    "business_hours": False,
                },
                {
                    "id": "call",
                    "action": "create_task",
                    "type": "call",
                    "subject": "Call {{record.first_name}}",
                },
            ],
        },
        kind="sequence",
    )
    a = create(
        db_dsn,
        people.users["rep1"],
        "contacts",
        first_name="Ann",
        last_name="A",
        email="ann@example.test",
    )
    b = create(
        db_dsn,
        people.users["rep1"],
        "contacts",
        first_name="Bob",
        last_name="B",
        email="bob@example.test",
    )

    async def enrol() -> dict[str, object]:
        p = await principal(db_dsn, people.users["rep1"])
        async with await AsyncConnection.connect(db_dsn) as conn:
            out = await service.enrol(conn, p, seq, "contacts", [a["id"], b["id"], a["id"]])
            await conn.commit()
            return out

    out = run(enrol())
    assert len(out["run_ids"]) == 2 and out["skipped"] == [a["id"]]

    def sent(contact: int) -> list[str]:
        return [
            r[0]
            for r in query(
                db_dsn,
                "SELECT subject FROM automation_messages WHERE to_object = 'contacts' AND to_id = %s ORDER BY id",
                (str(contact),),
            )
        ]

    eventually(
        lambda: len(_runs(db_dsn, seq, "waiting")) == 2, what="both enrolments wait after step 1"
    )
    assert sent(a["id"]) == ["Hello Ann"] and sent(b["id"]) == ["Hello Bob"]

    async def reply() -> None:
        async with await AsyncConnection.connect(db_dsn) as conn:
            await service.emit_event(
                conn, "email.replied", "contacts", str(a["id"]), {"from": "ann@example.test"}
            )
            await conn.commit()

    run(reply())
    eventually(lambda: _runs(db_dsn, seq, "exited"), what="Ann's enrolment exited on her reply")
    mark = query(db_dsn, "SELECT now()")[0][0]
    clock.advance(3 * 86400 + 60)
    eventually(
        lambda: _runs(db_dsn, seq, "completed"), what="Bob's enrolment went on after the wait"
    )
    eventually(lambda: _wake_ran_after(db_dsn, mark), what="the wake job ran after the clock moved")
    assert sent(a["id"]) == ["Hello Ann"]
    assert sent(b["id"]) == ["Hello Bob", "Following up"]
    exit_reason = query(
        db_dsn,
        "SELECT exit_reason FROM automation_runs WHERE workflow_id = %s AND status = 'exited'",
        (seq,),
    )
    assert exit_reason == [("email.replied",)]


def test_an_sla_breach_escalates_up_the_ladder(
    db_dsn: str, people: People, clock: ManualClock
) -> None:
    from datetime import timedelta

    on_call = people.users["admin"]
    wid = save_workflow(
        db_dsn,
        people.users["manager"],
        {
            "name": "SLA ladder",
            "trigger": {"on": "work_order_sla.breached"},
            "steps": [
                {
                    "id": "owner",
                    "action": "notify",
                    "to": ["record_owner"],
                    "title": "SLA breached: {{record.title}}",
                },
                {
                    "id": "ack1",
                    "action": "wait",
                    "event": "work_orders.updated",
                    "when": [{"field": "status", "op": "changed_to", "value": "in_progress"}],
                    "timeout_s": 3600,
                },
                {
                    "id": "up1",
                    "action": "branch",
                    "when": [{"field": "steps.ack1.timed_out", "op": "eq", "value": True}],
                    "then": [
                        {
                            "id": "manager",
                            "action": "notify",
                            "to": ["owner_manager"],
                            "title": "Escalated SLA: {{record.title}}",
                        },
                        {
                            "id": "ack2",
                            "action": "wait",
                            "event": "work_orders.updated",
                            "when": [
                                {"field": "status", "op": "changed_to", "value": "in_progress"}
                            ],
                            "timeout_s": 3600,
                        },
                        {
                            "id": "up2",
                            "action": "branch",
                            "when": [{"field": "steps.ack2.timed_out", "op": "eq", "value": True}],
                            "then": [
                                {
                                    "id": "oncall",
                                    "action": "notify",
                                    "to": [on_call],
                                    "title": "On-call SLA: {{record.title}}",
                                    "urgent": True,
                                },
                            ],
                        },
                    ],
                },
            ],
        },
    )
    account = _account(db_dsn, people)
    title = f"Chiller down {uuid.uuid4().hex[:6]}"
    create(
        db_dsn, people.users["rep1"], "work_orders", account_id=account, title=title,
        sla_due_at=clock.now() - timedelta(minutes=5),
    )  # fmt: skip
    eventually(
        lambda: _notified(db_dsn, people.users["rep1"], title) == 1, what="the owner is told"
    )
    eventually(
        lambda: _runs(db_dsn, wid, "waiting"), what="the ladder waits for an acknowledgement"
    )
    assert _notified(db_dsn, people.users["manager"], title) == 0
    clock.advance(3601)
    eventually(
        lambda: _notified(db_dsn, people.users["manager"], title) == 1, what="the manager is told"
    )
    assert _notified(db_dsn, on_call, title) == 0
    eventually(
        lambda: (
            len(
                query(
                    db_dsn,
                    "SELECT 1 FROM automation_steps s JOIN automation_runs r ON r.id = s.run_id WHERE r.workflow_id = %s AND s.step_id = 'ack2' AND s.status = 'waiting'",
                    (wid,),
                )
            )
            == 1
        ),
        what="second wait",
    )
    clock.advance(3601)
    eventually(lambda: _notified(db_dsn, on_call, title) == 1, what="on-call is told")
    eventually(lambda: _runs(db_dsn, wid, "completed"), what="the ladder completed")
    assert len(_runs(db_dsn, wid)) == 1


def test_a_follow_up_is_created_only_where_no_next_step_is_open(
    db_dsn: str, people: People, clock: ManualClock
) -> None:
    proposal = stage_id(db_dsn, "Proposal")
    wid = save_workflow(
        db_dsn,
        people.users["rep1"],
        {
            "name": "No next step",
            "trigger": {"on": "opportunities.updated", "when": [{"field": "stage_id", "op": "changed_to", "value": proposal}]},
            "steps": [
                {"id": "next", "action": "for_each", "object": "activities", "when": [{"field": "status", "op": "eq", "value": "open"}], "steps": []},
                {"id": "none", "action": "branch", "when": [{"field": "steps.next.count", "op": "eq", "value": 0}], "then": [
                    {"id": "follow", "action": "create_task", "subject": "Plan the next step for {{record.name}}"}]},
            ],
        },
    )  # fmt: skip
    account = _account(db_dsn, people)
    bare = create(db_dsn, people.users["rep1"], "opportunities", name="Bare", account_id=account)
    planned = create(
        db_dsn, people.users["rep1"], "opportunities", name="Planned", account_id=account
    )
    create(
        db_dsn,
        people.users["rep1"],
        "activities",
        type="meeting",
        subject="Demo",
        opportunity_id=planned["id"],
    )
    for opp in (bare, planned):
        update(db_dsn, people.users["rep1"], "opportunities", opp["id"], stage_id=proposal)
    eventually(lambda: len(_runs(db_dsn, wid, "completed")) == 2, what="both runs completed")
    follow = query(
        db_dsn,
        "SELECT opportunity_id FROM activities WHERE source = 'automation' AND subject LIKE 'Plan the next step%%'"
        " AND opportunity_id = ANY(%s)",
        ([bare["id"], planned["id"]],),
    )
    assert follow == [(bare["id"],)]
