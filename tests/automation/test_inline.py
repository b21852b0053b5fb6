"""The matcher takes a new run's first action in its own transaction (automation.matching):
against the real database, the matcher's batch called directly (no worker), then a real
worker for the rest of the runs."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from automation.channels import OutboxChannel
from automation.clock import ManualClock
from automation.engine import Env
from automation.matching import BatchStats, MatcherCache, match_batch
from tests.automation.harness import (
    create,
    deactivate_all,
    query,
    save_workflow,
    update,
    worker_thread,
)
from tests.eventually import eventually
from tests.world import People

pytestmark = pytest.mark.integration


def _match_once(dsn: str) -> BatchStats:
    """One batch, as the matcher job runs it."""

    async def main() -> BatchStats:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(dsn, min_size=1, open=False)
        await pool.open(wait=True)
        try:
            env = Env(pool, ManualClock(), OutboxChannel())
            async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
                return await match_batch(conn, MatcherCache(), env=env)
        finally:
            await pool.close()

    return asyncio.run(main())


def _deal(dsn: str, people: People) -> int:
    account = create(
        dsn,
        people.users["rep1"],
        "accounts",
        name=f"Acme {uuid.uuid4().hex[:6]}",
        territory_id=people.t1,
    )
    opp = create(
        dsn,
        people.users["rep1"],
        "opportunities",
        name=f"Deal {uuid.uuid4().hex[:6]}",
        account_id=account["id"],
        amount=100,
    )
    return int(opp["id"])


def _steps(dsn: str, run_id: int) -> list[tuple[int, str, str]]:
    return [
        (int(r[0]), str(r[1]), str(r[2]))
        for r in query(
            dsn,
            "SELECT seq, step_id, status FROM automation_steps WHERE run_id = %s ORDER BY seq",
            (run_id,),
        )
    ]


def _run_of(dsn: str, wid: int) -> tuple[int, str, str | None]:
    rows = query(
        dsn, "SELECT id, status, error FROM automation_runs WHERE workflow_id = %s", (wid,)
    )
    assert len(rows) == 1, rows
    return int(rows[0][0]), str(rows[0][1]), rows[0][2]


def _job(dsn: str, run_id: int) -> list[str]:
    return [
        str(r[0])
        for r in query(
            dsn, "SELECT status FROM jobs WHERE dedupe_key = %s", (f"automation.run:{run_id}",)
        )
    ]


def test_the_matcher_takes_the_first_action_and_the_job_does_the_rest_once(
    db_dsn: str, people: People
) -> None:
    deactivate_all(db_dsn)
    tag = uuid.uuid4().hex[:8]
    good = save_workflow(
        db_dsn,
        people.users["manager"],
        {
            "name": f"Big deal {tag}",
            "trigger": {
                "on": "opportunities.updated",
                "when": [{"field": "amount", "op": "crossed_above", "value": 1000}],
            },
            "steps": [
                {
                    "id": "task",
                    "action": "create_task",
                    "subject": f"Call {tag} {{{{record.name}}}}",
                },
                {"id": "tell", "action": "notify", "to": ["workflow_owner"], "title": f"big {tag}"},
            ],
        },
    )
    # a first action that fails (an account that does not exist): rolled back to its own
    # savepoint, it leaves the batch whole and the run to its job, which fails it, named
    bad = save_workflow(
        db_dsn,
        people.users["manager"],
        {
            "name": f"Broken {tag}",
            "trigger": {
                "on": "opportunities.updated",
                "when": [{"field": "amount", "op": "crossed_above", "value": 1000}],
            },
            "steps": [
                {
                    "id": "note",
                    "action": "create_record",
                    "object": "activities",
                    "values": {"type": "note", "subject": f"n {tag}", "account_id": 987654321},
                }
            ],
        },
    )
    # and one the database refuses (a CHECK): the same
    refused = save_workflow(
        db_dsn,
        people.users["manager"],
        {
            "name": f"Refused {tag}",
            "trigger": {
                "on": "opportunities.updated",
                "when": [{"field": "amount", "op": "crossed_above", "value": 1000}],
            },
            "steps": [
                {
                    "id": "meet",
                    "action": "create_record",
                    "object": "activities",
                    "values": {
                        "type": "meeting",
                        "subject": f"m {tag}",
                        "start_at": "2030-01-02T10:00:00Z",
                        "end_at": "2030-01-01T10:00:00Z",
                    },
                }
            ],
        },
    )
    opp = _deal(db_dsn, people)
    update(db_dsn, people.users["rep1"], "opportunities", opp, amount=5000)

    stats = _match_once(db_dsn)
    assert stats.started == 3 and stats.inline == 1

    # committed with the batch: the good run's first action, not its second; its job queued
    run_id, status, _ = _run_of(db_dsn, good)
    assert status == "ready"
    assert _steps(db_dsn, run_id) == [(0, "task", "done")]
    tasks = f"SELECT count(*) FROM activities WHERE subject LIKE 'Call {tag} %%'"
    assert query(db_dsn, tasks)[0][0] == 1
    assert _job(db_dsn, run_id) == ["queued"]
    bad_id, bad_status, _ = _run_of(db_dsn, bad)
    assert bad_status == "ready" and _steps(db_dsn, bad_id) == []
    assert _job(db_dsn, bad_id) == ["queued"]
    refused_id, refused_status, _ = _run_of(db_dsn, refused)
    assert refused_status == "ready" and _steps(db_dsn, refused_id) == []
    query_stop = "UPDATE automation_runs SET status = 'stopped' WHERE id = %s RETURNING id"
    assert query(db_dsn, query_stop, (refused_id,))  # not the worker's business here
    assert (
        query(
            db_dsn,
            "SELECT count(*) FROM automation_changes WHERE record_object = 'opportunities'"
            " AND record_id = %s",
            (str(opp),),
        )[0][0]
        == 0
    )

    with worker_thread(db_dsn, ManualClock()):
        eventually(lambda: _run_of(db_dsn, good)[1] == "completed", what="the good run completed")
        eventually(lambda: _run_of(db_dsn, bad)[1] == "failed", what="the broken run failed")
    assert _steps(db_dsn, run_id) == [(0, "task", "done"), (1, "tell", "done")]
    assert query(db_dsn, tasks)[0][0] == 1  # the first action was not done again
    error = _run_of(db_dsn, bad)[2] or ""
    assert "step 'note'" in error
    assert query(db_dsn, f"SELECT count(*) FROM activities WHERE subject = 'n {tag}'")[0][0] == 0
