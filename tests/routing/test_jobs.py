"""Plans are solved by the `routing.plan` job (routing.jobs), not in the API worker: the
API only records the plan and its job; a job worker solves it; a job run again leaves a
finished plan alone; a plan whose job fails ends `failed` with the reason (real
PostgreSQL, a real kernel.jobs.Worker, the solver in a spawned process)."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from datetime import date
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web
from psycopg import AsyncConnection

from fieldmesh import services
from fieldmesh.app import build_app
from fieldmesh.migrate import upgrade
from kernel.jobs import enqueue_sync, job_state
from kernel.settings import Settings
from routing import store
from routing.crm_source import PlanRequest
from routing.jobs import PLAN_MAX_ATTEMPTS, PLAN_TASK, solve_in_process
from routing.model import Location, Problem, Rep, TimeWindow, Visit
from tests.appserver import job_worker
from tests.eventually import eventually_async
from tests.routing.test_api import DAY, _seed


def _plan_jobs(dsn: str, plan_id: int) -> list[tuple[int, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id, status FROM jobs WHERE task = %s AND (args->>'plan_id')::bigint = %s"
            " ORDER BY id",
            (PLAN_TASK, plan_id),
        ).fetchall()
    return [(int(i), str(s)) for i, s in rows]


def _plan(dsn: str, plan_id: int) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT status, error, updated_at FROM routing_plans WHERE id = %s", (plan_id,)
        ).fetchone()
    assert row is not None
    return {"status": row[0], "error": row[1], "updated_at": row[2]}


async def _left_solving(dsn: str, plan_id: int) -> bool:
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT status FROM routing_plans WHERE id = %s", (plan_id,))
        row = await cur.fetchone()
    return row is not None and row[0] != "solving"


async def _job_finished(dsn: str, job_id: int) -> bool:
    async with await AsyncConnection.connect(dsn) as conn:
        state = await job_state(conn, job_id)
    return state is not None and state.status in ("done", "failed")


@pytest.fixture(scope="module")
def own_db(services_up: Settings) -> Any:
    """A database of this module's own: the session's app server runs a jobs worker on the
    shared one (tests/conftest.py app_url), which would take these tests' plan jobs before
    they look at them queued."""
    name = f"fm_test_routing_jobs_{uuid.uuid4().hex[:6]}"
    dsn = services.create_database(services_up, name)
    upgrade(dsn)
    yield services_up.with_overrides(database_url=dsn), dsn
    services.drop_database(services_up, name)


def test_the_api_enqueues_the_plan_and_the_jobs_worker_solves_it(
    own_db: tuple[Settings, str],
) -> None:
    test_settings, db_dsn = own_db

    async def main() -> None:
        w = await _seed(db_dsn)
        runner = web.AppRunner(build_app(test_settings, ("routing.routes",)))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        mgr = {"Authorization": f"Bearer {w['tokens']['manager']}"}
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"http://127.0.0.1:{port}/api/v1/routing/plans",
                    json={"territory_id": w["territory"], "date": DAY, "cpu_s": 1.0},
                    headers=mgr,
                ) as resp,
            ):
                assert resp.status == 202
                plan_id = int((await resp.json())["id"])
        finally:
            await runner.cleanup()
        # No job worker yet: the API solved nothing, it queued the plan's job.
        assert _plan(db_dsn, plan_id)["status"] == "solving"
        ((job_id, status),) = _plan_jobs(db_dsn, plan_id)
        assert status == "queued"

        async with job_worker(test_settings, ("routing.jobs",)):
            await eventually_async(lambda: _left_solving(db_dsn, plan_id), timeout_s=120)
            await eventually_async(lambda: _job_finished(db_dsn, job_id))
        solved = _plan(db_dsn, plan_id)
        assert solved["status"] == "ready", solved
        assert _plan_jobs(db_dsn, plan_id) == [(job_id, "done")]
        with psycopg.connect(db_dsn) as conn:
            n = conn.execute(
                "SELECT count(*) FROM routing_stops WHERE plan_id = %s", (plan_id,)
            ).fetchone()
        assert n is not None and n[0] > 0

        # Run again (a worker died after storing the plan): the plan is left as it is.
        with psycopg.connect(db_dsn) as conn:
            again = enqueue_sync(conn, PLAN_TASK, {"plan_id": plan_id})
        async with job_worker(test_settings, ("routing.jobs",)):
            await eventually_async(lambda: _job_finished(db_dsn, again))
        assert _plan(db_dsn, plan_id) == solved
        assert _plan_jobs(db_dsn, plan_id) == [(job_id, "done"), (again, "done")]

    asyncio.run(main())


def _new_plan(dsn: str, territory: int) -> int:
    async def create() -> int:
        async with await AsyncConnection.connect(dsn) as conn:
            req = PlanRequest(territory_ids=(territory,), plan_date=date.fromisoformat(DAY))
            plan_id = await store.create_plan(conn, req, None)
            await conn.commit()
        return plan_id

    return asyncio.run(create())


def test_a_plan_whose_job_fails_ends_failed_with_the_reason(own_db: tuple[Settings, str]) -> None:
    test_settings, db_dsn = own_db
    w = asyncio.run(_seed(db_dsn))
    # 1. The solver's input is refused: failed with its message at once, no retry.
    refused = _new_plan(db_dsn, w["territory"])
    # 2. Every attempt's worker died mid-solve (killed, out of memory): the job system
    #    gives up after its last lease runs out, and the plan must not stay `solving`.
    lost = _new_plan(db_dsn, w["territory"])
    with psycopg.connect(db_dsn) as conn:
        conn.execute(
            "UPDATE routing_plans SET request = request || '{\"cpu_s\": 0}' WHERE id = %s",
            (refused,),
        )
        refused_job = enqueue_sync(conn, PLAN_TASK, {"plan_id": refused}, max_attempts=3)
        lost_job = enqueue_sync(conn, PLAN_TASK, {"plan_id": lost}, max_attempts=PLAN_MAX_ATTEMPTS)
        conn.execute(
            "UPDATE jobs SET status = 'running', attempts = max_attempts, worker = 'dead:1',"
            " locked_until = now() - interval '1 second' WHERE id = %s",
            (lost_job,),
        )

    async def main() -> None:
        async with job_worker(test_settings, ("routing.jobs",)):

            async def all_done() -> bool:
                plans = [await _left_solving(db_dsn, p) for p in (refused, lost)]
                jobs = [await _job_finished(db_dsn, j) for j in (refused_job, lost_job)]
                return all(plans + jobs)

            await eventually_async(all_done)

    asyncio.run(main())
    r = _plan(db_dsn, refused)
    assert (r["status"], r["error"]) == ("failed", "cpu_s must be in (0, 600]")
    assert _plan_jobs(db_dsn, refused) == [(refused_job, "done")]
    lo = _plan(db_dsn, lost)
    assert lo["status"] == "failed"
    assert lo["error"] == (
        f"internal error after {PLAN_MAX_ATTEMPTS} attempts: lease lost on every attempt"
    )
    assert _plan_jobs(db_dsn, lost) == [(lost_job, "failed")]


def test_a_cancelled_solve_leaves_no_solver_process() -> None:
    """A job's timeout or the worker's shutdown cancels the handler: its solver process is
    killed, not left burning a core."""
    points = {"depot": (2.35, 48.85)}
    visits = []
    for i in range(40):
        points[f"v{i}"] = (2.2 + (i % 8) * 0.03, 48.8 + (i // 8) * 0.03)
        visits.append(Visit(f"v{i}", f"v{i}"))
    reps = [Rep(f"r{k}", "depot", "depot", TimeWindow(0, 86_400)) for k in range(4)]
    problem = Problem(
        tuple(Location(k, x, y) for k, (x, y) in points.items()), tuple(visits), tuple(reps)
    )

    # the session's app server may be solving plans of other tests in this process
    before = set(multiprocessing.active_children())

    async def started() -> bool:
        return bool(set(multiprocessing.active_children()) - before)

    async def main() -> None:
        solve = asyncio.create_task(solve_in_process(problem, 600.0))
        await eventually_async(started, what="the solver process started")
        solve.cancel()
        with pytest.raises(asyncio.CancelledError):
            await solve

    asyncio.run(main())
    assert set(multiprocessing.active_children()) - before == set()
