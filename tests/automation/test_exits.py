"""Sequences exit on what the CRM records: a meeting booked with the contact (a meeting
activity, as the calendar's bookings make) and a lead converted (crm.records.convert_lead),
captured by triggers on the CRM's tables; other enrolments go on waiting."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from psycopg import AsyncConnection

from automation import service
from automation.clock import ManualClock
from crm.records import convert_lead
from tests.automation.harness import (
    create,
    deactivate_all,
    principal,
    query,
    run,
    save_workflow,
    worker_thread,
)
from tests.eventually import eventually
from tests.world import People

pytestmark = pytest.mark.integration


@pytest.fixture
def worker(db_dsn: str) -> Iterator[None]:
    deactivate_all(db_dsn)
    with worker_thread(db_dsn, ManualClock()):
        yield


def _sequence(dsn: str, owner: int, obj: str, exit_on: str) -> int:
    return save_workflow(
        dsn,
        owner,
        {
            "name": f"Nurture {uuid.uuid4().hex[:6]}",
            "trigger": {"on": "manual", "object": obj},
            "exit_on": [{"on": exit_on}],
            "steps": [
                {"id": "hello", "action": "send_message", "channel": "email",
                 "subject": "Hi", "body": "Hello", "business_hours": False},
                {"id": "pause", "action": "wait", "duration_s": 7 * 86400},
            ],
        },
        kind="sequence",
    )  # fmt: skip


def _enrol(dsn: str, user: int, wid: int, obj: str, ids: list[int]) -> list[int]:
    async def go() -> list[int]:
        p = await principal(dsn, user)
        async with await AsyncConnection.connect(dsn) as conn:
            out = await service.enrol(conn, p, wid, obj, ids)
            await conn.commit()
            return [int(x) for x in out["run_ids"]]

    return list(run(go()))


def _status(dsn: str, rid: int) -> tuple[str, str | None]:
    r = query(dsn, "SELECT status, exit_reason FROM automation_runs WHERE id = %s", (rid,))[0]
    return str(r[0]), r[1]


def test_a_booked_meeting_exits_the_contacts_enrolment_only(
    db_dsn: str, people: People, worker: None
) -> None:
    rep = people.users["rep1"]
    wid = _sequence(db_dsn, rep, "contacts", "meeting.booked")
    a, b = (
        create(db_dsn, rep, "contacts", first_name=n, last_name="X", email=f"{n}@ex.test")["id"]
        for n in ("ann", "bob")
    )
    ra, rb = _enrol(db_dsn, rep, wid, "contacts", [a, b])
    eventually(
        lambda: _status(db_dsn, ra)[0] == "waiting" and _status(db_dsn, rb)[0] == "waiting",
        what="both wait after step 1",
    )
    create(db_dsn, rep, "activities", type="meeting", subject="Demo", contact_id=a)
    eventually(lambda: _status(db_dsn, ra) == ("exited", "meeting.booked"), what="Ann exited")
    assert _status(db_dsn, rb) == ("waiting", None)
    # a task (not a meeting) for Bob changes nothing
    create(db_dsn, rep, "activities", type="task", subject="Prepare", contact_id=b)
    eventually(
        lambda: query(db_dsn, "SELECT count(*) FROM automation_changes")[0][0] == 0,
        what="the changes matched",
    )
    assert _status(db_dsn, rb) == ("waiting", None)


def test_converting_the_lead_exits_its_enrolment(db_dsn: str, people: People, worker: None) -> None:
    rep = people.users["rep1"]
    wid = _sequence(db_dsn, rep, "leads", "lead.converted")
    lead = create(
        db_dsn, rep, "leads", company=f"L {uuid.uuid4().hex[:4]}", last_name="Lee",
        email=f"l-{uuid.uuid4().hex[:4]}@ex.test",
    )["id"]  # fmt: skip
    (rid,) = _enrol(db_dsn, rep, wid, "leads", [lead])
    eventually(lambda: _status(db_dsn, rid)[0] == "waiting", what="the enrolment waits")

    async def convert() -> None:
        p = await principal(db_dsn, rep)
        async with await AsyncConnection.connect(db_dsn) as conn:
            await convert_lead(conn, p, lead, {})
            await conn.commit()

    run(convert())
    eventually(lambda: _status(db_dsn, rid) == ("exited", "lead.converted"), what="exited")
