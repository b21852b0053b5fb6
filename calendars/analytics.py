"""Calendar analytics: meeting load, time in meetings vs on site vs driving, no-show and
reschedule rates, per user over a window.

- meetings: CRM activities of type `meeting` starting in the window, not cancelled;
  hours from start to end (30 min without an end);
- meeting load: meeting hours over the user's working hours in the window (their zone);
- on site: visits detected by geofences (geo `visits`, their dwell time), and planned on
  site: the service time of the stops of the plans in force (routing);
- driving: the planned travel into those stops (routing `travel_s`);
- no-show rate: meetings marked `no_show` over meetings marked at all
  (`POST /api/v1/calendar/meetings/{id}/attendance`);
- reschedule rate: meetings whose start moved at least once (the CRM audit log records
  every change of `start_at`) over meetings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from psycopg import AsyncConnection

from calendars import busy
from calendars.booking_routes import visible_user_ids
from calendars.slots import working_windows
from kernel.errors import NotFound, Unprocessable
from kernel.http import Access, Req, Routes

routes = Routes("calendar", "Resources, bookings, meetings, working hours and the slot finder")

MAX_WINDOW = timedelta(days=92)
Id = Annotated[int, msgspec.Meta(ge=1, le=2**62)]


class CalAnalyticsQuery(msgspec.Struct, frozen=True):
    start: Annotated[datetime, msgspec.Meta(tz=True)]
    end: Annotated[datetime, msgspec.Meta(tz=True)]
    user_ids: Annotated[list[Id], msgspec.Meta(max_length=200)] = []


class CalUserLoad(msgspec.Struct, frozen=True):
    user_id: int
    meetings: int
    meeting_h: float
    working_h: float
    meeting_load: float | None
    on_site_h: float
    planned_on_site_h: float
    driving_h: float
    marked: int
    no_shows: int
    no_show_rate: float | None
    rescheduled: int
    reschedule_rate: float | None
    cancelled: int


class CalAnalytics(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime
    users: list[CalUserLoad]


_MEETINGS = """
SELECT a.owner_id,
       count(*) FILTER (WHERE a.status <> 'cancelled'),
       coalesce(sum(extract(epoch FROM coalesce(a.end_at, a.start_at + interval '30 minutes')
                              - a.start_at)) FILTER (WHERE a.status <> 'cancelled'), 0) / 3600.0,
       count(*) FILTER (WHERE a.status = 'cancelled'),
       count(att.outcome) FILTER (WHERE a.status <> 'cancelled'),
       count(*) FILTER (WHERE att.outcome = 'no_show' AND a.status <> 'cancelled'),
       count(*) FILTER (WHERE a.status <> 'cancelled' AND EXISTS (
           SELECT 1 FROM audit_log l WHERE l.table_name = 'activities' AND l.record_id = a.id
           AND l.action = 'update' AND l.field = 'start_at'))
FROM activities a LEFT JOIN cal_attendance att ON att.activity_id = a.id
WHERE a.type = 'meeting' AND a.owner_id = ANY(%(users)s)
  AND a.start_at >= %(start)s AND a.start_at < %(end)s
GROUP BY a.owner_id
"""

_VISITS = """
SELECT v.rep_id, coalesce(sum(extract(epoch FROM
           least(coalesce(v.departed_at, now()), %(end)s) - greatest(v.arrived_at, %(start)s))), 0) / 3600.0
FROM visits v
WHERE v.rep_id = ANY(%(users)s) AND v.arrived_at < %(end)s
  AND coalesce(v.departed_at, now()) > %(start)s
GROUP BY v.rep_id
"""

_PLANNED = """
WITH current AS (
    SELECT DISTINCT ON (p.territory_id, p.plan_date) p.id
    FROM routing_plans p
    WHERE p.status = 'ready' AND p.plan_date BETWEEN %(d0)s AND %(d1)s
    ORDER BY p.territory_id, p.plan_date, p.created_at DESC, p.id DESC
)
SELECT s.rep_id, sum(extract(epoch FROM s.service_end - s.service_start)) / 3600.0,
       sum(s.travel_s) / 3600.0
FROM routing_stops s JOIN current c ON c.id = s.plan_id
WHERE s.rep_id = ANY(%(users)s) AND s.service_start >= %(start)s AND s.service_start < %(end)s
GROUP BY s.rep_id
"""


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


async def loads(
    conn: AsyncConnection[Any], user_ids: list[int], start: datetime, end: datetime
) -> list[CalUserLoad]:
    p = {"users": user_ids, "start": start, "end": end, "d0": start.date(), "d1": end.date()}
    meet = {r[0]: r[1:] for r in await (await conn.execute(_MEETINGS, p)).fetchall()}
    visits = {r[0]: float(r[1]) for r in await (await conn.execute(_VISITS, p)).fetchall()}
    planned = {r[0]: r[1:] for r in await (await conn.execute(_PLANNED, p)).fetchall()}
    people = {a.user_id: a for a in await busy.attendees(conn, user_ids, start, start)}
    out = []
    for uid in user_ids:
        n, hours, cancelled, marked, no_shows, moved = meet.get(uid, (0, 0.0, 0, 0, 0, 0))
        a = people.get(uid)
        work_h = (
            sum((e - s).total_seconds() for s, e in working_windows(a.week, a.tz, start, end))
            / 3600
            if a is not None
            else 0.0
        )
        site_h, drive_h = planned.get(uid, (0.0, 0.0))
        out.append(
            CalUserLoad(
                uid,
                int(n),
                round(float(hours), 3),
                round(work_h, 3),
                _rate(float(hours), work_h),
                round(visits.get(uid, 0.0), 3),
                round(float(site_h or 0.0), 3),
                round(float(drive_h or 0.0), 3),
                int(marked),
                int(no_shows),
                _rate(int(no_shows), int(marked)),
                int(moved),
                _rate(int(moved), int(n)),
                int(cancelled),
            )
        )
    return out


@routes.get(
    "/api/v1/calendar/analytics",
    access=Access.read(unscoped="the handler checks every user is one the caller may see"),
    summary="Meeting load, time in meetings / on site / driving, no-show and reschedule rates",
)
async def analytics(req: Req, query: CalAnalyticsQuery) -> CalAnalytics:
    if query.end <= query.start or query.end - query.start > MAX_WINDOW:
        raise Unprocessable("the window must end after it starts, within 92 days", field="end")
    p = req.user
    users = list(dict.fromkeys(query.user_ids or p.team_user_ids))
    async with req.read_connection() as conn:
        await visible_user_ids(conn, p, users)
        out = await loads(conn, users, query.start, query.end)
    return CalAnalytics(query.start, query.end, out)


class CalAttendanceIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    outcome: Literal["attended", "no_show"]


class CalAttendancePath(msgspec.Struct, frozen=True):
    activity_id: Id


class CalAttendanceOut(msgspec.Struct, frozen=True):
    activity_id: int
    outcome: str
    marked_at: datetime


@routes.put(
    "/api/v1/calendar/meetings/{activity_id}/attendance",
    access=Access.write(unscoped="the handler checks the meeting is visible to the caller"),
    summary="Mark a past meeting attended or a no-show",
)
async def mark(req: Req, path: CalAttendancePath, body: CalAttendanceIn) -> CalAttendanceOut:
    p = req.user
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT owner_id, territory_id, start_at, type FROM activities WHERE id = %s",
            (path.activity_id,),
        )
        row = await cur.fetchone()
        if row is None or row[3] != "meeting" or not p.may_see(row[0], row[1]):
            raise NotFound(f"no meeting {path.activity_id}", field="activity_id")
        if row[2] is None or row[2] > datetime.now(UTC):
            raise Unprocessable("only a meeting that has started can be marked", field="outcome")
        cur = await conn.execute(
            "INSERT INTO cal_attendance (activity_id, outcome, marked_by) VALUES (%s, %s, %s)"
            " ON CONFLICT (activity_id) DO UPDATE SET outcome = EXCLUDED.outcome,"
            " marked_by = EXCLUDED.marked_by, marked_at = now() RETURNING marked_at",
            (path.activity_id, body.outcome, p.user_id),
        )
        out = await cur.fetchone()
    assert out is not None
    return CalAttendanceOut(path.activity_id, body.outcome, out[0])
