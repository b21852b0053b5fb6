"""Starting runs and recording their history (database side, the caller's transaction)."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class NewRun:
    """One run for `start_many` (the matcher's batch)."""

    workflow_id: int
    version: int
    record_object: str | None
    record_id: str | None
    trigger: dict[str, Any]
    chain: list[int]
    depth: int
    parent_run_id: int | None
    exit_on: list[str]
    change_at: datetime | None
    why: str
    error: str | None = None  # born stopped, with this error


_START_MANY_SQL = """
WITH src AS (
    SELECT * FROM unnest(%(wf)s::bigint[], %(ver)s::int[], %(obj)s::text[], %(rid)s::text[],
        %(trig)s::jsonb[], %(chain)s::jsonb[], %(depth)s::int[], %(parent)s::bigint[],
        %(exit)s::jsonb[], %(at)s::timestamptz[], %(why)s::text[], %(err)s::text[])
        WITH ORDINALITY AS s(wf, ver, obj, rid, trig, chain, depth, parent, exit, at, why, err, n)
), ins AS (
    INSERT INTO automation_runs (workflow_id, version, status, record_object, record_id,
        trigger, chain, depth, parent_run_id, exit_on, change_at, error, finished_at)
    SELECT wf, ver, CASE WHEN err IS NULL THEN 'ready' ELSE 'stopped' END, obj, rid, trig,
        ARRAY(SELECT jsonb_array_elements_text(chain)::bigint), depth, parent,
        ARRAY(SELECT jsonb_array_elements_text(exit)), at, err,
        CASE WHEN err IS NULL THEN NULL ELSE clock_timestamp() END
    FROM src ORDER BY n
    RETURNING id, status, error
), numbered AS (  -- identities are drawn in the SELECT's order: the n-th id is src's n-th row
    SELECT i.*, s.why FROM (SELECT *, row_number() OVER (ORDER BY id) AS n FROM ins) i
    JOIN src s ON s.n = i.n
), ev AS (
    INSERT INTO automation_run_events (run_id, kind, message)
    SELECT i.id, k.kind, left(k.message, 2000) FROM numbered i
    CROSS JOIN LATERAL (VALUES (0, 'trigger', i.why), (1, i.status, i.error)) k(o, kind, message)
    WHERE k.o = 0 OR i.status <> 'ready'
    ORDER BY i.id, k.o
), jb AS (
    INSERT INTO jobs (task, args, run_after, dedupe_key, max_attempts)
    SELECT %(task)s, jsonb_build_object('run_id', id), now(), %(task)s || ':' || id, 8
    FROM ins WHERE status = 'ready'
    ON CONFLICT (dedupe_key) WHERE status = 'queued' AND dedupe_key IS NOT NULL DO NOTHING
)
SELECT id FROM ins ORDER BY id
"""


async def start_many(conn: AsyncConnection[Any], new: list[NewRun]) -> list[int]:
    """`start` for many runs in one statement (runs, their trigger events and their jobs),
    then one NOTIFY: the matcher's per-batch cost, whatever the batch's size. Ids in order."""
    if not new:
        return []
    cur = await conn.execute(
        _START_MANY_SQL,
        {
            "wf": [r.workflow_id for r in new],
            "ver": [r.version for r in new],
            "obj": [r.record_object for r in new],
            "rid": [r.record_id for r in new],
            "trig": [Jsonb(r.trigger) for r in new],
            "chain": [Jsonb(r.chain) for r in new],
            "depth": [r.depth for r in new],
            "parent": [r.parent_run_id for r in new],
            "exit": [Jsonb(r.exit_on) for r in new],
            "at": [r.change_at for r in new],
            "why": [r.why or str(r.trigger.get("event", "")) for r in new],
            "err": [r.error for r in new],
            "task": RUN_TASK,
        },
    )
    ids = [int(r[0]) for r in await cur.fetchall()]
    if any(r.error is None for r in new):
        await conn.execute("SELECT pg_notify(%s, %s)", (jobs.CHANNEL, RUN_TASK))
    return ids
