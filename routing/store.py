"""The database adapter: read planning inputs from the CRM tables, store plans.

Reads `users` (reps), `accounts` (visits due) and `work_orders` (open ones) as written by
the crm package; writes `routing_plans`, `routing_stops`, `routing_dropped`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from routing.crm_source import PlanRequest, build_problem
from routing.model import Plan, Problem

Row = dict[str, Any]

_REPS_SQL = """
SELECT u.id, u.name, u.skills, u.shift_start, u.shift_end, u.timezone,
       CASE WHEN u.home_location IS NULL THEN NULL
            ELSE ARRAY[ST_X(u.home_location::geometry), ST_Y(u.home_location::geometry)] END AS home
FROM users u
WHERE u.role = 'rep' AND u.active AND u.territory_id = ANY(%(territories)s)
ORDER BY u.id
"""

_DUE_ACCOUNTS_SQL = """
SELECT a.id, a.name,
       CASE WHEN a.location IS NULL THEN NULL
            ELSE ARRAY[ST_X(a.location::geometry), ST_Y(a.location::geometry)] END AS location
FROM accounts a
WHERE a.territory_id = ANY(%(territories)s)
  AND a.visit_frequency_days IS NOT NULL
  AND (a.last_visit_at IS NULL
       OR a.last_visit_at + make_interval(days => a.visit_frequency_days) < %(day_end)s)
  AND NOT EXISTS (SELECT 1 FROM work_orders w
                  WHERE w.account_id = a.id AND w.status IN ('new', 'assigned', 'scheduled', 'in_progress'))
ORDER BY a.id
"""

_WORK_ORDERS_SQL = """
SELECT w.id, w.account_id, a.name AS account_name, w.title, w.priority, w.sla_due_at,
       w.required_skills, w.estimated_duration_min, w.earliest_start, w.latest_end, w.time_windows,
       CASE WHEN a.location IS NULL THEN NULL
            ELSE ARRAY[ST_X(a.location::geometry), ST_Y(a.location::geometry)] END AS location
FROM work_orders w JOIN accounts a ON a.id = w.account_id
WHERE coalesce(w.territory_id, a.territory_id) = ANY(%(territories)s)
  AND w.status IN ('new', 'assigned', 'scheduled')
  AND (w.earliest_start IS NULL OR w.earliest_start < %(day_end)s)
ORDER BY w.id
"""


async def load_problem(
    conn: AsyncConnection[Any], req: PlanRequest, locked: Mapping[str, str] | None = None
) -> Problem:
    params = {"territories": list(req.territory_ids), "day_end": req.epoch + timedelta(days=1)}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_REPS_SQL, params)
        reps = await cur.fetchall()
        accounts: list[Row] = []
        if req.include_due_accounts:
            await cur.execute(_DUE_ACCOUNTS_SQL, params)
            accounts = await cur.fetchall()
        await cur.execute(_WORK_ORDERS_SQL, params)
        orders = await cur.fetchall()
    return build_problem(req, reps, accounts, orders, locked)


def _request_json(req: PlanRequest) -> dict[str, Any]:
    out = asdict(req)
    return msgspec.to_builtins(out)  # type: ignore[no-any-return]


async def create_plan(conn: AsyncConnection[Any], req: PlanRequest, user_id: int | None) -> int:
    async with conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO routing_plans (territory_id, plan_date, request, created_by)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            (req.territory_ids[0], req.plan_date, Jsonb(_request_json(req)), user_id),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def stored_request(row: Row) -> PlanRequest:
    """The request a plan row was made with (InputError or msgspec.ValidationError when it
    no longer decodes)."""
    return msgspec.convert(
        {**row["request"], "plan_date": row["plan_date"].isoformat()}, PlanRequest
    )


async def lock_if_solving(conn: AsyncConnection[Any], plan_id: int) -> bool:
    """Lock the plan row for this transaction; whether it still waits for its result (a
    plan solved or failed by an earlier run of its job is left alone)."""
    cur = await conn.execute(
        "SELECT status FROM routing_plans WHERE id = %s FOR UPDATE", (plan_id,)
    )
    row = await cur.fetchone()
    return row is not None and row[0] == "solving"


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


async def save_result(
    conn: AsyncConnection[Any], plan_id: int, problem: Problem, plan: Plan
) -> None:
    visits = {v.id: v for v in problem.visits}
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(
            "UPDATE routing_plans SET status = 'ready', problem = %s, result = %s, cpu_s = %s,"
            " updated_at = now() WHERE id = %s",
            (
                Jsonb(msgspec.to_builtins(problem)),
                Jsonb(msgspec.to_builtins(plan)),
                plan.stats.get("cpu_s"),
                plan_id,
            ),
        )
        await cur.execute("DELETE FROM routing_stops WHERE plan_id = %s", (plan_id,))
        await cur.execute("DELETE FROM routing_dropped WHERE plan_id = %s", (plan_id,))
        rows = []
        for route in plan.routes:
            for seq, s in enumerate(route.stops, start=1):
                v = visits[s.visit_id]
                rows.append(
                    (
                        plan_id, s.visit_id, _int_or_none(route.rep_id), seq,
                        _int_or_none(v.account_id), _int_or_none(v.work_order_id),
                        problem.at(s.arrival_s), problem.at(s.service_start_s), problem.at(s.service_end_s),
                        s.wait_s, s.slack_s, s.travel_s, s.distance_m, v.rep_id is not None,
                    )
                )  # fmt: skip
        if rows:
            await cur.executemany(
                "INSERT INTO routing_stops (plan_id, visit_key, rep_id, seq, account_id, work_order_id,"
                " eta, service_start, service_end, wait_s, slack_s, travel_s, distance_m, locked)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
        if plan.dropped:
            await cur.executemany(
                "INSERT INTO routing_dropped (plan_id, visit_key, reason, message) VALUES (%s, %s, %s, %s)",
                [(plan_id, d.visit_id, str(d.reason), d.message) for d in plan.dropped],
            )


async def save_failure(conn: AsyncConnection[Any], plan_id: int, error: str) -> None:
    await conn.execute(
        "UPDATE routing_plans SET status = 'failed', error = %s, updated_at = now() WHERE id = %s",
        (error[:2000], plan_id),
    )


async def get_plan_row(conn: AsyncConnection[Any], plan_id: int) -> Row | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, territory_id, plan_date, status, request, problem, result, error, cpu_s,"
            " created_by, created_at, updated_at FROM routing_plans WHERE id = %s",
            (plan_id,),
        )
        return await cur.fetchone()


async def get_stops(conn: AsyncConnection[Any], plan_id: int) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT visit_key, rep_id, seq, account_id, work_order_id, eta, service_start, service_end,"
            " wait_s, slack_s, travel_s, distance_m, locked, accepted_at"
            " FROM routing_stops WHERE plan_id = %s ORDER BY rep_id, seq",
            (plan_id,),
        )
        return await cur.fetchall()


async def get_dropped(conn: AsyncConnection[Any], plan_id: int) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT visit_key, reason, message FROM routing_dropped WHERE plan_id = %s ORDER BY visit_key",
            (plan_id,),
        )
        return await cur.fetchall()


async def update_stop(
    conn: AsyncConnection[Any],
    plan_id: int,
    visit_key: str,
    locked: bool | None,
    accepted: bool | None,
    only_rep_id: int | None = None,
) -> Row | None:
    """Lock/unlock and accept/un-accept a stop; with `only_rep_id`, only that rep's stop."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE routing_stops SET locked = coalesce(%(locked)s::boolean, locked),"
            " accepted_at = CASE WHEN %(accepted)s::boolean IS NULL THEN accepted_at"
            " WHEN %(accepted)s::boolean THEN coalesce(accepted_at, now()) ELSE NULL END"
            " WHERE plan_id = %(plan)s AND visit_key = %(key)s"
            " AND (%(rep)s::bigint IS NULL OR rep_id = %(rep)s::bigint)"
            " RETURNING visit_key, rep_id, seq, locked, accepted_at",
            {
                "locked": locked,
                "accepted": accepted,
                "plan": plan_id,
                "key": visit_key,
                "rep": only_rep_id,
            },
        )
        return await cur.fetchone()


async def locked_stops(
    conn: AsyncConnection[Any], territory_ids: list[int], plan_date: Any
) -> dict[str, str]:
    """Visit key -> rep id for stops locked or accepted in earlier plans of the same day."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT DISTINCT ON (s.visit_key) s.visit_key, s.rep_id FROM routing_stops s"
            " JOIN routing_plans p ON p.id = s.plan_id"
            " WHERE p.territory_id = ANY(%s) AND p.plan_date = %s AND (s.locked OR s.accepted_at IS NOT NULL)"
            " AND s.rep_id IS NOT NULL ORDER BY s.visit_key, p.id DESC",
            (territory_ids, plan_date),
        )
        return {str(k): str(r) for k, r in await cur.fetchall()}


def decode_problem(value: Any) -> Problem:
    return msgspec.convert(value, Problem)


def decode_plan(value: Any) -> Plan:
    return msgspec.convert(value, Plan)


async def unknown_territories(conn: AsyncConnection[Any], territory_ids: list[int]) -> list[int]:
    """The ids among `territory_ids` that name no territory."""
    cur = await conn.execute(
        "SELECT t FROM unnest(%s::bigint[]) AS t WHERE NOT EXISTS"
        " (SELECT 1 FROM territories WHERE id = t) ORDER BY t",
        (territory_ids,),
    )
    return [int(r[0]) for r in await cur.fetchall()]
