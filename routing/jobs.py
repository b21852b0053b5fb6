"""Routing's background jobs (kernel.jobs): solving a plan.

`POST /api/v1/routing/plans` records the plan (status `solving`, with its request) and
enqueues `routing.plan` in the same transaction; the `jobs` role of `fieldmesh run` loads
the problem, solves it in a spawned process of its own (the solver's CPU budget counts
that process and its ILS workers, nothing else) and stores the result or the reason it
failed. The job is idempotent: a plan no longer `solving` is left alone. A solve that
crashes or whose worker dies is retried; once the attempts are spent, `give_up` marks the
plan `failed`, so no plan stays `solving` for good.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from psycopg import AsyncConnection

from kernel.jobs import JobContext, Registry, Task, enqueue
from routing import store
from routing.model import Plan, Problem, RoutingError
from routing.worker import solve_and_send, spawn_context

log = logging.getLogger(__name__)

PLAN_TASK = "routing.plan"
PLAN_MAX_ATTEMPTS = 3
# cpu_s is at most 600; the solver gives up on a hung ILS worker after 10x its budget
PLAN_TIMEOUT_S = 3600.0


class SolveRejected(Exception):
    """The solver refused the problem (bad input): the plan fails, the job does not retry."""


async def enqueue_plan(conn: AsyncConnection[Any], plan_id: int) -> int:
    return await enqueue(conn, PLAN_TASK, {"plan_id": plan_id}, max_attempts=PLAN_MAX_ATTEMPTS)


async def solve_in_process(problem: Problem, cpu_s: float) -> Plan:
    """Solve in a spawned process; killed if this coroutine is cancelled (job timeout,
    worker shutdown), so an abandoned solve never keeps a core busy."""
    ctx = spawn_context()
    recv_end, send_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=solve_and_send, args=(send_end, problem, cpu_s), name="plan-solve")
    proc.start()
    send_end.close()  # ours: the pipe then reports EOF once the process has gone
    try:
        try:
            msg = await asyncio.to_thread(recv_end.recv)
        except EOFError:
            await asyncio.to_thread(proc.join)
            raise ChildProcessError(
                f"the solver process ended without an answer (exit code {proc.exitcode})"
            ) from None
    finally:
        if proc.is_alive():
            proc.kill()
        await asyncio.shield(asyncio.to_thread(proc.join))
        recv_end.close()
    kind, value = msg
    if kind == "ok":
        assert isinstance(value, Plan)
        return value
    if kind == "rejected":
        raise SolveRejected(value)
    raise RuntimeError(f"solver: {value}")


async def _fail(ctx: JobContext, plan_id: int, error: str) -> None:
    async with ctx.pool.connection() as conn, conn.transaction():
        if await store.lock_if_solving(conn, plan_id):
            await store.save_failure(conn, plan_id, error)


async def solve_plan(ctx: JobContext, args: dict[str, Any]) -> None:
    plan_id = int(args["plan_id"])
    async with ctx.pool.connection() as conn:
        row = await store.get_plan_row(conn, plan_id)
        if row is None or row["status"] != "solving":
            log.info("routing plan %s: %s, nothing to do", plan_id, row and row["status"])
            return
        try:
            request = store.stored_request(row)
            locked = await store.locked_stops(conn, list(request.territory_ids), request.plan_date)
            problem = await store.load_problem(conn, request, locked)
        except (RoutingError, ValueError, msgspec.ValidationError) as exc:
            log.warning("routing plan %s cannot be planned: %s", plan_id, exc)
            await _fail(ctx, plan_id, str(exc))
            return
    try:
        result = await solve_in_process(problem, request.cpu_s)
    except SolveRejected as exc:
        log.warning("routing plan %s failed: %s", plan_id, exc)
        await _fail(ctx, plan_id, str(exc))
        return
    async with ctx.pool.connection() as conn, conn.transaction():
        if await store.lock_if_solving(conn, plan_id):
            await store.save_result(conn, plan_id, problem, result)


async def give_up(ctx: JobContext, args: dict[str, Any], error: str) -> None:
    """Every attempt crashed or lost its worker: the plan fails with the kind of error (its
    message, which may show internals, stays in the job's `last_error` and the log)."""
    kind = error.split(":", 1)[0]
    await _fail(ctx, int(args["plan_id"]), f"internal error after {ctx.attempt} attempts: {kind}")


def register(registry: Registry) -> None:
    registry.add(Task(PLAN_TASK, solve_plan, timeout_s=PLAN_TIMEOUT_S, on_give_up=give_up))
