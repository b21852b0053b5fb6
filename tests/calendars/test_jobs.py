"""The sync as a background job: `fieldmesh run`'s jobs role (kernel.jobs.Worker with
JOB_MODULES) runs the round that opting in enqueues, and the periodic task enqueues one
per user who opted in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from psycopg import AsyncConnection

from calendars.jobs import SYNC_ALL_TASK, SYNC_TASK, enqueue_sync
from fieldmesh.roles import JOB_MODULES, job_registry
from kernel.jobs import Worker, enqueue
from kernel.settings import Settings
from tests.calendars.conftest import Remote, run

pytestmark = pytest.mark.integration


def test_the_jobs_role_syncs_users_who_opted_in(
    db_dsn: str,
    test_settings: Settings,
    make_user: Callable[..., int],
    remote: Callable[[int], Remote],
) -> None:
    assert "calendars.jobs" in JOB_MODULES
    user = make_user()
    t0 = datetime(2026, 8, 3, 7, 0, tzinfo=UTC)

    async def go() -> str:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            await conn.execute(
                "INSERT INTO activities (type, subject, start_at, end_at, owner_id) "
                "VALUES ('meeting', 'Via the job', %s, %s, %s)",
                (t0, t0 + timedelta(hours=1), user),
            )
            async with conn.transaction():
                job = await enqueue_sync(conn, user)
                again = await enqueue_sync(conn, user)  # deduplicated while queued
            assert again == job
            async with conn.transaction():
                periodic = await enqueue(conn, SYNC_ALL_TASK, {})
        worker = Worker(
            db_dsn,
            job_registry(("calendars.jobs",)),
            poll_s=0.2,
            grace_s=5.0,
            settings=test_settings,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
                for _ in range(900):
                    cur = await conn.execute(
                        "SELECT count(*) FILTER (WHERE id = ANY (%s) AND status = 'done'), "
                        "count(*) FILTER (WHERE task = %s AND id <> %s AND args->>'user_id' = %s), "
                        "count(*) FILTER (WHERE status = 'failed' AND task LIKE 'calendars.%%'), "
                        "count(*) FILTER (WHERE task = %s AND args->>'user_id' = %s "
                        "                 AND status <> 'done') "
                        "FROM jobs",
                        ([job, periodic], SYNC_TASK, job, str(user), SYNC_TASK, str(user)),
                    )
                    row = await cur.fetchone()
                    assert row is not None
                    assert row[2] == 0, "a job failed"
                    # both done, the periodic task enqueued a round of its own, none left
                    if row[0] == 2 and row[1] >= 1 and row[3] == 0:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError(f"the jobs did not finish: {row}")
                cur = await conn.execute(
                    "SELECT last_error, rounds FROM cal_accounts WHERE user_id = %s", (user,)
                )
                acct = await cur.fetchone()
                assert acct is not None and acct[0] is None and acct[1] >= 2
        finally:
            stop.set()
            await task
        return "ok"

    assert run(go()) == "ok"
    summaries = [text for _, text in remote(user).objects().values()]
    assert len(summaries) == 1 and "SUMMARY:Via the job" in summaries[0]
