"""Two-way sync against the embedded Radicale: out, back, deletions, restarts, conflicts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import AsyncConnection

from calendars.ical import parse_calendar, to_ics
from calendars.model import Attendee, EventData
from calendars.sync import RoundStats
from crm import store as crm_store
from crm.entities import ACTIVITIES
from identity.auth import load_principal
from tests.calendars.conftest import Remote, run

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 15, 8, 0, tzinfo=UTC)


def _activity(db_dsn: str, user_id: int, **values: Any) -> int:
    async def go() -> int:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            p = await load_principal(conn, user_id)
            assert p is not None
            row = await crm_store.create_record(conn, ACTIVITIES, p, values)
            return int(row["id"])

    return run(go())


def _q(db_dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async def go() -> list[tuple[Any, ...]]:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall() if cur.description else []

    return run(go())


def _only(remote: Remote) -> tuple[str, str | None, EventData]:
    objs = remote.objects()
    assert len(objs) == 1, list(objs)
    href, (etag, text) = next(iter(objs.items()))
    (ev,) = parse_calendar(text)
    return href, etag, ev


def test_event_created_in_fieldmesh_appears_in_the_server(
    db_dsn: str,
    make_user: Callable[..., int],
    sync: Callable[[int], RoundStats],
    remote: Callable[[int], Remote],
) -> None:
    user = make_user()
    act = _activity(
        db_dsn,
        user,
        type="meeting",
        subject="Quarterly review",
        start_at=T0,
        end_at=T0 + timedelta(hours=1),
        tz="Europe/Berlin",
        body="bring the numbers",
    )
    _activity(db_dsn, user, type="note", subject="a note has no time")
    stats = sync(user)
    assert stats.pushed == 1
    _href, _, ev = _only(remote(user))
    assert ev.summary == "Quarterly review"
    assert ev.description == "bring the numbers"
    assert ev.start == T0 and ev.end == T0 + timedelta(hours=1)
    assert ev.tz == "Europe/Berlin"
    (text,) = [t for _, t in remote(user).objects().values()]
    assert "BEGIN:VTIMEZONE" in text and "TZID=Europe/Berlin" in text
    # an idle round pushes nothing and finds only its own write
    again = sync(user)
    assert again.pushed == 0 and again.pulled_new == 0 and again.pulled_changed == 0
    assert _q(db_dsn, "SELECT count(*) FROM cal_events WHERE activity_id = %s", act) == [(1,)]


def test_event_edited_in_the_server_comes_back(
    db_dsn: str,
    make_user: Callable[..., int],
    sync: Callable[[int], RoundStats],
    remote: Callable[[int], Remote],
) -> None:
    user = make_user()
    act = _activity(
        db_dsn,
        user,
        type="meeting",
        subject="Site walk",
        start_at=T0,
        end_at=T0 + timedelta(hours=1),
        tz="Europe/Berlin",
    )
    sync(user)
    srv = remote(user)
    href, etag, ev = _only(srv)
    moved = replace(
        ev,
        summary="Site walk (moved)",
        start=T0 + timedelta(days=1),
        end=T0 + timedelta(days=1, hours=2),
        location="Gate 3",
        sequence=ev.sequence + 1,
        last_modified=datetime.now(UTC) + timedelta(seconds=5),
    )
    srv.put(href, to_ics([moved]), etag)
    stats = sync(user)
    assert stats.pulled_changed == 1 and stats.pushed == 0
    (row,) = _q(db_dsn, "SELECT subject, start_at, end_at FROM activities WHERE id = %s", act)
    assert row == ("Site walk (moved)", T0 + timedelta(days=1), T0 + timedelta(days=1, hours=2))
    (loc,) = _q(db_dsn, "SELECT location FROM cal_events WHERE activity_id = %s", act)
    assert loc == ("Gate 3",)
    # the CRM write the pull made does not bounce back as a change
    after = sync(user)
    assert after.pushed == 0 and after.pulled_changed == 0
    _, _, ev2 = _only(srv)
    assert ev2.summary == "Site walk (moved)" and ev2.location == "Gate 3"


def test_event_created_in_the_server_becomes_an_activity_linked_by_attendee(
    db_dsn: str,
    make_user: Callable[..., int],
    sync: Callable[[int], RoundStats],
    remote: Callable[[int], Remote],
) -> None:
    user = make_user()
    email = f"buyer-{user}@customer.example"
    (terr,) = _q(db_dsn, "SELECT territory_id FROM users WHERE id = %s", user)
    (contact,) = _q(
        db_dsn,
        "INSERT INTO contacts (first_name, last_name, email, territory_id) "
        "VALUES ('Bo', 'Buyer', %s, %s) RETURNING id",
        email,
        terr[0],
    )
    sync(user)
    srv = remote(user)
    ev = EventData(
        uid=f"phone-{user}@example.org",
        summary="Lunch with Bo",
        start=T0,
        end=T0 + timedelta(hours=1),
        tz="Europe/Berlin",
        attendees=(Attendee(email, "Bo Buyer", "ACCEPTED"),),
    )
    srv.put(f"{srv.path}lunch.ics", to_ics([ev]), None)
    stats = sync(user)
    assert stats.pulled_new == 1
    rows = _q(
        db_dsn,
        "SELECT id, type, subject, contact_id, owner_id, source FROM activities "
        "WHERE source = 'caldav' AND owner_id = %s",
        user,
    )
    assert len(rows) == 1
    act_id, typ, subject, contact_id, owner, _source = rows[0]
    assert (typ, subject, contact_id, owner) == ("meeting", "Lunch with Bo", contact[0], user)
    assert _q(
        db_dsn,
        "SELECT email, partstat, contact_id FROM cal_attendees a "
        "JOIN cal_events e ON e.id = a.event_id WHERE e.activity_id = %s",
        act_id,
    ) == [(email, "ACCEPTED", contact[0])]
    # nothing goes back that the server did not have already
    assert sync(user).pushed == 0
    assert len(srv.objects()) == 1


def test_deletions_go_both_ways(
    db_dsn: str,
    make_user: Callable[..., int],
    sync: Callable[[int], RoundStats],
    remote: Callable[[int], Remote],
) -> None:
    user = make_user()
    a1 = _activity(
        db_dsn, user, type="call", subject="Call A", start_at=T0, end_at=T0 + timedelta(minutes=15)
    )
    a2 = _activity(db_dsn, user, type="task", subject="Task B", due_at=T0 + timedelta(hours=3))
    sync(user)
    srv = remote(user)
    assert len(srv.objects()) == 2
    # deleted in the CRM -> deleted on the server
    _q(db_dsn, "DELETE FROM activities WHERE id = %s", a1)
    stats = sync(user)
    assert stats.deleted_remote == 1
    objs = srv.objects()
    assert len(objs) == 1
    href, (etag, text) = next(iter(objs.items()))
    assert parse_calendar(text)[0].summary == "Task B"
    # deleted on the server -> deleted in the CRM
    srv.delete(href, etag)
    stats = sync(user)
    assert stats.pulled_deleted == 1
    assert _q(db_dsn, "SELECT count(*) FROM activities WHERE id = %s", a2) == [(0,)]
    assert _q(db_dsn, "SELECT count(*) FROM cal_events WHERE owner_id = %s", user) == [(0,)]


def test_incremental_sync_after_a_restart_makes_no_duplicates(
    db_dsn: str,
    make_user: Callable[..., int],
    sync: Callable[[int], RoundStats],
    remote: Callable[[int], Remote],
) -> None:
    user = make_user()
    for i in range(5):
        _activity(
            db_dsn,
            user,
            type="meeting",
            subject=f"M{i}",
            start_at=T0 + timedelta(days=i),
            end_at=T0 + timedelta(days=i, hours=1),
        )
    srv = remote(user)
    srv.put(
        f"{srv.path}ext.ics",
        to_ics(
            [
                EventData(
                    uid=f"ext-{user}", summary="From phone", start=T0, end=T0 + timedelta(hours=1)
                )
            ]
        ),
        None,
    )
    sync(user)
    assert len(srv.objects()) == 6
    # a crash after the PUTs reached the server but before their ETags were stored, and a
    # lost sync token: the next rounds must adopt, not duplicate
    _q(
        db_dsn,
        "UPDATE cal_events SET etag = NULL, href = NULL, base = NULL, pushed_rev = 0 "
        "WHERE owner_id = %s AND kind = 'activity' AND uid LIKE 'fieldmesh-%%'",
        user,
    )
    _q(
        db_dsn,
        "UPDATE cal_accounts SET sync_token = NULL, projected_at = NULL WHERE user_id = %s",
        user,
    )
    for _ in range(2):
        sync(user)
    assert len(srv.objects()) == 6
    assert _q(db_dsn, "SELECT count(*) FROM activities WHERE owner_id = %s", user) == [(6,)]
    assert _q(
        db_dsn, "SELECT count(*), count(DISTINCT uid) FROM cal_events WHERE owner_id = %s", user
    ) == [(6, 6)]
    last = sync(user)
    assert (last.pushed, last.pulled_new, last.pulled_changed) == (0, 0, 0)


def test_work_order_appointments_are_the_crms(
    db_dsn: str,
    make_user: Callable[..., int],
    sync: Callable[[int], RoundStats],
    remote: Callable[[int], Remote],
) -> None:
    user = make_user()
    (terr,) = _q(db_dsn, "SELECT territory_id FROM users WHERE id = %s", user)
    (acc,) = _q(
        db_dsn,
        "INSERT INTO accounts (name, address, territory_id) VALUES ('Acme Plant', '1 Main St', %s) RETURNING id",
        terr[0],
    )
    (wo,) = _q(
        db_dsn,
        "INSERT INTO work_orders (account_id, title, status, assignee_id, scheduled_start, "
        "scheduled_end) VALUES (%s, 'Replace pump', 'scheduled', %s, %s, %s) RETURNING id",
        acc[0],
        user,
        T0,
        T0 + timedelta(hours=2),
    )
    sync(user)
    srv = remote(user)
    objs = {
        parse_calendar(t)[0].summary: (h, e, parse_calendar(t)[0])
        for h, (e, t) in srv.objects().items()
    }
    href, etag, ev = objs[f"Work order {wo[0]}: Replace pump"]
    assert ev.location == "1 Main St"
    srv.put(
        href,
        to_ics(
            [
                replace(
                    ev,
                    start=T0 + timedelta(days=2),
                    end=T0 + timedelta(days=2, hours=2),
                    last_modified=datetime.now(UTC) + timedelta(hours=1),
                )
            ]
        ),
        etag,
    )
    stats = sync(user)
    assert stats.pushed >= 1  # the CRM's appointment is put back
    assert _q(db_dsn, "SELECT scheduled_start FROM work_orders WHERE id = %s", wo[0]) == [(T0,)]
    back = {parse_calendar(t)[0].summary: parse_calendar(t)[0] for _, t in srv.objects().values()}
    assert back[f"Work order {wo[0]}: Replace pump"].start == T0
    # the visit cadence of the account's owner is a recurring, transparent event
    _q(
        db_dsn,
        "UPDATE accounts SET owner_id = %s, visit_frequency_days = 14 WHERE id = %s",
        user,
        acc[0],
    )
    sync(user)
    cad = [
        e
        for e in (parse_calendar(t)[0] for _, t in srv.objects().values())
        if e.summary.startswith("Visit due")
    ]
    assert len(cad) == 1 and cad[0].rrule == "FREQ=DAILY;INTERVAL=14" and cad[0].transparent


def test_invitation_is_stored_and_a_reply_through_the_server_updates_the_rsvp(
    db_dsn: str,
    make_user: Callable[..., int],
    sync: Callable[[int], RoundStats],
    remote: Callable[[int], Remote],
) -> None:
    from calendars import itip, service

    user = make_user()

    async def create() -> int:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            p = await load_principal(conn, user)
            assert p is not None
            act, _ = await service.create_event(
                conn,
                p,
                "acme",
                service.EventInput(
                    subject="Demo",
                    start=T0,
                    end=T0 + timedelta(hours=1),
                    attendees=(Attendee("cio@customer.example", "CIO"),),
                ),
            )
            return act

    act = run(create())
    sync(user)
    srv = remote(user)
    href, etag, ev = _only(srv)
    assert [(a.email, a.partstat) for a in ev.attendees] == [
        ("cio@customer.example", "NEEDS-ACTION")
    ]
    # the attendee's client answers on the server
    srv.put(
        href,
        to_ics([replace(ev, attendees=(Attendee("cio@customer.example", "CIO", "ACCEPTED"),))]),
        etag,
    )
    sync(user)
    assert _q(
        db_dsn,
        "SELECT a.partstat FROM cal_attendees a JOIN cal_events e ON e.id = a.event_id "
        "WHERE e.activity_id = %s",
        act,
    ) == [("ACCEPTED",)]

    async def messages() -> list[tuple[str, str]]:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            return [(m.method, m.direction) for m in await itip.for_activity(conn, act)]

    assert run(messages()) == [("REQUEST", "out"), ("REPLY", "in")]

    # the pending REQUEST is what the e-mail sender picks up
    async def pending() -> list[str]:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            return [m.recipient for m in await itip.pending_outbound(conn) if m.activity_id == act]

    assert run(pending()) == ["cio@customer.example"]
