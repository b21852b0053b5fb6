"""HTTP API for plans.

    POST  /api/v1/routing/plans                          plan a territory's day (202, solved by a job)
    GET   /api/v1/routing/plans/{id}                     the plan: status, routes with stops, dropped visits
    PATCH /api/v1/routing/plans/{id}/stops/{visit_key}   lock / accept a stop
    GET   /api/v1/routing/plans/{id}/geojson             GeoJSON (optional ?rep_id=)
    POST  /api/v1/routing/plans/{id}/replan              re-plan the rest of the day
    GET   /api/v1/routing/plans/{id}/reps/{rep_id}.ics   the rep's day as iCalendar

Who sees and changes what is stated in routing.access: a rep sees only the plans that
route them, and only their own route in them; managers see their team's territories'
plans. A new plan is solved by the `routing.plan` job (routing.jobs) in the `jobs` role,
enqueued with the plan row; the row says `solving` until the result or the failure is
stored. A re-plan answers in its own request, solved in this API worker's spawned solver
process (never on the event loop) with a CPU-time limit of at most 10 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import msgspec
from aiohttp import web

from kernel.errors import ApiError, NotFound, Unprocessable
from kernel.http import Access, Req, Routes, encode_json
from routing import store
from routing.access import (
    may_see_rep,
    only_rep,
    plan_row,
    plan_scope,
    plan_territories,
    require_territories,
)
from routing.crm_source import PlanRequest
from routing.geojson import plan_to_geojson
from routing.ical import rep_calendar
from routing.jobs import enqueue_plan
from routing.model import InputError, Plan, Problem
from routing.schemas import (
    PlanCreate,
    PlanCreated,
    PlanDropped,
    PlanGeoJson,
    PlanGeoJsonQuery,
    PlanIssue,
    PlanLunchSlot,
    PlanOut,
    PlanPath,
    PlanRepPath,
    PlanRoute,
    PlanStop,
    PlanStopPatch,
    PlanStopPatched,
    PlanStopPath,
    Replan,
    ReplanChange,
    ReplanOut,
)
from routing.worker import replan_in_worker, spawn_pool

routes = Routes("routing", "Planning reps' days: plans, stops, re-plans, GeoJSON, iCalendar")

EXECUTOR = web.AppKey("routing_executor", ProcessPoolExecutor)  # re-plans

# The planning day and its neighbours must be representable (the solver works from
# midnight UTC of the day and looks a day beyond it).
_FIRST_DAY = date(1971, 1, 1)
_LAST_DAY = date(9000, 12, 31)


def plan_request(body: PlanCreate) -> PlanRequest:
    """The planner's request from a decoded body (what types cannot say is checked here)."""
    if body.territory_ids is not None and body.territory_id is not None:
        raise Unprocessable("give territory_id or territory_ids, not both", field="territory_ids")
    tids = body.territory_ids or ([body.territory_id] if body.territory_id is not None else [])
    if not tids:
        raise Unprocessable("territory_id (an integer) is required", field="territory_id")
    if not _FIRST_DAY <= body.date <= _LAST_DAY:
        raise Unprocessable(f"date must be between {_FIRST_DAY} and {_LAST_DAY}", field="date")
    lunch = body.lunch
    if lunch is not None and lunch.start_time >= lunch.end_time:
        raise Unprocessable("lunch.end must be after lunch.start", field="lunch.end")
    try:
        return PlanRequest(
            territory_ids=tuple(dict.fromkeys(tids)),
            plan_date=body.date,
            cpu_s=body.cpu_s,
            minimise_reps=body.minimise_reps,
            account_visit_min=body.account_visit_min,
            lunch_start=None if lunch is None else lunch.start_time,
            lunch_end=time(14, 0) if lunch is None else lunch.end_time,
            lunch_min=30.0 if lunch is None else lunch.duration_min,
            max_working_h=body.max_working_h,
            include_due_accounts=body.include_due_accounts,
            now=body.now,
        )
    except InputError as exc:
        raise Unprocessable(str(exc), field=exc.field_name) from None


@routes.post(
    "/api/v1/routing/plans",
    access=Access.managers(
        unscoped="every territory planned must be one of the caller's team's (403 otherwise); "
        "admins plan any"
    ),
    summary="Plan a territory's day (solved by a background job)",
    description="Answers 202 with the plan's id; GET the plan until its status leaves "
    "`solving` (`ready`, or `failed` with the reason in `error`). `lunch: null` plans no "
    "lunch break.",
    status=202,
    max_body_bytes=64 * 1024,
)
async def create_plan(req: Req, body: PlanCreate) -> PlanCreated:
    request = plan_request(body)
    principal = req.user
    require_territories(principal, request.territory_ids)
    async with req.connection() as conn:
        unknown = await store.unknown_territories(conn, list(request.territory_ids))
        if unknown:
            field = "territory_ids" if body.territory_ids is not None else "territory_id"
            raise Unprocessable(f"{field}: no territory {unknown[0]}", field=field)
        # one transaction: the plan exists exactly when its job does
        plan_id = await store.create_plan(conn, request, principal.user_id)
        await enqueue_plan(conn, plan_id)
    return PlanCreated(plan_id, "solving", f"/api/v1/routing/plans/{plan_id}")


def _dropped(rows: list[dict[str, Any]]) -> list[PlanDropped]:
    return [msgspec.convert(d, PlanDropped) for d in rows]


@routes.get(
    "/api/v1/routing/plans/{plan_id}",
    access=Access.read(scope=plan_scope),
    summary="The plan: status, routes with stops, dropped visits",
    description="A rep sees only their own route (and no dropped visits).",
)
async def get_plan(req: Req, path: PlanPath) -> PlanOut:
    row = plan_row(req)
    rep = only_rep(req.user)
    async with req.connection() as conn:
        stops = await store.get_stops(conn, row["id"])
        dropped = [] if rep is not None else await store.get_dropped(conn, row["id"])
    result = store.decode_plan(row["result"]) if row["result"] is not None else None
    routes_by_rep: dict[str, dict[str, Any]] = {}
    if result is not None:
        for r in result.routes:
            if rep is None or r.rep_id == rep:
                routes_by_rep[r.rep_id] = {
                    "rep_id": r.rep_id,
                    "distance_m": round(r.distance_m, 1),
                    "travel_s": round(r.travel_s, 1),
                    "lunch_break": None
                    if r.lunch_break is None
                    else PlanLunchSlot(r.lunch_break.start_s, r.lunch_break.end_s),
                    "stops": [],
                }
    for s in stops:
        key = str(s["rep_id"])
        if rep is None or key == rep:
            routes_by_rep.setdefault(key, {"rep_id": key, "stops": []})["stops"].append(
                msgspec.convert(s, PlanStop)
            )
    return PlanOut(
        id=row["id"],
        territory_id=row["territory_id"],
        date=row["plan_date"],
        status=row["status"],
        error=row["error"],
        cpu_s=row["cpu_s"],
        routes=[PlanRoute(**r) for r in routes_by_rep.values()],
        dropped=_dropped(dropped),
        issues=[]
        if result is None
        else [
            PlanIssue(i.reason, i.message, i.visit_id, i.rep_id)
            for i in result.issues
            if rep is None or i.rep_id == rep
        ],
    )


@routes.patch(
    "/api/v1/routing/plans/{plan_id}/stops/{visit_key}",
    access=Access.write(scope=plan_scope),
    summary="Lock and/or accept a stop",
    description="A rep changes only their own stops (another's answers 404); a manager any "
    "stop of a plan they see.",
    max_body_bytes=4 * 1024,
)
async def patch_stop(req: Req, path: PlanStopPath, body: PlanStopPatch) -> PlanStopPatched:
    if body.locked is None and body.accepted is None:
        raise Unprocessable("give locked and/or accepted (booleans)", field="locked")
    principal = req.user
    async with req.connection() as conn:
        stop = await store.update_stop(
            conn,
            path.plan_id,
            path.visit_key,
            body.locked,
            body.accepted,
            only_rep_id=principal.user_id if principal.role == "rep" else None,
        )
    if stop is None:
        raise NotFound(f"stop {path.visit_key} is not in plan {path.plan_id}", field="visit_key")
    return msgspec.convert(stop, PlanStopPatched)


def _ready(row: dict[str, Any]) -> tuple[Problem, Plan]:
    if row["status"] != "ready":
        raise ApiError(f"plan {row['id']} is {row['status']}", code="not_ready", status=409)
    if (
        row["problem"] is None or row["result"] is None
    ):  # a plan row written by hand or by an older version
        raise ApiError(f"plan {row['id']} holds no solution", code="not_ready", status=409)
    return store.decode_problem(row["problem"]), store.decode_plan(row["result"])


@routes.get(
    "/api/v1/routing/plans/{plan_id}/geojson",
    access=Access.read(scope=plan_scope),
    summary="The plan as GeoJSON: a line per route, a point per stop and dropped visit",
    description="`rep_id` keeps one rep's route; a rep always gets only their own.",
    content_type="application/geo+json",
    response=PlanGeoJson,
    errors=(409,),
)
async def get_geojson(req: Req, path: PlanPath, query: PlanGeoJsonQuery) -> web.Response:
    problem, result = _ready(plan_row(req))
    rep = only_rep(req.user)
    wanted = None if query.rep_id is None else str(query.rep_id)
    if rep is not None and wanted not in (None, rep):
        raise NotFound(f"rep {wanted} has no route you may see", field="rep_id")
    return web.Response(
        body=encode_json(plan_to_geojson(problem, result, rep or wanted)),
        content_type="application/geo+json",
    )


@routes.get(
    "/api/v1/routing/plans/{plan_id}/reps/{rep_id}.ics",
    access=Access.read(scope=plan_scope),
    summary="A rep's day in the plan as iCalendar",
    description="For the rep, their manager, admins and viewers; other reps get 404.",
    content_type="text/calendar",
    errors=(409,),
)
async def get_ics(req: Req, path: PlanRepPath) -> web.Response:
    row = plan_row(req)
    if not may_see_rep(req.user, path.rep_id):
        raise NotFound(f"rep {path.rep_id} has no route in plan {row['id']}", field="rep_id")
    problem, result = _ready(row)
    rep = str(path.rep_id)
    if rep not in {r.rep_id for r in result.routes}:
        raise NotFound(f"rep {rep} has no route in plan {row['id']}", field="rep_id")
    text = rep_calendar(problem, result, rep, f"plan{row['id']}")
    return web.Response(text=text, content_type="text/calendar", charset="utf-8")


def _stored_request(row: dict[str, Any], cpu_s: float) -> PlanRequest:
    """The request a plan was made with, for re-planning its day."""
    return replace(store.stored_request(row), cpu_s=cpu_s, now=None)


@routes.post(
    "/api/v1/routing/plans/{plan_id}/replan",
    access=Access.managers(scope=plan_scope),
    summary="Re-plan the rest of the day from a plan",
    description="Done and in-progress visits stay fixed; new work orders (an urgent one) "
    "are fitted in; answers the changes per rep. Needs a manager of every territory the "
    "plan covers (or an admin).",
    errors=(409,),
    max_body_bytes=1024 * 1024,
)
async def replan_plan(req: Req, path: PlanPath, body: Replan) -> ReplanOut:
    row = plan_row(req)
    principal = req.user
    require_territories(principal, plan_territories(row))
    old_problem, current = _ready(row)
    try:
        request = _stored_request(row, body.cpu_s)
    except (InputError, msgspec.ValidationError) as exc:
        raise ApiError(f"plan {row['id']} cannot be re-planned: {exc}", status=409) from None
    try:
        now_s = ((body.now or datetime.now(UTC)).astimezone(UTC) - request.epoch) / timedelta(
            seconds=1
        )
    except OverflowError:
        raise Unprocessable("now: out of range", field="now") from None
    async with req.connection() as conn:
        locked = await store.locked_stops(conn, list(request.territory_ids), request.plan_date)
        fresh = await store.load_problem(conn, request, locked)
        # Visits done or under way have left the open lists: take them from the old plan.
        keep = set(body.done) | set(body.in_progress.values())
        have = {v.id for v in fresh.visits}
        back = [v for v in old_problem.visits if v.id in keep and v.id not in have]
        locs = {loc.id: loc for loc in (*fresh.locations, *old_problem.locations)}
        problem = replace(fresh, visits=(*fresh.visits, *back), locations=tuple(locs.values()))
        known = {v.id for v in problem.visits}
        for name, keys in (("done", body.done), ("in_progress", body.in_progress.values())):
            unknown = sorted(set(keys) - known)
            if unknown:
                raise Unprocessable(f"{name}: no visit {unknown[0]} in this day", field=name)
        new_id = await store.create_plan(conn, request, principal.user_id)
    loop = asyncio.get_running_loop()
    try:
        result = await loop.run_in_executor(
            req.app[EXECUTOR],
            replan_in_worker,
            problem,
            current,
            now_s,
            list(body.done),
            dict(body.in_progress),
            request.cpu_s,
        )
    except InputError as exc:
        async with req.connection() as conn:
            await store.save_failure(conn, new_id, str(exc))
        raise Unprocessable(str(exc), field=exc.field_name) from None
    async with req.connection() as conn:
        await store.save_result(conn, new_id, problem, result.plan)
    return ReplanOut(
        id=new_id,
        replanned_from=row["id"],
        changes=[
            ReplanChange(
                rep_id=c.rep_id,
                changed=c.changed,
                before=list(c.before),
                after=list(c.after),
                added=list(c.added),
                removed=list(c.removed),
            )
            for c in result.changes
        ],
        fixed={k: list(v) for k, v in result.fixed.items()},
        dropped=[PlanDropped(d.visit_id, str(d.reason), d.message) for d in result.plan.dropped],
    )


async def _executor_ctx(app: web.Application) -> AsyncIterator[None]:
    executor = spawn_pool(max_workers=1)
    app[EXECUTOR] = executor
    yield
    executor.shutdown(wait=False, cancel_futures=True)


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_executor_ctx)
    routes.mount(app)
