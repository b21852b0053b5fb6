"""Reminders through notify_user, run by the real job worker: one whose time passed while
no worker ran fires once after the start, and never again after a restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import AsyncConnection

from calendars import reminders
from kernel.jobs import enqueue, job_state
from kernel.settings import Settings
from tests.appserver import job_worker
from tests.calendars.calworld import make_world
from tests.eventually import eventually_async


def _count(dsn: str, user_id: int) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM notifications WHERE user_id = %s AND kind = 'calendar.reminder'",
            (user_id,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_reminder_fires_once_after_a_restart(test_settings: Settings) -> None:
    world = make_world(test_settings.dsn)
    rep = world.users["utc"]
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    with psycopg.connect(test_settings.dsn) as conn:
        row = conn.execute(
            "INSERT INTO activities (type, subject, start_at, end_at, owner_id, territory_id)"
            " VALUES ('meeting', 'quarterly review', %s, %s, %s, %s) RETURNING id",
            (start, start + timedelta(hours=1), rep, world.territory),
        ).fetchone()
        assert row is not None
        activity = int(row[0])
        # 15 minutes before: its time passed 5 minutes ago, while no worker was running
        conn.execute(
            "INSERT INTO cal_reminders (user_id, activity_id, offset_min) VALUES (%s, %s, 15)",
            (rep, activity),
        )

    async def scenario() -> None:
        async with job_worker(test_settings, ("calendars.reminders",)):
            await eventually_async(
                lambda: asyncio.to_thread(_count, test_settings.dsn, rep),
                what="the missed reminder is sent once the worker is up",
            )
        # the restarted worker runs the task again: nothing new
        async with (
            job_worker(test_settings, ("calendars.reminders",)),
            await AsyncConnection.connect(test_settings.dsn) as conn,
        ):
            job = await enqueue(conn, reminders.TASK)
            await conn.commit()

            async def done() -> bool:
                st = await job_state(conn, job)
                await conn.commit()
                return st is not None and st.status == "done"

            await eventually_async(done, what="the reminder job ran after the restart")
        async with await AsyncConnection.connect(test_settings.dsn) as conn:
            assert await reminders.fire_due(conn) == 0  # and once more by hand
            await conn.commit()

    asyncio.run(scenario())
    assert _count(test_settings.dsn, rep) == 1
    with psycopg.connect(test_settings.dsn) as conn:
        title, body, link = conn.execute(
            "SELECT title, body, link FROM notifications WHERE user_id = %s", (rep,)
        ).fetchone() or ("", "", "")
        sent_for = conn.execute(
            "SELECT sent_for_start FROM cal_reminders WHERE activity_id = %s", (activity,)
        ).fetchone()
    assert title == "Meeting: quarterly review"
    assert "late" in body and link.startswith("/console/#/calendar/")
    assert sent_for == (start,)


def test_a_moved_meeting_is_reminded_again_and_old_reminders_are_not_sent(
    test_settings: Settings,
) -> None:
    world = make_world(test_settings.dsn)
    rep = world.users["berlin"]
    now = datetime.now(UTC).replace(microsecond=0)

    async def scenario() -> list[int]:
        async with await AsyncConnection.connect(test_settings.dsn) as conn:
            cur = await conn.execute(
                "INSERT INTO activities (type, subject, start_at, end_at, owner_id)"
                " VALUES ('meeting', 'site walk', %s, %s, %s) RETURNING id",
                (now + timedelta(minutes=5), now + timedelta(minutes=65), rep),
            )
            row = await cur.fetchone()
            assert row is not None
            await conn.execute(
                "INSERT INTO cal_reminders (user_id, activity_id, offset_min) VALUES (%s, %s, 10)",
                (rep, row[0]),
            )
            # a reminder due 7 hours ago is past the catch-up horizon: not sent
            cur = await conn.execute(
                "INSERT INTO activities (type, subject, start_at, end_at, owner_id)"
                " VALUES ('meeting', 'all-day workshop', %s, %s, %s) RETURNING id",
                (now - timedelta(hours=7), now + timedelta(hours=2), rep),
            )
            old = await cur.fetchone()
            assert old is not None
            await conn.execute(
                "INSERT INTO cal_reminders (user_id, activity_id, offset_min) VALUES (%s, %s, 0)",
                (rep, old[0]),
            )
            # fire_due sends every user's due reminders (other tests' too, in a shared
            # database): what counts is what this rep received at each step
            sent: list[int] = []

            async def step(at: datetime) -> None:
                before = await asyncio.to_thread(_count, test_settings.dsn, rep)
                await reminders.fire_due(conn, at)
                await conn.commit()
                sent.append(await asyncio.to_thread(_count, test_settings.dsn, rep) - before)

            await step(now)
            await conn.execute(
                "UPDATE activities SET start_at = start_at + interval '1 hour',"
                " end_at = end_at + interval '1 hour' WHERE id = %s",
                (row[0],),
            )
            await conn.commit()
            await step(now)  # not due yet for the new time
            await step(now + timedelta(minutes=56))
            await step(now + timedelta(minutes=57))
            return sent

    assert asyncio.run(scenario()) == [1, 0, 1, 0]
    assert _count(test_settings.dsn, rep) == 2
