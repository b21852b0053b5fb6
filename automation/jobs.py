"""Automation's background jobs (kernel.jobs), run by `fieldmesh run`'s jobs role.

    automation.match     changes -> runs, exits, ended waits (queued by the outbox trigger,
                         and every second as a safety net)
    automation.run       one pass of one run (queued per run, deduplicated)
    automation.wake      every second: runs whose wait is due are queued again
    automation.schedule  every 20 s: cron workflows whose minute came start once per slot
    automation.sla       every 30 s: work orders whose SLA approaches or is breached emit
                         `work_order_sla.approaching` / `.breached` once per due time

`register` takes the clock (tests pass a `ManualClock`) and the message channel (engage's
by default, `automation.channels.EngageChannel`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import timedelta
from typing import Any

import msgspec
from psycopg import pq
from psycopg.types.json import Jsonb, set_json_loads

from automation import definition as d
from automation import engine, runs
from automation.channels import Channel, EngageChannel
from automation.clock import Clock, SystemClock
from automation.cron import parse_cron
from automation.matching import MATCH_BATCH, MatcherCache, match_batch
from kernel.jobs import CHANNEL, JobContext, Registry, Task

log = logging.getLogger(__name__)

MATCH_TASK = "automation.match"
WAKE_TASK = "automation.wake"
SCHEDULE_TASK = "automation.schedule"
SLA_TASK = "automation.sla"
SLA_APPROACHING_S = 3600.0
MATCH_BUDGET_S = 20.0
LINGER_S = 5.0  # the first matcher waits this long for the next change before it ends
MATCHERS = 2  # matcher jobs running at once (SKIP LOCKED splits a backlog between them)
_MATCHER_LOCK = 0x6175746F  # advisory lock class of the matchers ("auto")


async def _take_matcher_lock(conn: Any) -> int | None:
    """Slot 0, else (only for a backlog: a full batch waiting) another slot; None: the
    matchers that hold them will see this job's changes (see `Automation.match`)."""
    for slot in range(MATCHERS):
        if slot > 0:
            cur = await conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM automation_changes LIMIT %s) c",
                (MATCH_BATCH,),
            )
            row = await cur.fetchone()
            if not row or row[0] < MATCH_BATCH:
                return None
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (_MATCHER_LOCK, slot))
        row = await cur.fetchone()
        if row and row[0]:
            return slot
    return None


async def _next_change(conn: Any, timeout_s: float, stopping: asyncio.Event) -> None:
    """Wait for the capture trigger's NOTIFY (`automation.match` on the jobs' channel), the
    timeout or the worker's stop (looked at every 0.2 s); notifications that came while
    the connection was busy count."""
    end = time.monotonic() + timeout_s
    while not stopping.is_set() and (left := end - time.monotonic()) > 0:
        async for n in conn.notifies(timeout=min(left, 0.2)):
            if n.payload == MATCH_TASK:
                return


async def _release_matcher_lock(conn: Any, slot: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_MATCHER_LOCK, slot))


class Automation:
    """The per-process state of the jobs: clock, channel, caches."""

    def __init__(self, clock: Clock, channel: Channel) -> None:
        self.clock = clock
        self.channel = channel
        self.cache = MatcherCache()
        self.definitions: dict[tuple[int, int], d.Definition] = {}

    def env(self, ctx: JobContext) -> engine.Env:
        allow = ctx.settings.webhook_allow if ctx.settings is not None else ()
        return engine.Env(ctx.pool, self.clock, self.channel, allow, self.definitions)

    async def run(self, ctx: JobContext, args: dict[str, Any]) -> None:
        run_id = int(args["run_id"])
        try:
            await engine.advance(self.env(ctx), run_id)
        except Exception as exc:
            async with ctx.pool.connection() as conn:
                await runs.event(
                    conn, run_id, "retry", f"attempt {ctx.attempt}: {type(exc).__name__}: {exc}"
                )
            raise

    async def give_up(self, ctx: JobContext, args: dict[str, Any], error: str) -> None:
        await engine.fail(
            self.env(ctx),
            int(args["run_id"]),
            None,
            f"gave up after {ctx.attempt} attempts: {error}",
        )

    async def match(self, ctx: JobContext, args: dict[str, Any]) -> None:
        """Match until the outbox is empty (or the budget is spent).

        At most MATCHERS run at once, each holding one of MATCHERS advisory locks, the
        second only while a backlog lasts: a matcher job that finds no slot for it ends at
        once, so the jobs the capture trigger queues while changes keep coming (one whenever
        none is queued) never fill the worker's slots that the runs need. No change is left
        behind: a matcher releases its lock and only then looks for changes once more (a
        job that found the locks taken did so after its change committed, so that last look
        sees the change).

        The matcher of slot 0 stays while changes keep coming: with the outbox empty it
        LISTENs and waits for the next change's NOTIFY (LINGER_S at most), so a change is
        matched at once, without a job to queue and claim first. When its budget is spent
        while changes still come, it queues its successor before it ends."""
        from kernel.jobs import enqueue

        deadline = time.monotonic() + MATCH_BUDGET_S
        async with ctx.pool.connection() as conn:
            await conn.set_autocommit(True)  # the locks outside transactions; batches in theirs
            slot: int | None = None
            listening = False
            try:
                slot = await _take_matcher_lock(conn)
                if slot is None:
                    return
                set_json_loads(msgspec.json.decode, conn)  # the changes' rows, ~4x json's speed
                env = self.env(ctx)
                last_change = -float("inf")  # it lingers only after changes came
                while (now := time.monotonic()) < deadline and not ctx.stopping.is_set():
                    stats = await match_batch(conn, self.cache, env=env)
                    if stats.changes > 0:
                        last_change = time.monotonic()
                        continue
                    if slot == 0 and now - last_change < LINGER_S:
                        if not listening:  # then look again: one committed before LISTEN
                            await conn.execute(f"LISTEN {CHANNEL}")
                            listening = True
                        else:
                            await _next_change(
                                conn, min(deadline, last_change + LINGER_S) - now, ctx.stopping
                            )
                        continue
                    await _release_matcher_lock(conn, slot)
                    slot = None
                    # rows another matcher's batch holds are that matcher's: skipped
                    cur = await conn.execute(
                        "SELECT EXISTS (SELECT 1 FROM automation_changes FOR UPDATE SKIP LOCKED)"
                    )
                    row = await cur.fetchone()
                    if not (row and row[0]):
                        return
                    slot = await _take_matcher_lock(conn)
                    if slot is None:
                        return  # other matchers have them
                # the budget is spent, or the worker stops: release, then look (as above);
                # changes waiting, or coming lately, go to the next matcher (after other
                # jobs' turn; it looks at the outbox first, then listens)
                if slot is not None:
                    await _release_matcher_lock(conn, slot)
                    slot = None
                cur = await conn.execute("SELECT EXISTS (SELECT 1 FROM automation_changes)")
                row = await cur.fetchone()
                if (row and row[0]) or time.monotonic() - last_change < LINGER_S:
                    async with conn.transaction():
                        await enqueue(conn, MATCH_TASK, dedupe_key=MATCH_TASK)
            finally:
                # Session-level advisory locks outlive a rollback: a matcher interrupted
                # between taking a lock and remembering it, or left inside a transaction,
                # would hand the pool a connection that holds a slot for good (the soak
                # test saw every slot taken and changes left unmatched). So: drop every
                # lock this session holds (and its LISTEN, and notifications kept for it),
                # or close a connection that is not idle.
                if conn.info.transaction_status == pq.TransactionStatus.IDLE:
                    await conn.execute("SELECT pg_advisory_unlock_all()")
                    if listening:
                        await conn.execute("UNLISTEN *")
                        async for _ in conn.notifies(timeout=0):
                            pass
                    set_json_loads(json.loads, conn)
                    await conn.set_autocommit(False)
                elif not conn.closed:
                    await conn.close()  # the server drops its locks; the pool discards it

    async def wake(self, ctx: JobContext, args: dict[str, Any]) -> None:
        async with ctx.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT id FROM automation_runs WHERE status = 'waiting' AND wake_at <= %s ORDER BY wake_at LIMIT 2000",
                (self.clock.now(),),
            )
            for (run_id,) in await cur.fetchall():
                await runs.enqueue_run(conn, int(run_id))

    async def schedule(self, ctx: JobContext, args: dict[str, Any]) -> None:
        now = self.clock.now().replace(second=0, microsecond=0)
        async with ctx.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT w.id, w.version, v.definition FROM automation_workflows w JOIN automation_versions v"
                " ON v.workflow_id = w.id AND v.version = w.version WHERE w.active AND w.trigger_on = 'schedule'"
            )
            for wid, version, raw in await cur.fetchall():
                cron = parse_cron(str(raw["trigger"]["cron"]))
                for back in range(10, -1, -1):  # the last ten minutes: a slow worker misses none
                    slot = now - timedelta(minutes=back)
                    if not cron.matches(slot):
                        continue
                    got = await conn.execute(
                        "INSERT INTO automation_schedule_slots (workflow_id, slot) VALUES (%s, %s)"
                        " ON CONFLICT DO NOTHING RETURNING 1",
                        (wid, slot),
                    )
                    if await got.fetchone() is not None:
                        await runs.start(
                            conn, wid, version, record_object=None, record_id=None,
                            trigger={"event": "schedule", "slot": slot.isoformat()}, why=f"schedule {slot.isoformat()}",
                        )  # fmt: skip

    async def sla(self, ctx: JobContext, args: dict[str, Any]) -> None:
        now = self.clock.now()
        async with ctx.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT 1 FROM automation_workflows WHERE active AND trigger_on LIKE 'work_order_sla.%' LIMIT 1"
            )
            if await cur.fetchone() is None:
                return
            cur = await conn.execute(
                "SELECT w.id, w.sla_due_at, to_jsonb(w) FROM work_orders w"
                " WHERE w.sla_due_at IS NOT NULL AND w.status NOT IN ('done', 'cancelled')"
                " AND w.sla_due_at <= %s",
                (now + timedelta(seconds=SLA_APPROACHING_S),),
            )
            for wo_id, due, row in await cur.fetchall():
                kind = "breached" if due <= now else "approaching"
                got = await conn.execute(
                    "INSERT INTO automation_sla_events (work_order_id, kind, due_at) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING RETURNING 1",
                    (wo_id, kind, due),
                )
                if await got.fetchone() is not None:
                    await conn.execute(
                        "INSERT INTO automation_changes (event, record_object, record_id, new)"
                        " VALUES (%s, 'work_orders', %s, %s)",
                        (f"work_order_sla.{kind}", str(wo_id), Jsonb(row)),
                    )


def register(
    registry: Registry,
    *,
    clock: Clock | None = None,
    channel: Channel | None = None,
    every_s: float | None = None,
) -> Automation:
    """Automation's tasks; `every_s` shortens the schedule and SLA periods (tests)."""
    from crm import hooks

    hooks.install()  # the CRM's rules for the records runs write (territories, stages ...)
    a = Automation(clock or SystemClock(), channel or EngageChannel())
    registry.add(
        Task(
            runs.RUN_TASK,
            a.run,
            timeout_s=600.0,
            backoff_base_s=1.0,
            backoff_cap_s=300.0,
            on_give_up=a.give_up,
        )
    )
    registry.add(Task(MATCH_TASK, a.match, timeout_s=120.0, backoff_base_s=0.5, backoff_cap_s=30.0))
    registry.add(Task(WAKE_TASK, a.wake, timeout_s=60.0))
    registry.add(Task(SCHEDULE_TASK, a.schedule, timeout_s=60.0))
    registry.add(Task(SLA_TASK, a.sla, timeout_s=120.0))
    registry.every(WAKE_TASK, 1.0)
    registry.every(MATCH_TASK, 1.0)  # the safety net for a wake-up that came too late
    registry.every(SCHEDULE_TASK, every_s or 20.0)
    registry.every(SLA_TASK, every_s or 30.0)
    return a
