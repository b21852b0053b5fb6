"""Starting runs and recording their history (database side, the caller's transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from kernel import jobs

RUN_TASK = "automation.run"
FINAL = ("completed", "failed", "stopped", "exited")


async def enqueue_run(conn: AsyncConnection[Any], run_id: int) -> None:
    await jobs.enqueue(
        conn, RUN_TASK, {"run_id": run_id}, dedupe_key=f"{RUN_TASK}:{run_id}", max_attempts=8
    )


async def event(
    conn: AsyncConnection[Any], run_id: int, kind: str, message: str, step_id: str | None = None
) -> None:
    await conn.execute(
        "INSERT INTO automation_run_events (run_id, kind, step_id, message) VALUES (%s, %s, %s, %s)",
        (run_id, kind, step_id, message[:2000]),
    )


async def start(
    conn: AsyncConnection[Any],
    workflow_id: int,
    version: int,
    *,
    record_object: str | None,
    record_id: str | None,
    trigger: dict[str, Any],
    chain: list[int] | None = None,
    depth: int = 0,
    parent_run_id: int | None = None,
    exit_on: list[str] | None = None,
    change_at: datetime | None = None,
    why: str = "",
    status: str = "ready",
    error: str | None = None,
) -> int:
    """A new run (queued for the workers unless it is born stopped); its id."""
    cur = await conn.execute(
        """
        INSERT INTO automation_runs (workflow_id, version, status, record_object, record_id,
            trigger, chain, depth, parent_run_id, exit_on, change_at, error, finished_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                CASE WHEN %s = 'ready' THEN NULL ELSE clock_timestamp() END)
        RETURNING id
        """,
        (
            workflow_id,
            version,
            status,
            record_object,
            record_id,
            Jsonb(trigger),
            chain or [],
            depth,
            parent_run_id,
            exit_on or [],
            change_at,
            error,
            status,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    run_id = int(row[0])
    await event(conn, run_id, "trigger", why or str(trigger.get("event", "")))
    if status == "ready":
        await enqueue_run(conn, run_id)
    else:
        await event(conn, run_id, status, error or status)
    return run_id
