"""kernel.jobs against the real PostgreSQL: enqueue in a transaction, run, retry with
backoff, give up, deduplicate, periodic slots taken by one worker only, a lost lease taken
over, and a graceful stop that puts an interrupted job back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection

from kernel.jobs import JobContext, Registry, Task, Worker, enqueue, enqueue_sync, job_state
from tests.clock import clear_of_slot
from tests.eventually import eventually_async

Handler = Callable[[JobContext, dict[str, Any]], Awaitable[None]]


def _name(prefix: str) -> str:
    return f"test.{prefix}.{uuid.uuid4().hex[:8]}"  # each test its own task names


async def _status(dsn: str, job_id: int) -> tuple[str, int, str | None]:
    async with await AsyncConnection.connect(dsn) as conn:
        state = await job_state(conn, job_id)
    assert state is not None
    return state.status, state.attempts, state.last_error


def _worker(dsn: str, registry: Registry, **kw: Any) -> Worker:
    kw.setdefault("poll_s", 0.1)
    return Worker(dsn, registry, **kw)


async def _with_worker(worker: Worker, body: Callable[[], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await body()
    finally:
        stop.set()
        await task


def test_a_job_enqueued_in_a_rolled_back_transaction_never_runs(db_dsn: str) -> None:
    name = _name("tx")
    ran: list[dict[str, Any]] = []

    async def handler(_ctx: JobContext, args: dict[str, Any]) -> None:
        ran.append(args)

    registry = Registry()
    registry.add(Task(name, handler))

    async def main() -> None:
        async with await AsyncConnection.connect(db_dsn) as conn:
            await enqueue(conn, name, {"n": 1})
            await conn.rollback()
            kept = await enqueue(conn, name, {"n": 2})
            await conn.commit()

        async def body() -> None:
            async def done() -> bool:
                return (await _status(db_dsn, kept))[0] == "done"

            await eventually_async(done)

        await _with_worker(_worker(db_dsn, registry), body)

    asyncio.run(main())
    assert ran == [{"n": 2}]


def test_a_failing_job_is_retried_with_backoff_then_fails_with_its_error(db_dsn: str) -> None:
    flaky, doomed = _name("flaky"), _name("doomed")
    calls: dict[str, int] = {flaky: 0, doomed: 0}

    async def flaky_handler(ctx: JobContext, _args: dict[str, Any]) -> None:
        calls[flaky] += 1
        if ctx.attempt < 3:
            raise ConnectionError(f"subscriber down (attempt {ctx.attempt})")

    async def doomed_handler(_ctx: JobContext, _args: dict[str, Any]) -> None:
        calls[doomed] += 1
        raise ValueError("bad input")

    registry = Registry()
    registry.add(Task(flaky, flaky_handler, backoff_base_s=0.05, backoff_cap_s=0.2))
    registry.add(Task(doomed, doomed_handler, backoff_base_s=0.05, backoff_cap_s=0.2))
    with psycopg.connect(db_dsn) as conn:
        flaky_id = enqueue_sync(conn, flaky, max_attempts=5)
        doomed_id = enqueue_sync(conn, doomed, max_attempts=2)

    async def main() -> None:
        async def body() -> None:
            async def finished() -> bool:
                a = (await _status(db_dsn, flaky_id))[0]
                b = (await _status(db_dsn, doomed_id))[0]
                return a == "done" and b == "failed"

            await eventually_async(finished)

        await _with_worker(_worker(db_dsn, registry), body)

    asyncio.run(main())
    assert calls == {flaky: 3, doomed: 2}
    assert asyncio.run(_status(db_dsn, flaky_id))[:2] == ("done", 3)
    status, attempts, error = asyncio.run(_status(db_dsn, doomed_id))
    assert (status, attempts) == ("failed", 2)
    assert error is not None and "ValueError: bad input" in error


def test_a_job_failed_for_good_calls_its_give_up_handler_until_that_succeeds(
    db_dsn: str,
) -> None:
    name = _name("giveup")
    gave_up: list[tuple[int, str]] = []

    async def handler(_ctx: JobContext, _args: dict[str, Any]) -> None:
        raise ValueError("bad input")

    async def give_up(ctx: JobContext, args: dict[str, Any], error: str) -> None:
        gave_up.append((ctx.attempt, error))
        if len(gave_up) == 1:  # the domain's database write failed: the job is not lost
            raise ConnectionError("database gone")

    registry = Registry()
    registry.add(Task(name, handler, backoff_base_s=0.05, backoff_cap_s=0.1, on_give_up=give_up))
    with psycopg.connect(db_dsn) as conn:
        job_id = enqueue_sync(conn, name, {"k": 1}, max_attempts=2)

    async def main() -> None:
        async def body() -> None:
            async def failed() -> bool:
                return (await _status(db_dsn, job_id))[0] == "failed"

            await eventually_async(failed)

        await _with_worker(_worker(db_dsn, registry, lease_s=0.5), body)

    asyncio.run(main())
    # the second call comes from the claim after the lease ran out
    assert gave_up == [(2, "ValueError: bad input"), (2, "lease lost on every attempt")]


def test_a_dedupe_key_keeps_one_queued_job(db: psycopg.Connection[Any]) -> None:
    name = _name("dedupe")
    first = enqueue_sync(db, name, dedupe_key=name, delay_s=3600)
    second = enqueue_sync(db, name, dedupe_key=name)
    db.commit()
    assert first == second
    row = db.execute(
        "SELECT count(*), bool_and(run_after <= now() + interval '1 minute') FROM jobs"
        " WHERE task = %s",
        (name,),
    ).fetchone()
    assert row == (1, True)  # the second enqueue moved the queued one earlier


def test_two_workers_enqueue_each_periodic_slot_once(db_dsn: str) -> None:
    name = _name("periodic")
    runs: list[int] = []

    async def handler(ctx: JobContext, _args: dict[str, Any]) -> None:
        runs.append(ctx.job_id)

    def registry() -> Registry:
        r = Registry()
        r.add(Task(name, handler))
        r.every(name, 3600.0)  # one slot in the test's time: exactly one run
        return r

    # the test must not span the turn of an hour: the next slot would be a second run
    clear_of_slot(3600.0)

    async def main() -> None:
        stop = asyncio.Event()
        workers = [_worker(db_dsn, registry(), name=f"w{i}") for i in range(2)]
        tasks = [asyncio.create_task(w.run(stop)) for w in workers]
        try:

            async def ran() -> bool:
                return len(runs) >= 1 and all(w.stats.last_poll > 0 for w in workers)

            await eventually_async(ran)
            await asyncio.sleep(1.0)  # both workers offered the slot several times meanwhile
        finally:
            stop.set()
            await asyncio.gather(*tasks)

    asyncio.run(main())
    assert len(runs) == 1


def test_a_job_whose_worker_died_is_taken_over_after_its_lease(db_dsn: str) -> None:
    name = _name("lease")
    ran: list[int] = []

    async def handler(ctx: JobContext, _args: dict[str, Any]) -> None:
        ran.append(ctx.attempt)

    registry = Registry()
    registry.add(Task(name, handler))
    with psycopg.connect(db_dsn) as conn:
        job_id = enqueue_sync(conn, name)
        # a worker claimed it and died: running, with a lease already run out
        conn.execute(
            "UPDATE jobs SET status = 'running', attempts = 1, worker = 'dead:1',"
            " locked_until = now() - interval '1 second' WHERE id = %s",
            (job_id,),
        )

    async def main() -> None:
        async def body() -> None:
            async def done() -> bool:
                return (await _status(db_dsn, job_id))[0] == "done"

            await eventually_async(done)

        await _with_worker(_worker(db_dsn, registry), body)

    asyncio.run(main())
    assert ran == [2]


def test_stop_puts_an_interrupted_job_back_in_the_queue(db_dsn: str) -> None:
    name = _name("slow")
    started = asyncio.Event()

    async def handler(_ctx: JobContext, _args: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(3600)

    registry = Registry()
    registry.add(Task(name, handler))
    with psycopg.connect(db_dsn) as conn:
        job_id = enqueue_sync(conn, name)

    async def main() -> None:
        async def body() -> None:
            await asyncio.wait_for(started.wait(), 30)

        await _with_worker(_worker(db_dsn, registry, grace_s=0.2), body)

    asyncio.run(main())
    status, attempts, _ = asyncio.run(_status(db_dsn, job_id))
    assert (status, attempts) == ("queued", 0)
    with psycopg.connect(db_dsn) as conn:  # nobody else runs it later in this session
        conn.execute("DELETE FROM jobs WHERE id = %s", (job_id,))


@pytest.mark.parametrize("every_s", [0.0, -1.0])
def test_a_periodic_task_needs_a_positive_period(every_s: float) -> None:
    registry = Registry()

    async def handler(_ctx: JobContext, _args: dict[str, Any]) -> None:
        return None

    registry.add(Task("x", handler))
    with pytest.raises(ValueError, match="positive"):
        registry.every("x", every_s)


def test_a_task_queued_many_times_leaves_the_other_slots_to_other_tasks(db_dsn: str) -> None:
    """A manager queues ten model trainings (CPU-bound, up to an hour each), then a rep an
    export. With the training task's concurrency of one, a worker of four slots runs one
    training at a time and the export at once; without it, four trainings took every slot
    and the export waited behind all ten."""
    heavy, quick = _name("train"), _name("export")
    release = asyncio.Event()
    running: list[int] = []
    most = 0

    async def train(ctx: JobContext, _args: dict[str, Any]) -> None:
        nonlocal most
        running.append(ctx.job_id)
        most = max(most, len(running))
        try:
            await release.wait()
        finally:
            running.remove(ctx.job_id)

    async def export(_ctx: JobContext, _args: dict[str, Any]) -> None:
        return None

    registry = Registry()
    registry.add(Task(heavy, train, concurrency=1))
    registry.add(Task(quick, export))
    with pytest.raises(ValueError, match="concurrency"):
        registry.add(Task(_name("none"), export, concurrency=0))

    async def main() -> None:
        async with await AsyncConnection.connect(db_dsn) as conn:
            trainings = [await enqueue(conn, heavy, {"n": i}) for i in range(10)]
            exported = await enqueue(conn, quick)
            await conn.commit()

        async def body() -> None:
            async def done(job_id: int) -> bool:
                return (await _status(db_dsn, job_id))[0] == "done"

            await eventually_async(lambda: done(exported), what="the export run")
            assert len(running) == 1 and most == 1
            release.set()
            for job_id in trainings:  # the trainings still run, one after another
                await eventually_async(partial(done, job_id), what="every training run")

        await _with_worker(_worker(db_dsn, registry, concurrency=4), body)

    asyncio.run(main())
    assert most == 1
