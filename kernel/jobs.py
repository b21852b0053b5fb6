"""The job system: background work in a PostgreSQL table, run by `fieldmesh run`'s `jobs` role.

Why our own queue (about 300 lines) rather than procrastinate, pgqueuer or DBOS: each of
those brings its own schema, installed by its own command beside our per-package Alembic
branches, and its own connection handling; what fieldmesh needs fits in one table:

- enqueue inside the caller's transaction on the caller's psycopg 3 connection, so a job
  exists exactly when the change that asks for it commits (an import row and its job);
- workers claim due rows with `FOR UPDATE SKIP LOCKED` and hold them by a lease they renew;
  a worker that dies loses its lease and the job runs again elsewhere. Execution is
  therefore at least once: handlers are idempotent (they check the state they write), which
  makes the effects exactly once;
- a failed attempt is retried with capped exponential backoff and jitter, up to
  `max_attempts`, then the job is `failed` with its last error (a task's `on_give_up`
  first records that in the domain's table, e.g. a plan that will never be solved);
- periodic tasks: each worker offers the current time slot; one UPDATE on `job_periodic`
  lets exactly one of them enqueue it;
- state is a table (`SELECT task, status, attempts, last_error FROM jobs`); a job's
  progress lives in the domain's own table (`import_jobs.processed_rows`);
- LISTEN/NOTIFY wakes idle workers at once, polling covers a lost notification;
- a task may cap how many of its jobs one worker runs at once (`Task.concurrency`): model
  trainings, queued any number of times by a manager, run one at a time per worker and
  never hold the slots other users' imports, exports and plans need.

Durable workflows (automation: many steps, each run once, resumed after a crash) are a
different tool: DBOS keeps each step's result. A workflow engine there can enqueue and be
enqueued by this system; the two share PostgreSQL, not tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from kernel.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "fieldmesh_jobs"
DEFAULT_MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a handler gets besides its arguments."""

    job_id: int
    task: str
    attempt: int  # 1 on the first run
    pool: AsyncConnectionPool[Any]
    dsn: str  # for handlers that need a connection of their own (a sync library)
    settings: Settings | None = None  # the deployment's, when the worker was given them
    # set when the worker stops: a handler that waits for work (a listener that lingers)
    # ends early instead of holding the worker's shutdown for its grace period
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


Handler = Callable[[JobContext, dict[str, Any]], Awaitable[None]]
# Called once a job has failed for good (its last attempt raised, or its worker died on
# every attempt) with its last error: the domain records the failure in its own table.
GiveUp = Callable[[JobContext, dict[str, Any], str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    handler: Handler
    timeout_s: float = 3600.0
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 600.0
    on_give_up: GiveUp | None = None
    # at most this many jobs of the task at once in one worker (None: up to the worker's
    # concurrency): a CPU-bound task queued many times over must leave the other slots to
    # the other tasks (a manager's hundred trainings would otherwise hold every slot for
    # hours, and every user's imports, exports and plans wait behind them)
    concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class Periodic:
    task: str
    every_s: float
    args: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Task names to handlers, and the periodic schedule; the composition root fills it."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.periodic: list[Periodic] = []
        self.add(Task("kernel.jobs.prune", _prune))
        self.every("kernel.jobs.prune", 3600.0)

    def add(self, task: Task) -> None:
        if task.name in self.tasks:
            raise ValueError(f"task {task.name!r} registered twice")
        if task.concurrency is not None and task.concurrency < 1:
            raise ValueError(f"task {task.name!r}: concurrency must be at least 1")
        self.tasks[task.name] = task

    def every(self, task: str, every_s: float, args: dict[str, Any] | None = None) -> None:
        if task not in self.tasks:
            raise ValueError(f"periodic {task!r}: no such task")
        if every_s <= 0:
            raise ValueError(f"periodic {task!r}: every_s must be positive")
        self.periodic.append(Periodic(task, every_s, args or {}))


def backoff_s(attempt: int, base_s: float, cap_s: float) -> float:
    """Delay before the retry after attempt `attempt` (1-based): capped, jittered 50-100%."""
    delay: float = min(cap_s, base_s * 2.0 ** max(attempt - 1, 0))
    return delay * (0.5 + 0.5 * random.random())


# --------------------------------------------------------------------------- enqueue

_ENQUEUE_SQL = """
INSERT INTO jobs (task, args, run_after, dedupe_key, max_attempts)
VALUES (%s, %s, now() + make_interval(secs => %s), %s, %s)
ON CONFLICT (dedupe_key) WHERE status = 'queued' AND dedupe_key IS NOT NULL
DO UPDATE SET run_after = least(jobs.run_after, EXCLUDED.run_after)
RETURNING id
"""
_NOTIFY_SQL = "SELECT pg_notify(%s, %s)"


def _params(
    task: str,
    args: dict[str, Any] | None,
    delay_s: float,
    dedupe_key: str | None,
    max_attempts: int | None,
) -> tuple[Any, ...]:
    return (
        task,
        Jsonb(args or {}),
        max(delay_s, 0.0),
        dedupe_key,
        max_attempts or DEFAULT_MAX_ATTEMPTS,
    )


async def enqueue(
    conn: AsyncConnection[Any],
    task: str,
    args: dict[str, Any] | None = None,
    *,
    delay_s: float = 0.0,
    dedupe_key: str | None = None,
    max_attempts: int | None = None,
) -> int:
    """Add a job in the caller's transaction (it runs once that commits); its id. With a
    `dedupe_key` an already queued job of that key is reused (and moved earlier if need be)."""
    cur = await conn.execute(_ENQUEUE_SQL, _params(task, args, delay_s, dedupe_key, max_attempts))
    row = await cur.fetchone()
    assert row is not None
    await conn.execute(_NOTIFY_SQL, (CHANNEL, task))  # delivered at commit
    return int(row[0])


def enqueue_sync(
    conn: psycopg.Connection[Any],
    task: str,
    args: dict[str, Any] | None = None,
    *,
    delay_s: float = 0.0,
    dedupe_key: str | None = None,
    max_attempts: int | None = None,
) -> int:
    """`enqueue` for synchronous callers (the gateway's stages, CLI commands)."""
    row = conn.execute(
        _ENQUEUE_SQL, _params(task, args, delay_s, dedupe_key, max_attempts)
    ).fetchone()
    assert row is not None
    conn.execute(_NOTIFY_SQL, (CHANNEL, task))
    return int(row[0])


@dataclass(frozen=True, slots=True)
class JobState:
    id: int
    task: str
    status: str
    attempts: int
    last_error: str | None


async def job_state(conn: AsyncConnection[Any], job_id: int) -> JobState | None:
    cur = await conn.execute(
        "SELECT id, task, status, attempts, last_error FROM jobs WHERE id = %s", (job_id,)
    )
    row = await cur.fetchone()
    return None if row is None else JobState(*row)


async def _prune(ctx: JobContext, args: dict[str, Any]) -> None:
    """Finished jobs are kept a week for inspection, then deleted."""
    keep_s = float(args.get("keep_s", 7 * 86400))
    async with ctx.pool.connection() as conn:
        await conn.execute(
            "DELETE FROM jobs WHERE status IN ('done', 'failed')"
            " AND finished_at < now() - make_interval(secs => %s)",
            (keep_s,),
        )


# --------------------------------------------------------------------------- the worker

_CLAIM_SQL = """
UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = now(),
       locked_until = now() + make_interval(secs => %s), worker = %s
WHERE id = (
    SELECT id FROM jobs
    WHERE task = ANY (%s)
      AND ((status = 'queued' AND run_after <= now())
           OR (status = 'running' AND locked_until < now()))
    ORDER BY run_after, id
    FOR UPDATE SKIP LOCKED
    LIMIT 1)
RETURNING id, task, args, attempts, max_attempts
"""


@dataclass(slots=True)
class WorkerStats:
    done: int = 0
    retried: int = 0
    failed: int = 0
    running: int = 0
    last_poll: float = 0.0  # time.time() of the last look at the queue


class Worker:
    """Claims due jobs and runs up to `concurrency` handlers at once, until `stop` is set.

    On stop it claims nothing more, lets running handlers finish for `grace_s`, then
    cancels them and puts their jobs back in the queue (the interrupted attempt does not
    count)."""

    def __init__(
        self,
        dsn: str,
        registry: Registry,
        *,
        concurrency: int = 4,
        poll_s: float = 1.0,
        lease_s: float = 60.0,
        grace_s: float = 20.0,
        name: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings
        self.dsn = dsn
        self.registry = registry
        self.concurrency = concurrency
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.grace_s = grace_s
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.stats = WorkerStats()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()  # the `stop` of `run`, handed to handlers
        self._running: dict[int, asyncio.Task[None]] = {}
        self._running_task: dict[int, str] = {}  # job id -> its task's name
        # the slot of each periodic task this worker last offered: a wake-up (every NOTIFY)
        # does not ask the database again for a slot already offered
        self._offered: dict[str, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        self._stopping = stop
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.dsn, min_size=1, max_size=self.concurrency + 2, open=False
        )
        await pool.open(wait=True, timeout=30)
        listener = asyncio.create_task(self._listen(stop), name="jobs-listen")
        try:
            while not stop.is_set():
                # cleared before looking, not after: a NOTIFY that arrives while this pass
                # claims is kept and starts the next pass at once (cleared after the claims,
                # it was lost and its job waited for the next poll)
                self._wake.clear()
                await self._offer_periodic(pool)
                await self._claim_all(pool)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):
                        waits = [asyncio.ensure_future(self._wake.wait())]
                        waits.append(asyncio.ensure_future(stop.wait()))
                        try:
                            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                        finally:
                            for w in waits:
                                w.cancel()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self._drain(pool)
            await pool.close()

    async def _listen(self, stop: asyncio.Event) -> None:
        """Wake the loop on NOTIFY; reconnect after a lost connection (polling covers it)."""
        while not stop.is_set():
            try:
                async with await AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    async for _ in conn.notifies():
                        self._wake.set()
            except psycopg.OperationalError as exc:
                log.warning("jobs: LISTEN connection lost (%s); polling meanwhile", exc)
                await asyncio.sleep(self.poll_s)

    async def _offer_periodic(self, pool: AsyncConnectionPool[Any]) -> None:
        now = time.time()
        for p in self.registry.periodic:
            slot = int(now // p.every_s)
            if self._offered.get(p.task) == slot:
                continue
            try:
                async with pool.connection() as conn:
                    cur = await conn.execute(
                        "INSERT INTO job_periodic (name, last_slot) VALUES (%s, %s)"
                        " ON CONFLICT (name) DO UPDATE SET last_slot = EXCLUDED.last_slot"
                        " WHERE job_periodic.last_slot < EXCLUDED.last_slot RETURNING name",
                        (p.task, slot),
                    )
                    if await cur.fetchone() is not None:
                        await enqueue(conn, p.task, p.args, dedupe_key=f"periodic:{p.task}")
                self._offered[p.task] = slot
            except psycopg.OperationalError as exc:
                log.warning("jobs: cannot offer periodic %s: %s", p.task, exc)

    def _claimable(self) -> list[str]:
        """The tasks this worker may start one more job of (not at their own limit)."""
        busy = Counter(self._running_task.values())
        return [
            name
            for name, task in self.registry.tasks.items()
            if task.concurrency is None or busy[name] < task.concurrency
        ]

    async def _claim_all(self, pool: AsyncConnectionPool[Any]) -> None:
        while len(self._running) < self.concurrency:
            names = self._claimable()
            if not names:
                return
            try:
                async with pool.connection() as conn:
                    cur = await conn.execute(_CLAIM_SQL, (self.lease_s, self.name, names))
                    row = await cur.fetchone()
            except psycopg.OperationalError as exc:
                log.warning("jobs: cannot claim: %s", exc)
                return
            self.stats.last_poll = time.time()
            if row is None:
                return
            job_id, task, args, attempts, max_attempts = row
            if attempts > max_attempts:  # its workers kept dying: give up
                error = "lease lost on every attempt"
                if await self._give_up(pool, job_id, task, args, max_attempts, error):
                    await self._finish(pool, job_id, "failed", error)
                    self.stats.failed += 1
                continue
            t = asyncio.create_task(self._run_one(pool, job_id, task, args, attempts, max_attempts))
            self._running[job_id] = t
            self._running_task[job_id] = task
            self.stats.running = len(self._running)
            t.add_done_callback(functools.partial(self._done, job_id))

    def _done(self, job_id: int, _task: asyncio.Task[None]) -> None:
        self._running.pop(job_id, None)
        self._running_task.pop(job_id, None)
        self.stats.running = len(self._running)
        self._wake.set()  # a slot is free: look for more

    async def _run_one(
        self,
        pool: AsyncConnectionPool[Any],
        job_id: int,
        task_name: str,
        args: dict[str, Any],
        attempt: int,
        max_attempts: int,
    ) -> None:
        task = self.registry.tasks[task_name]
        ctx = JobContext(job_id, task_name, attempt, pool, self.dsn, self.settings, self._stopping)
        heartbeat = asyncio.create_task(self._heartbeat(pool, job_id))
        try:
            async with asyncio.timeout(task.timeout_s):
                await task.handler(ctx, args)
        except asyncio.CancelledError:
            heartbeat.cancel()
            raise
        except Exception as exc:  # a handler's failure is the job's, never the worker's
            heartbeat.cancel()
            error = f"{type(exc).__name__}: {exc}"[:2000]
            if attempt >= max_attempts:
                log.exception("job %d %s failed for good (attempt %d)", job_id, task_name, attempt)
                if await self._give_up(pool, job_id, task_name, args, attempt, error):
                    await self._finish(pool, job_id, "failed", error)
                    self.stats.failed += 1
            else:
                delay = backoff_s(attempt, task.backoff_base_s, task.backoff_cap_s)
                log.warning(
                    "job %d %s failed (attempt %d), retry in %.1f s: %s",
                    job_id,
                    task_name,
                    attempt,
                    delay,
                    error,
                )
                await self._finish(pool, job_id, "queued", error, delay)
                self.stats.retried += 1
            return
        heartbeat.cancel()
        await self._finish(pool, job_id, "done", None)
        self.stats.done += 1

    async def _give_up(
        self,
        pool: AsyncConnectionPool[Any],
        job_id: int,
        task_name: str,
        args: dict[str, Any],
        attempt: int,
        error: str,
    ) -> bool:
        """Run the task's give-up handler before the job row says `failed` (so a worker dying
        in between only runs it again). False when it failed: the job then stays `running`
        until its lease runs out and the next claim gives up again."""
        task = self.registry.tasks.get(task_name)
        if task is None or task.on_give_up is None:
            return True
        ctx = JobContext(job_id, task_name, attempt, pool, self.dsn, self.settings, self._stopping)
        try:
            await task.on_give_up(ctx, args, error)
        except Exception:
            log.exception("job %d %s: its give-up handler failed", job_id, task_name)
            return False
        return True

    async def _heartbeat(self, pool: AsyncConnectionPool[Any], job_id: int) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                async with pool.connection() as conn:
                    await conn.execute(
                        "UPDATE jobs SET locked_until = now() + make_interval(secs => %s)"
                        " WHERE id = %s AND worker = %s AND status = 'running'",
                        (self.lease_s, job_id, self.name),
                    )
            except psycopg.OperationalError as exc:
                log.warning("job %d: cannot renew its lease: %s", job_id, exc)

    async def _finish(
        self,
        pool: AsyncConnectionPool[Any],
        job_id: int,
        status: str,
        error: str | None,
        delay_s: float = 0.0,
    ) -> None:
        # `worker = me` guards against a job whose lease this worker already lost
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE jobs SET status = %s, last_error = %s, locked_until = NULL,"
                " run_after = now() + make_interval(secs => %s),"
                " finished_at = CASE WHEN %s IN ('done', 'failed') THEN now() END"
                " WHERE id = %s AND worker = %s AND status = 'running'",
                (status, error, delay_s, status, job_id, self.name),
            )

    async def _drain(self, pool: AsyncConnectionPool[Any]) -> None:
        if not self._running:
            return
        pending = list(self._running.values())
        _done, still = await asyncio.wait(pending, timeout=self.grace_s)
        interrupted = [j for j, t in list(self._running.items()) if t in still]
        for t in still:
            t.cancel()
        await asyncio.gather(*still, return_exceptions=True)
        if interrupted:
            log.warning("jobs: interrupted %s at shutdown; they go back to the queue", interrupted)
            async with pool.connection() as conn:
                await conn.execute(
                    "UPDATE jobs SET status = 'queued', attempts = greatest(attempts - 1, 0),"
                    " locked_until = NULL, run_after = now()"
                    " WHERE id = ANY (%s) AND worker = %s AND status = 'running'",
                    (interrupted, self.name),
                )


async def queue_counts(conn: AsyncConnection[Any]) -> dict[str, int]:
    """Jobs per status (for health and dashboards)."""
    cur = await conn.execute("SELECT status, count(*) FROM jobs GROUP BY status")
    return {str(s): int(n) for s, n in await cur.fetchall()}
