"""Busy time of users, from fieldmesh's own data (the slot finder's input).

Sources, each a query below, all clipped to [start, end):
- CRM activities with a start time (meetings, calls, tasks; not cancelled), owned by the
  user; without an end they last `DEFAULT_ACTIVITY_MIN`; located at their account;
- planned stops of the newest ready routing plan per territory and day: the visit itself
  (service start to end, at its account) and the drive into it (`driving`);
- work orders assigned to the user with a scheduled start and end (not done/cancelled);
- resource bookings held for the user (calendars.bookings);
- the occurrences of recurring events synced from external calendars: `_recurring`
  below is THE one place they join (calendars part A, `calendars.recurrence.occurrences`).

Availability is computed here, never taken from a CalDAV server's free-busy report
(Radicale's shifts recurring events by an hour after a DST change).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection

from calendars.recurrence import occurrences
from calendars.slots import Attendee, Busy, Point, WorkDay

DEFAULT_ACTIVITY_MIN = 30

_ACTIVITIES = """
SELECT a.owner_id, a.start_at, coalesce(a.end_at, a.start_at + make_interval(mins => %(dflt)s)),
       a.type, a.subject, a.id, ST_X(acc.location::geometry), ST_Y(acc.location::geometry)
FROM activities a LEFT JOIN accounts acc ON acc.id = a.account_id
WHERE a.owner_id = ANY(%(users)s) AND a.start_at IS NOT NULL AND a.status <> 'cancelled'
  AND a.start_at < %(end)s
  AND coalesce(a.end_at, a.start_at + make_interval(mins => %(dflt)s)) > %(start)s
"""

# The newest ready plan of each territory and day is the one in force (as the console's map).
_STOPS = """
WITH current AS (
    SELECT DISTINCT ON (p.territory_id, p.plan_date) p.id
    FROM routing_plans p
    WHERE p.status = 'ready' AND p.plan_date BETWEEN %(d0)s AND %(d1)s
    ORDER BY p.territory_id, p.plan_date, p.created_at DESC, p.id DESC
)
SELECT s.rep_id, s.service_start, s.service_end, s.eta, s.travel_s, s.visit_key, s.plan_id,
       acc.name, ST_X(acc.location::geometry), ST_Y(acc.location::geometry)
FROM routing_stops s JOIN current c ON c.id = s.plan_id
LEFT JOIN accounts acc ON acc.id = s.account_id
WHERE s.rep_id = ANY(%(users)s) AND s.service_start < %(end)s
  AND s.service_end > %(start)s - make_interval(secs => s.travel_s)
"""

_WORK_ORDERS = """
SELECT w.assignee_id, w.scheduled_start, w.scheduled_end, w.title, w.id,
       ST_X(acc.location::geometry), ST_Y(acc.location::geometry)
FROM work_orders w JOIN accounts acc ON acc.id = w.account_id
WHERE w.assignee_id = ANY(%(users)s) AND w.status NOT IN ('done', 'cancelled')
  AND w.scheduled_start IS NOT NULL AND w.scheduled_end IS NOT NULL
  AND w.scheduled_start < %(end)s AND w.scheduled_end > %(start)s
"""

_BOOKINGS = """
SELECT b.user_id, lower(b.during), upper(b.during), b.title, b.id
FROM cal_bookings b
WHERE b.user_id = ANY(%(users)s) AND b.status = 'booked'
  AND b.during && tstzrange(%(start)s, %(end)s)
"""


def _pt(x: Any, y: Any) -> Point | None:
    return (float(x), float(y)) if x is not None and y is not None else None


async def busy_by_user(
    conn: AsyncConnection[Any], user_ids: list[int], start: datetime, end: datetime
) -> dict[int, list[Busy]]:
    """Every user's busy items overlapping [start, end), unsorted."""
    out: dict[int, list[Busy]] = {u: [] for u in user_ids}
    p = {"users": user_ids, "start": start, "end": end, "dflt": DEFAULT_ACTIVITY_MIN}
    for uid, s, e, typ, subject, aid, x, y in await (await conn.execute(_ACTIVITIES, p)).fetchall():
        kind = "meeting" if typ == "meeting" else str(typ)
        out[uid].append(Busy(s, e, kind, subject, f"activity:{aid}", _pt(x, y)))
    days = {"d0": (start - timedelta(days=1)).date(), "d1": end.date()}
    rows = await (await conn.execute(_STOPS, {**p, **days})).fetchall()
    for uid, s, e, eta, travel_s, key, plan, name, x, y in rows:
        ref = f"stop:{plan}:{key}"
        out[uid].append(Busy(s, e, "visit", f"Visit {name or key}", ref, _pt(x, y)))
        if travel_s and travel_s > 0:
            drive_from = eta - timedelta(seconds=float(travel_s))
            out[uid].append(Busy(drive_from, eta, "driving", f"Drive to {name or key}", ref))
    for uid, s, e, title, wid, x, y in await (await conn.execute(_WORK_ORDERS, p)).fetchall():
        out[uid].append(Busy(s, e, "work_order", title, f"work_order:{wid}", _pt(x, y)))
    for uid, s, e, title, bid in await (await conn.execute(_BOOKINGS, p)).fetchall():
        out[uid].append(Busy(s, e, "booking", title, f"booking:{bid}"))
    for uid, items in (await _recurring(conn, user_ids, start, end)).items():
        out.setdefault(uid, []).extend(items)
    return out


async def _recurring(
    conn: AsyncConnection[Any], user_ids: list[int], start: datetime, end: datetime
) -> dict[int, list[Busy]]:
    """Occurrences of users' recurring events (calendars.recurrence, expanded here in
    fieldmesh, DST-correct): the one place they join busy time. A series' first instance
    is also its CRM activity; the slot finder merges overlapping busy items, so counting
    it twice changes nothing."""
    out: dict[int, list[Busy]] = {}
    for occ in await occurrences(conn, user_ids, start, end):
        out.setdefault(occ.owner_id, []).append(
            Busy(
                occ.start,
                occ.end,
                "event",
                occ.title,
                f"activity:{occ.activity_id}" if occ.activity_id else f"event:{occ.event_id}",
            )
        )
    return out


# --------------------------------------------------------------------------- working hours


def default_week(shift_start: time, shift_end: time) -> tuple[WorkDay, ...]:
    end = time.max if shift_end <= shift_start else shift_end
    return tuple(WorkDay(d, shift_start, end) for d in range(5))


def parse_week(hours: list[dict[str, Any]]) -> tuple[WorkDay, ...]:
    out = []
    for h in hours:
        end = str(h["end"])
        out.append(
            WorkDay(
                int(h["weekday"]),
                time.fromisoformat(str(h["start"])),
                time.max if end == "24:00" else time.fromisoformat(end),
            )
        )
    return tuple(out)


def valid_zone(tz: str) -> bool:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


async def attendees(
    conn: AsyncConnection[Any], user_ids: list[int], start: datetime, end: datetime
) -> list[Attendee]:
    """Users with their working week, zone, home and busy time, in the order given; an
    unknown or inactive user is left out (the caller compares lengths)."""
    cur = await conn.execute(
        """
        SELECT u.id, coalesce(w.tz, u.timezone), w.hours, u.shift_start, u.shift_end,
               ST_X(u.home_location::geometry), ST_Y(u.home_location::geometry)
        FROM users u LEFT JOIN cal_working_hours w ON w.user_id = u.id
        WHERE u.id = ANY(%s) AND u.active
        """,
        (user_ids,),
    )
    rows = {int(r[0]): r for r in await cur.fetchall()}
    busy = await busy_by_user(conn, list(rows), start, end)
    out = []
    for uid in user_ids:
        r = rows.get(uid)
        if r is None:
            continue
        _, tz, hours, s, e, x, y = r
        week = parse_week(hours) if hours is not None else default_week(s, e)
        tz = tz if valid_zone(tz) else "UTC"
        out.append(Attendee(uid, tz, week, tuple(busy.get(uid, ())), _pt(x, y)))
    return out
