"""The rep's day from the database: the newest ready plan that routes the rep on that day,
the rep's open work orders, what geofences recorded (visits) and what the rep recorded at
each stop (phone_stop_work). Reads routing's, crm's and geo's tables; writes only phone's."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from phone.day import Assigned, DayStop, PlannedStop, merge_day, work_order_type

OPEN = ("new", "assigned", "scheduled", "in_progress")


async def _rows(conn: AsyncConnection[Any], q: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    cur = await conn.execute(q, args)
    return list(await cur.fetchall())


async def rep_today(conn: AsyncConnection[Any], user_id: int, now: datetime) -> date:
    """The rep's calendar day at `now`, in their zone (users.timezone; UTC when unknown):
    plans are made for the rep's local day, so late in the UTC evening a rep in Los Angeles
    is still on today's plan and early in the morning a rep in Sydney is already on the next."""
    rows = await _rows(conn, "SELECT timezone FROM users WHERE id = %s", (user_id,))
    try:
        zone = ZoneInfo(rows[0][0]) if rows and rows[0][0] else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return now.astimezone(zone).date()


async def newest_plan(conn: AsyncConnection[Any], user_id: int, day: date) -> int | None:
    rows = await _rows(
        conn,
        "SELECT p.id FROM routing_plans p WHERE p.plan_date = %s AND p.status = 'ready'"
        " AND EXISTS (SELECT 1 FROM routing_stops s WHERE s.plan_id = p.id AND s.rep_id = %s)"
        " ORDER BY p.created_at DESC, p.id DESC LIMIT 1",
        (day, user_id),
    )
    return int(rows[0][0]) if rows else None


async def load_day(
    conn: AsyncConnection[Any], user_id: int, day: date
) -> tuple[int | None, list[DayStop]]:
    plan_id = await newest_plan(conn, user_id, day)
    planned = []
    if plan_id is not None:
        planned = [
            PlannedStop(*r)
            for r in await _rows(
                conn,
                "SELECT visit_key, seq, account_id, work_order_id, eta, service_end"
                " FROM routing_stops WHERE plan_id = %s AND rep_id = %s ORDER BY seq",
                (plan_id, user_id),
            )
        ]
    assigned = [
        Assigned(*r)
        for r in await _rows(
            conn,
            "SELECT id, account_id, scheduled_start, sla_due_at FROM work_orders"
            " WHERE assignee_id = %s AND status = ANY(%s)",
            (user_id, list(OPEN)),
        )
    ]
    stops = merge_day(planned, assigned)
    await _details(conn, user_id, day, stops)
    return plan_id, stops


async def _details(
    conn: AsyncConnection[Any], user_id: int, day: date, stops: list[DayStop]
) -> None:
    accounts = {
        r[0]: r
        for r in await _rows(
            conn,
            "SELECT id, name, address, st_x(location::geometry), st_y(location::geometry)"
            " FROM accounts WHERE id = ANY(%s)",
            ([s.account_id for s in stops],),
        )
    }
    wos = {
        r[0]: r
        for r in await _rows(
            conn,
            "SELECT id, title, priority, status, source, custom, description, estimated_duration_min"
            " FROM work_orders WHERE id = ANY(%s)",
            ([s.work_order_id for s in stops if s.work_order_id is not None],),
        )
    }
    checklists = {
        r[0]: list(r[1])
        for r in await _rows(conn, "SELECT wo_type, items FROM phone_checklists", ())
    }
    auto = {
        r[0]: (r[1], r[2])
        for r in await _rows(
            conn,
            "SELECT account_id, min(checked_in_at), max(departed_at) FROM visits"
            " WHERE rep_id = %s AND (arrived_at >= %s::date AND arrived_at < %s::date + 1"
            " OR status = 'open') GROUP BY account_id",
            (user_id, day, day),
        )
    }
    work = {
        r[0]: r
        for r in await _rows(
            conn,
            "SELECT stop_key, checkin_at, checkout_at, checklist, parts, completed"
            " FROM phone_stop_work WHERE user_id = %s AND day = %s",
            (user_id, day),
        )
    }
    for s in stops:
        a = accounts.get(s.account_id)
        w = wos.get(s.work_order_id) if s.work_order_id is not None else None
        wo_type = work_order_type(w[4], w[5]) if w else "visit"
        done = work.get(s.key)
        ticks: dict[str, Any] = done[3] if done else {}
        items = checklists.get(wo_type, checklists.get("inspection", [])) if w else []
        auto_in, auto_out = auto.get(s.account_id, (None, None))
        s.extra = {
            "account": {
                "id": s.account_id,
                "name": a[1] if a else f"account {s.account_id}",
                "address": a[2] if a else None,
                "lon": a[3] if a else None,
                "lat": a[4] if a else None,
            },
            "work_order": None
            if w is None
            else {
                "id": w[0],
                "title": w[1],
                "priority": w[2],
                "status": w[3],
                "type": wo_type,
                "description": w[6],
                "estimated_duration_min": w[7],
            },
            "checklist": [{"item": i, "done": bool(ticks.get(i))} for i in items],
            "parts": done[4] if done else [],
            "completed": bool(done[5]) if done else False,
            "checkin_at": (done[1] if done and done[1] else None) or auto_in,
            "checkout_at": (done[2] if done and done[2] else None) or auto_out,
            "checkin_source": "manual" if done and done[1] else ("geofence" if auto_in else None),
        }


async def record(
    conn: AsyncConnection[Any],
    user_id: int,
    day: date,
    stop: DayStop,
    *,
    checkin_at: datetime | None = None,
    checkout_at: datetime | None = None,
    checklist: dict[str, bool] | None = None,
    parts: list[dict[str, Any]] | None = None,
    completed: bool | None = None,
) -> None:
    """Upsert what the rep recorded: the first check-in and the last check-out win (a
    replayed offline action changes nothing), checklist ticks merge, parts replace."""
    await conn.execute(
        """
        INSERT INTO phone_stop_work (user_id, day, stop_key, account_id, work_order_id,
            checkin_at, checkout_at, checklist, parts, completed)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, false))
        ON CONFLICT (user_id, day, stop_key) DO UPDATE SET
            checkin_at = coalesce(phone_stop_work.checkin_at, EXCLUDED.checkin_at),
            checkout_at = greatest(phone_stop_work.checkout_at, EXCLUDED.checkout_at),
            checklist = phone_stop_work.checklist || EXCLUDED.checklist,
            parts = CASE WHEN %s THEN EXCLUDED.parts ELSE phone_stop_work.parts END,
            completed = coalesce(%s, phone_stop_work.completed),
            updated_at = now()
        """,
        (
            user_id,
            day,
            stop.key,
            stop.account_id,
            stop.work_order_id,
            checkin_at,
            checkout_at,
            Jsonb(checklist or {}),
            Jsonb(parts or []),
            completed,
            parts is not None,
            completed,
        ),
    )
