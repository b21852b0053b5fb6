"""A worker killed with SIGKILL in the middle of runs: another resumes them, and every step's
effect exists exactly once (rows counted)."""

from __future__ import annotations

import os
import random
import signal
import time

import psycopg
import pytest
from psycopg import AsyncConnection

from automation import service
from tests.automation.harness import (
    deactivate_all,
    principal,
    query,
    run,
    save_workflow,
    worker_process,
)
from tests.eventually import eventually
from tests.world import People

pytestmark = pytest.mark.integration

RUNS = 60
STEPS = 5


def test_sigkilled_workers_resume_runs_without_duplicate_or_missing_effects(
    db_dsn: str, people: People
) -> None:
    deactivate_all(db_dsn)
    tag = f"k{random.randrange(10**9)}"
    wid = save_workflow(
        db_dsn,
        people.users["rep1"],
        {
            "name": "Five effects",
            "trigger": {"on": "manual"},
            "steps": [
                {
                    "id": f"s{n}",
                    "action": "create_record",
                    "object": "activities",
                    "values": {"type": "note", "subject": f"{tag} {{{{run.id}}}} {n}"},
                }
                for n in range(STEPS)
            ],
        },
    )

    async def start_all() -> list[int]:
        p = await principal(db_dsn, people.users["rep1"])
        async with await AsyncConnection.connect(db_dsn) as conn:
            ids = [await service.start_manual(conn, p, wid, None, None, {}) for _ in range(RUNS)]
            await conn.commit()
            return ids

    run_ids = run(start_all())

    def done() -> int:
        return int(
            query(
                db_dsn,
                "SELECT count(*) FROM automation_steps s JOIN automation_runs r ON r.id = s.run_id WHERE r.workflow_id = %s AND s.status = 'done'",
                (wid,),
            )[0][0]
        )

    kills = 0
    rng = random.Random(7)
    while kills < 3:
        proc = worker_process(db_dsn, lease_s=2.0)
        before = done()
        eventually(lambda b=before: done() > b + 10, what="the worker made progress", timeout_s=120)  # type: ignore[misc]
        time.sleep(rng.random() * 0.3)  # land anywhere inside a step
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        if done() >= RUNS * STEPS:
            break
    proc = worker_process(db_dsn, lease_s=2.0)
    try:
        eventually(
            lambda: (
                query(
                    db_dsn,
                    "SELECT count(*) FROM automation_runs WHERE workflow_id = %s AND status = 'completed'",
                    (wid,),
                )[0][0]
                == RUNS
            ),
            what="every run completed",
            timeout_s=180,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    with psycopg.connect(db_dsn) as conn:
        rows = conn.execute(
            "SELECT subject, count(*) FROM activities WHERE subject LIKE %s GROUP BY subject",
            (f"{tag} %",),
        ).fetchall()
    counts = {str(s): int(n) for s, n in rows}
    expected = {f"{tag} {r} {n}" for r in run_ids for n in range(STEPS)}
    assert kills >= 1
    assert set(counts) == expected, "a step's effect is missing"
    assert all(n == 1 for n in counts.values()), "a step's effect happened twice"
