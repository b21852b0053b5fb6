"""Urgent alert work orders into the rep's day: re-plan, then send the route to the phone.

The gateway opens an urgent work order (assigned to a rep of the account's territory) in
the telemetry batch's transaction; this dispatcher picks it up from the `work_orders`
table (status `assigned`, source `alert`, priority `urgent`), re-plans the rest of the
territory's day with `routing.replan` (the rep starting from the phone's last GPS fix,
the work order locked to its assignee), stores the new plan, sends each changed rep's
remaining stops to the rep's phone (a `route` command) and marks the work order
`scheduled` with an activity on the account's timeline. Plan, status and activity commit
together after the command is handed to the broker; a work order already `scheduled` is
never dispatched again, so a restarted dispatcher repeats nothing that committed.

Polling the table rather than consuming the `work_order.urgent` webhook keeps the work
order row as the single source of truth: nothing is lost when no subscriber exists.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from routing import store
from routing.crm_source import PlanRequest, work_order_key
from routing.model import Location, Plan, Problem, RoutingError
from routing.replan import Replan, replan
from routing.solver import SolverOptions

log = logging.getLogger(__name__)

RouteSender = Callable[[str, dict[str, Any]], None]  # phone device id, route command args

_PENDING_SQL = """
SELECT w.id, w.assignee_id, coalesce(w.territory_id, a.territory_id) AS territory_id,
       w.account_id
FROM work_orders w JOIN accounts a ON a.id = w.account_id
WHERE w.source = 'alert' AND w.priority = 'urgent' AND w.status = 'assigned'
  AND w.assignee_id IS NOT NULL AND coalesce(w.territory_id, a.territory_id) IS NOT NULL
ORDER BY w.id
"""


@dataclass(frozen=True, slots=True)
class Dispatched:
    """One urgent work order fitted into its rep's day and sent to the phone."""

    work_order_id: int
    account_id: int
    rep_id: int
    device_id: str | None  # the rep's phone, None when the rep has none
    plan_id: int
    before: tuple[str, ...]  # the rep's remaining visits before and after the re-plan
    after: tuple[str, ...]
    service_start: datetime | None  # when the plan has the rep start the work order


async def _current_plan(conn: AsyncConnection[Any], territory_id: int, day: Any) -> Plan:
    cur = await conn.execute(
        "SELECT result FROM routing_plans WHERE territory_id = %s AND plan_date = %s"
        " AND status = 'ready' ORDER BY id DESC LIMIT 1",
        (territory_id, day),
    )
    row = await cur.fetchone()
    return Plan((), ()) if row is None else store.decode_plan(row[0])


async def _phones(conn: AsyncConnection[Any]) -> dict[int, tuple[str, tuple[float, float] | None]]:
    """rep user id -> (phone device id, last GPS fix (lon, lat) if any)."""
    cur = await conn.execute(
        """SELECT m.user_id, m.device_id, f.lon, f.lat FROM geo_device_rep m
           LEFT JOIN LATERAL (SELECT lon, lat FROM gps_fix g WHERE g.device_id = m.device_id
                              ORDER BY g.time DESC LIMIT 1) f ON true"""
    )
    out: dict[int, tuple[str, tuple[float, float] | None]] = {}
    for user_id, device_id, lon, lat in await cur.fetchall():
        out[int(user_id)] = (str(device_id), None if lon is None else (float(lon), float(lat)))
    return out


def _from_where_they_are(problem: Problem, fixes: dict[str, tuple[float, float] | None]) -> Problem:
    """Each rep with a known GPS fix starts the rest of the day there, not at home."""
    locations = list(problem.locations)
    reps = []
    for rep in problem.reps:
        fix = fixes.get(rep.id)
        if fix is None:
            reps.append(rep)
            continue
        loc_id = f"now:{rep.id}"
        locations.append(Location(loc_id, fix[0], fix[1]))
        reps.append(replace(rep, start_location_id=loc_id))
    return replace(problem, locations=tuple(locations), reps=tuple(reps))


def route_args(problem: Problem, plan_id: int, result: Replan, rep_id: str) -> dict[str, Any]:
    """The `route` command's args: the rep's stops not yet started, in order."""
    locs = {loc.id: loc for loc in problem.locations}
    visits = {v.id: v for v in problem.visits}
    fixed = set(result.fixed.get(rep_id, ()))
    route = next((r for r in result.plan.routes if r.rep_id == rep_id), None)
    stops = []
    for s in route.stops if route else ():
        if s.visit_id in fixed:
            continue
        v, loc = visits[s.visit_id], locs[s.location_id]
        stops.append(
            {
                "visit_id": s.visit_id,
                "lon": loc.lon,
                "lat": loc.lat,
                "service_s": v.service_s,
                "title": v.title,
                "site_id": f"account:{v.account_id}" if v.account_id else None,
            }
        )
    return {"plan_id": plan_id, "stops": stops}


async def _rep_today(conn: AsyncConnection[Any], rep_id: int, now: datetime) -> date:
    """The rep's calendar day at `now`: their shift is in their time zone (users.timezone),
    so "today" is their local date, not UTC's (late in the UTC evening a Paris rep is
    already in tomorrow's shift)."""
    cur = await conn.execute("SELECT timezone FROM users WHERE id = %s", (rep_id,))
    row = await cur.fetchone()
    try:
        zone = ZoneInfo(row[0]) if row and row[0] else UTC
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    return now.astimezone(zone).date()


async def dispatch_work_order(
    conn: AsyncConnection[Any],
    work_order_id: int,
    rep_id: int,
    territory_id: int,
    account_id: int,
    *,
    now: datetime,
    send: RouteSender,
    cpu_s: float = 1.0,
) -> Dispatched | None:
    """Re-plan the territory's day around one urgent work order and send the routes.

    Commits on success; None (rolled back) when the plan could not fit the work order.
    """
    req = PlanRequest(
        territory_ids=(territory_id,),
        plan_date=await _rep_today(conn, rep_id, now),
        cpu_s=cpu_s,
        include_due_accounts=False,  # today's remaining day: the open work orders
        lunch_start=None,
        now=now,
    )
    key = work_order_key(work_order_id)
    locked = await store.locked_stops(conn, [territory_id], req.plan_date)
    locked[key] = str(rep_id)  # the assignee chosen by skills and load keeps it
    problem = await store.load_problem(conn, req, locked)
    phones = await _phones(conn)
    problem = _from_where_they_are(problem, {str(u): fix for u, (_d, fix) in phones.items()})
    current = await _current_plan(conn, territory_id, req.plan_date)
    now_s = (now - problem.epoch).total_seconds()
    result = await asyncio.to_thread(
        replan, problem, current, now_s, (), {}, None, SolverOptions(cpu_s=cpu_s)
    )
    route = next((r for r in result.plan.routes if r.rep_id == str(rep_id)), None)
    stop = next((s for s in (route.stops if route else ()) if s.visit_id == key), None)
    if stop is None:
        reason = next((d.message for d in result.plan.dropped if d.visit_id == key), "not planned")
        log.warning("work order %d: the re-plan could not fit it: %s", work_order_id, reason)
        await conn.rollback()
        return None
    plan_id = await store.create_plan(conn, req, None)
    await store.save_result(conn, plan_id, problem, result.plan)
    start = problem.at(stop.service_start_s)
    cur = await conn.execute(
        "UPDATE work_orders SET status = 'scheduled', scheduled_start = %s, scheduled_end = %s,"
        " updated_at = now(), version = version + 1 WHERE id = %s AND status = 'assigned'"
        " RETURNING title",
        (start, problem.at(stop.service_end_s), work_order_id),
    )
    row = await cur.fetchone()
    if row is None:  # checked in (or changed) meanwhile: nothing to schedule any more
        await conn.rollback()
        return None
    device = phones.get(rep_id, (None, None))[0]
    who = await (
        await conn.execute("SELECT coalesce(name, email) FROM users WHERE id = %s", (rep_id,))
    ).fetchone()
    await conn.execute(
        """INSERT INTO activities (type, subject, body, status, due_at, account_id, work_order_id,
                                   owner_id, territory_id, source, source_ref)
           VALUES ('note', %s, %s, 'done', %s, %s, %s, %s, %s, 'crm_sync', %s)
           ON CONFLICT (source, source_ref) WHERE source_ref IS NOT NULL DO NOTHING""",
        (
            f"Work order #{work_order_id} planned: {who[0] if who else 'a rep'} on site at "
            f"{start.strftime('%H:%M')} UTC"[:500],
            f"{row[0]}\nRe-planned in routing plan {plan_id}; route sent to "
            f"{device or 'no phone'}.",
            start,
            account_id,
            work_order_id,
            rep_id,
            territory_id,
            f"work_order:{work_order_id}:plan:{plan_id}",
        ),
    )
    changes = {c.rep_id: c for c in result.changes}
    for user_id, (phone, _fix) in phones.items():
        change = changes.get(str(user_id))
        if change is not None and (change.changed or user_id == rep_id):
            send(phone, route_args(problem, plan_id, result, str(user_id)))
    await conn.commit()
    mine = changes[str(rep_id)]
    return Dispatched(
        work_order_id, account_id, rep_id, device, plan_id, mine.before, mine.after, start
    )


async def dispatch_pending(
    conn: AsyncConnection[Any],
    *,
    now: datetime,
    send: RouteSender,
    cpu_s: float = 1.0,
    skip: set[int] | None = None,
) -> list[Dispatched]:
    """Dispatch every urgent alert work order still only `assigned`; those dispatched.

    Work orders the plan could not fit are added to `skip` (not retried by this caller).
    """
    skip = skip if skip is not None else set()
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_PENDING_SQL)
        pending = [r for r in await cur.fetchall() if int(r["id"]) not in skip]
    await conn.rollback()  # end the read transaction: each dispatch is its own
    out = []
    for w in pending:
        try:
            done = await dispatch_work_order(
                conn,
                int(w["id"]),
                int(w["assignee_id"]),
                int(w["territory_id"]),
                int(w["account_id"]),
                now=now,
                send=send,
                cpu_s=cpu_s,
            )
        except RoutingError as exc:
            log.warning("work order %s: re-plan failed: %s", w["id"], exc)
            await conn.rollback()
            done = None
        if done is None:
            skip.add(int(w["id"]))
        else:
            out.append(done)
    return out


async def _run(
    dsn: str,
    send: RouteSender,
    clock_s: Callable[[], float],
    stop: threading.Event,
    on_dispatch: Callable[[Dispatched], None],
    interval_s: float,
    cpu_s: float,
) -> None:
    skip: set[int] = set()
    async with await AsyncConnection.connect(dsn) as conn:
        while not stop.is_set():
            now = datetime.fromtimestamp(clock_s(), UTC)
            for d in await dispatch_pending(conn, now=now, send=send, cpu_s=cpu_s, skip=skip):
                on_dispatch(d)
            await asyncio.to_thread(stop.wait, interval_s)


def run_dispatcher(
    dsn: str,
    send: RouteSender,
    stop: threading.Event,
    *,
    clock_s: Callable[[], float],
    on_dispatch: Callable[[Dispatched], None] = lambda _d: None,
    interval_s: float = 0.5,
    cpu_s: float = 1.0,
) -> None:
    """Poll and dispatch until `stop` is set (a thread's target). `clock_s` is the time the
    re-plan starts from (epoch seconds; a simulation passes its own clock)."""
    asyncio.run(_run(dsn, send, clock_s, stop, on_dispatch, interval_s, cpu_s))
