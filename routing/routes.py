"""HTTP API for plans.

    POST  /api/v1/routing/plans                          plan a territory's day (202, solved in the background)
    GET   /api/v1/routing/plans/{id}                     the plan: status, routes with stops, dropped visits
    PATCH /api/v1/routing/plans/{id}/stops/{visit_key}   lock / accept a stop
    GET   /api/v1/routing/plans/{id}/geojson             GeoJSON (optional ?rep_id=)
    GET   /api/v1/routing/plans/{id}/reps/{rep_id}.ics   the rep's day as iCalendar

Solving runs in a worker process (never on the event loop) with a CPU-time limit; the
plan row says `solving` until the result is stored.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any

from aiohttp import web

from identity.auth import current_user
from kernel.errors import ApiError, NotFound, Unprocessable
from kernel.principal import Forbidden
from routing import store
from routing.crm_source import PlanRequest
from routing.geojson import plan_to_geojson
from routing.ical import rep_calendar
from routing.model import InputError, Plan, Problem, RoutingError
from routing.planner import plan as plan_problem
from routing.replan import Replan, replan
from routing.solver import SolverOptions

log = logging.getLogger(__name__)


def _pool(app: web.Application) -> Any:
    from kernel.web import DB_POOL

    return app[DB_POOL]


EXECUTOR = web.AppKey("routing_executor", ProcessPoolExecutor)
TASKS = web.AppKey("routing_tasks", set[asyncio.Task[None]])


def solve_in_worker(problem: Problem, cpu_s: float) -> Plan:
    """Runs in the worker process (picklable arguments and result)."""
    return plan_problem(problem, None, SolverOptions(cpu_s=cpu_s))


def replan_in_worker(
    problem: Problem,
    current: Plan,
    now_s: float,
    done: list[str],
    in_progress: dict[str, str],
    cpu_s: float,
) -> Replan:
    return replan(problem, current, now_s, done, in_progress, None, SolverOptions(cpu_s=cpu_s))


def _parse_request(body: Any) -> PlanRequest:
    if not isinstance(body, dict):
        raise Unprocessable("the body must be a JSON object")
    try:
        tid = body.get("territory_id")
        tids = body.get("territory_ids") or ([tid] if tid is not None else [])
        if not tids or not all(isinstance(t, int) for t in tids):
            raise Unprocessable("territory_id (an integer) is required", field="territory_id")
        raw_date = body.get("date")
        if not isinstance(raw_date, str):
            raise Unprocessable("date (YYYY-MM-DD) is required", field="date")
        try:
            day = date.fromisoformat(raw_date)
        except ValueError:
            raise Unprocessable(f"date {raw_date!r} is not YYYY-MM-DD", field="date") from None
        lunch = body.get("lunch", {}) or {}
        now_raw = body.get("now")
        return PlanRequest(
            territory_ids=tuple(tids),
            plan_date=day,
            cpu_s=float(body.get("cpu_s", 5.0)),
            minimise_reps=bool(body.get("minimise_reps", False)),
            account_visit_min=float(body.get("account_visit_min", 30)),
            lunch_start=time.fromisoformat(lunch["start"]) if "start" in lunch else time(11, 30),
            lunch_end=time.fromisoformat(lunch["end"]) if "end" in lunch else time(14, 0),
            lunch_min=float(lunch.get("duration_min", 30)),
            max_working_h=float(body["max_working_h"])
            if body.get("max_working_h") is not None
            else None,
            include_due_accounts=bool(body.get("include_due_accounts", True)),
            now=datetime.fromisoformat(now_raw) if isinstance(now_raw, str) else None,
        )
    except InputError as exc:
        raise Unprocessable(str(exc), field=exc.field_name) from None
    except (TypeError, ValueError) as exc:
        raise Unprocessable(f"bad planning request: {exc}") from None


async def _solve_and_store(app: web.Application, plan_id: int, req: PlanRequest) -> None:
    pool = _pool(app)
    try:
        async with pool.connection() as conn:
            locked = await store.locked_stops(conn, list(req.territory_ids), req.plan_date)
            problem = await store.load_problem(conn, req, locked)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(app[EXECUTOR], solve_in_worker, problem, req.cpu_s)
        async with pool.connection() as conn:
            await store.save_result(conn, plan_id, problem, result)
    except (RoutingError, ValueError) as exc:
        log.warning("routing plan %s failed: %s", plan_id, exc)
        async with pool.connection() as conn:
            await store.save_failure(conn, plan_id, str(exc))
    except Exception as exc:
        log.exception("routing plan %s failed", plan_id)
        async with pool.connection() as conn:
            await store.save_failure(conn, plan_id, f"internal error: {type(exc).__name__}")


async def create_plan(request: web.Request) -> web.Response:
    principal = await current_user(request)
    if principal.role not in ("admin", "manager"):
        raise Forbidden("planning needs the manager or admin role")
    req = _parse_request(await request.json())
    if principal.role == "manager":
        outside = [t for t in req.territory_ids if t not in principal.team_territory_ids]
        if outside:
            raise Forbidden(f"territory {outside[0]} is not in your team's territories")
    async with _pool(request.app).connection() as conn:
        plan_id = await store.create_plan(conn, req, principal.user_id)
    task = asyncio.create_task(_solve_and_store(request.app, plan_id, req))
    request.app[TASKS].add(task)
    task.add_done_callback(request.app[TASKS].discard)
    return web.json_response(
        {"id": plan_id, "status": "solving", "href": f"/api/v1/routing/plans/{plan_id}"}, status=202
    )


def _plan_id(request: web.Request) -> int:
    raw = request.match_info["plan_id"]
    if not raw.isdigit():
        raise NotFound(f"plan {raw} not found")
    return int(raw)


async def _visible_row(request: web.Request) -> dict[str, Any]:
    principal = await current_user(request)
    plan_id = _plan_id(request)
    async with _pool(request.app).connection() as conn:
        row = await store.get_plan_row(conn, plan_id)
    if row is None or not principal.may_see(row["created_by"], row["territory_id"]):
        raise NotFound(f"plan {plan_id} not found")
    return row


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


async def get_plan(request: web.Request) -> web.Response:
    row = await _visible_row(request)
    async with _pool(request.app).connection() as conn:
        stops = await store.get_stops(conn, row["id"])
        dropped = await store.get_dropped(conn, row["id"])
    routes: dict[str, dict[str, Any]] = {}
    result = store.decode_plan(row["result"]) if row["result"] is not None else None
    if result is not None:
        for r in result.routes:
            routes[r.rep_id] = {
                "rep_id": r.rep_id,
                "distance_m": round(r.distance_m, 1),
                "travel_s": round(r.travel_s, 1),
                "lunch_break": None
                if r.lunch_break is None
                else {"start_s": r.lunch_break.start_s, "end_s": r.lunch_break.end_s},
                "stops": [],
            }
    for s in stops:
        key = str(s["rep_id"])
        routes.setdefault(key, {"rep_id": key, "stops": []})["stops"].append(
            {k: _iso(v) for k, v in s.items()}
        )
    return web.json_response(
        {
            "id": row["id"],
            "territory_id": row["territory_id"],
            "date": row["plan_date"].isoformat(),
            "status": row["status"],
            "error": row["error"],
            "cpu_s": row["cpu_s"],
            "routes": list(routes.values()),
            "dropped": dropped,
            "issues": []
            if result is None
            else [
                {
                    "reason": i.reason,
                    "message": i.message,
                    "visit_id": i.visit_id,
                    "rep_id": i.rep_id,
                }
                for i in result.issues
            ],
        }
    )


async def patch_stop(request: web.Request) -> web.Response:
    principal = await current_user(request)
    principal.require_write()
    row = await _visible_row(request)
    body = await request.json()
    if not isinstance(body, dict) or not ({"locked", "accepted"} & body.keys()):
        raise Unprocessable("give locked and/or accepted (booleans)")
    for k in ("locked", "accepted"):
        if k in body and not isinstance(body[k], bool):
            raise Unprocessable(f"{k} must be a boolean", field=k)
    key = request.match_info["visit_key"]
    async with _pool(request.app).connection() as conn:
        stop = await store.update_stop(
            conn,
            row["id"],
            key,
            body.get("locked"),
            body.get("accepted"),
            only_rep_id=principal.user_id if principal.role == "rep" else None,
        )
    if stop is None:
        raise NotFound(
            f"stop {key} is not in plan {row['id']}"
            + (" for you" if principal.role == "rep" else "")
        )
    return web.json_response({k: _iso(v) for k, v in stop.items()})


def _ready(row: dict[str, Any]) -> tuple[Problem, Plan]:
    if row["status"] != "ready":
        raise ApiError(f"plan {row['id']} is {row['status']}", code="not_ready", status=409)
    return store.decode_problem(row["problem"]), store.decode_plan(row["result"])


async def get_geojson(request: web.Request) -> web.Response:
    problem, result = _ready(await _visible_row(request))
    rep = request.query.get("rep_id")
    return web.json_response(
        plan_to_geojson(problem, result, rep), content_type="application/geo+json"
    )


async def get_ics(request: web.Request) -> web.Response:
    row = await _visible_row(request)
    problem, result = _ready(row)
    rep = request.match_info["rep_id"]
    if rep not in {r.rep_id for r in result.routes}:
        raise NotFound(f"rep {rep} has no route in plan {row['id']}")
    text = rep_calendar(problem, result, rep, f"plan{row['id']}")
    return web.Response(text=text, content_type="text/calendar", charset="utf-8")


async def replan_plan(request: web.Request) -> web.Response:
    """Re-plan the rest of the day from a plan: done and in-progress visits stay fixed,
    new work orders (e.g. an urgent one) are fitted in; answers the changes per rep."""
    principal = await current_user(request)
    if principal.role not in ("admin", "manager"):
        raise Forbidden("re-planning needs the manager or admin role")
    row = await _visible_row(request)
    old_problem, current = _ready(row)
    body = await request.json()
    if not isinstance(body, dict):
        raise Unprocessable("the body must be a JSON object")
    try:
        now = datetime.fromisoformat(body["now"]) if body.get("now") else datetime.now(UTC)
    except (TypeError, ValueError):
        raise Unprocessable("now must be an ISO-8601 time", field="now") from None
    done = body.get("done", [])
    in_progress = body.get("in_progress", {})
    if not isinstance(done, list) or not all(isinstance(x, str) for x in done):
        raise Unprocessable("done must be a list of visit keys", field="done")
    if not isinstance(in_progress, dict) or not all(
        isinstance(v, str) for v in in_progress.values()
    ):
        raise Unprocessable("in_progress must map rep ids to visit keys", field="in_progress")
    old = row["request"]
    lunch = (
        {}
        if old.get("lunch_start") is None
        else {
            "start": old["lunch_start"],
            "end": old["lunch_end"],
            "duration_min": old["lunch_min"],
        }
    )
    req = _parse_request(
        {
            "territory_ids": old["territory_ids"],
            "date": row["plan_date"].isoformat(),
            "cpu_s": body.get("cpu_s", 2.0),
            "minimise_reps": old.get("minimise_reps", False),
            "account_visit_min": old.get("account_visit_min", 30),
            "max_working_h": old.get("max_working_h"),
            "include_due_accounts": old.get("include_due_accounts", True),
            "lunch": lunch,
        }
    )
    async with _pool(request.app).connection() as conn:
        locked = await store.locked_stops(conn, list(req.territory_ids), req.plan_date)
        fresh = await store.load_problem(conn, req, locked)
        # Visits done or under way have left the open lists: take them from the old plan.
        keep = set(done) | set(in_progress.values())
        have = {v.id for v in fresh.visits}
        back = [v for v in old_problem.visits if v.id in keep and v.id not in have]
        locs = {loc.id: loc for loc in (*fresh.locations, *old_problem.locations)}
        problem = replace(fresh, visits=(*fresh.visits, *back), locations=tuple(locs.values()))
        new_id = await store.create_plan(conn, req, principal.user_id)
    now_s = (now.astimezone(UTC) - problem.epoch).total_seconds()
    loop = asyncio.get_running_loop()
    try:
        result = await loop.run_in_executor(
            request.app[EXECUTOR],
            replan_in_worker,
            problem,
            current,
            now_s,
            list(done),
            dict(in_progress),
            req.cpu_s,
        )
    except InputError as exc:
        async with _pool(request.app).connection() as conn:
            await store.save_failure(conn, new_id, str(exc))
        raise Unprocessable(str(exc), field=exc.field_name) from None
    async with _pool(request.app).connection() as conn:
        await store.save_result(conn, new_id, problem, result.plan)
    return web.json_response(
        {
            "id": new_id,
            "replanned_from": row["id"],
            "changes": [
                {
                    "rep_id": c.rep_id,
                    "changed": c.changed,
                    "before": c.before,
                    "after": c.after,
                    "added": c.added,
                    "removed": c.removed,
                }
                for c in result.changes
            ],
            "fixed": dict(result.fixed),
            "dropped": [
                {"visit_key": d.visit_id, "reason": d.reason, "message": d.message}
                for d in result.plan.dropped
            ],
        }
    )


async def _executor_ctx(app: web.Application) -> AsyncIterator[None]:
    # Spawned workers: no forked copy of the event loop, the pool or the broker client.
    executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    app[EXECUTOR] = executor
    app[TASKS] = set()
    yield
    tasks: set[asyncio.Task[None]] = app[TASKS]
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    executor.shutdown(wait=False, cancel_futures=True)


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_executor_ctx)
    app.router.add_post("/api/v1/routing/plans", create_plan)
    app.router.add_get("/api/v1/routing/plans/{plan_id}", get_plan)
    app.router.add_patch("/api/v1/routing/plans/{plan_id}/stops/{visit_key}", patch_stop)
    app.router.add_get("/api/v1/routing/plans/{plan_id}/geojson", get_geojson)
    app.router.add_post("/api/v1/routing/plans/{plan_id}/replan", replan_plan)
    app.router.add_get("/api/v1/routing/plans/{plan_id}/reps/{rep_id}.ics", get_ics)
