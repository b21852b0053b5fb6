"""Reminders of meetings and bookings, delivered through `notify.service.notify_user`.

A reminder row says "tell this user `offset_min` before this meeting (activity) or booking
starts". No fire time is stored: the periodic job `calendars.reminders.fire` (every
`EVERY_S`, on the job system of `fieldmesh run`'s jobs role) joins the reminders with the
events' current start, so a moved meeting is reminded for its new time.

Never twice: the notification's dedupe key is the reminder and the start it is for
(`calendar.reminder:<id>:<start epoch>`); `notify_user` stores one per key and the
reminder's `sent_for_start` is set in the same transaction. Never missed after a restart:
the job does not look for "now" but for every reminder whose time has come and that was
not sent for the current start, going back `CATCHUP_S` (6 h): a worker that was down (or
a queue that was stopped) for less than that sends what it missed, late, saying so, as
long as the event has not ended. Older ones are not sent (a reminder a day late is noise).

By e-mail too: a user with a connected mailbox (engage) also gets the reminder mailed to
their own address, queued with `engage.send.enqueue_email` in the same transaction under
the same key as the notification, so it is never queued twice either.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from psycopg import AsyncConnection

from engage.send import enqueue_email, send_config
from kernel.errors import ApiError, NotFound, Unprocessable
from kernel.http import Access, Reply, Req, Routes
from kernel.jobs import JobContext, Registry, Task
from kernel.settings import Settings
from notify.service import notify_user

log = logging.getLogger(__name__)

TASK = "calendars.reminders.fire"
EVERY_S = 30.0
CATCHUP_S = 6 * 3600
BATCH = 500

_DUE = """
WITH ev AS (
    SELECT r.id, r.user_id, r.offset_min, a.start_at AS ev_start,
           coalesce(a.end_at, a.start_at + interval '30 minutes') AS ev_end,
           a.subject AS title, 'activity' AS kind, a.id AS ref_id
    FROM cal_reminders r JOIN activities a ON a.id = r.activity_id
    WHERE a.start_at IS NOT NULL AND a.status <> 'cancelled'
    UNION ALL
    SELECT r.id, r.user_id, r.offset_min, lower(b.during), upper(b.during), b.title,
           'booking', b.id
    FROM cal_reminders r JOIN cal_bookings b ON b.id = r.booking_id
    WHERE b.status = 'booked'
)
SELECT ev.* FROM ev JOIN cal_reminders r ON r.id = ev.id
WHERE ev.ev_start - make_interval(mins => ev.offset_min) <= %(now)s
  AND ev.ev_start - make_interval(mins => ev.offset_min) > %(now)s - make_interval(secs => %(catchup)s)
  AND ev.ev_end > %(now)s
  AND r.sent_for_start IS DISTINCT FROM ev.ev_start
ORDER BY ev.ev_start LIMIT %(batch)s
FOR UPDATE OF r SKIP LOCKED
"""


async def fire_due(
    conn: AsyncConnection[Any], now: datetime | None = None, settings: Settings | None = None
) -> int:
    """Send every due reminder (in the caller's transaction); how many were sent. With
    `settings`, users with a connected mailbox get it by e-mail as well."""
    now = now or datetime.now(UTC)
    cur = await conn.execute(_DUE, {"now": now, "catchup": CATCHUP_S, "batch": BATCH})
    sent = 0
    for rid, user_id, offset_min, start, _end, title, kind, _ref_id in await cur.fetchall():
        due = start.timestamp() - offset_min * 60
        late_min = int((now.timestamp() - due) // 60)
        when = start.strftime("%Y-%m-%d %H:%M UTC")
        body = f"Starts {when}" + (f" (reminder {late_min} min late)" if late_min >= 2 else "")
        link = f"/console/#/calendar/day/{start.date().isoformat()}"
        label = f"{'Meeting' if kind == 'activity' else 'Booking'}: {title}"
        nid = await notify_user(
            conn,
            user_id=int(user_id),
            kind="calendar.reminder",
            title=label,
            body=body,
            link=link,
            dedupe_key=f"calendar.reminder:{rid}:{int(start.timestamp())}",
        )
        if nid is not None and settings is not None:
            await _mail(conn, settings, int(user_id), label, body, rid, start)
        await conn.execute(
            "UPDATE cal_reminders SET sent_for_start = %s, sent_at = now() WHERE id = %s",
            (start, rid),
        )
        sent += nid is not None
    return sent


async def _mail(
    conn: AsyncConnection[Any],
    settings: Settings,
    user_id: int,
    title: str,
    body: str,
    rid: int,
    start: datetime,
) -> None:
    cur = await conn.execute(
        "SELECT u.email FROM users u WHERE u.id = %s AND EXISTS (SELECT 1 FROM "
        "engage_mailboxes m WHERE m.owner_user_id = u.id AND m.kind = 'user')",
        (user_id,),
    )
    row = await cur.fetchone()
    if row is None or not row[0]:
        return  # no mailbox: the console and push have it
    text = f"Reminder: {title}. {body}."
    try:
        async with conn.transaction():
            await enqueue_email(
                conn,
                idempotency_key=f"calendar.reminder:{rid}:{int(start.timestamp())}",
                config=send_config(settings),
                sender_user_id=user_id,
                to=str(row[0]),
                subject=f"Reminder: {title}",
                html=f"<p>{html.escape(text)}</p>",
                text=text,
            )
    except ApiError as exc:  # an address engage refuses: the notification still went
        log.info("calendar reminder %s not mailed: %s", rid, exc)


async def _fire(ctx: JobContext, args: dict[str, Any]) -> None:
    async with ctx.pool.connection() as conn:
        n = await fire_due(conn, settings=ctx.settings)
    if n:
        log.info("calendar reminders: %d sent", n)


def register(registry: Registry) -> None:
    registry.add(Task(TASK, _fire, timeout_s=120.0))
    registry.every(TASK, EVERY_S)


# --------------------------------------------------------------------------- API

routes = Routes("calendar", "Resources, bookings, meetings, working hours and the slot finder")

Id = Annotated[int, msgspec.Meta(ge=1, le=2**62)]


class CalReminderIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    offset_min: Annotated[int, msgspec.Meta(ge=0, le=40320)]
    activity_id: Id | None = None
    booking_id: Id | None = None


class CalReminderOut(msgspec.Struct, frozen=True):
    id: int
    user_id: int
    activity_id: int | None
    booking_id: int | None
    offset_min: int
    sent_for_start: datetime | None


class CalReminderList(msgspec.Struct, frozen=True):
    items: list[CalReminderOut]


class CalReminderPath(msgspec.Struct, frozen=True):
    id: Id


_COLS = "id, user_id, activity_id, booking_id, offset_min, sent_for_start"


@routes.post(
    "/api/v1/calendar/reminders",
    access=Access.write(
        unscoped="the handler checks the meeting or booking is the caller's to see"
    ),
    summary="Remind me of a meeting or booking, offset_min before it starts",
    status=201,
    errors=(404,),  # a meeting or booking the caller may not see
)
async def add_reminder(req: Req, body: CalReminderIn) -> CalReminderOut:
    p = req.user
    if (body.activity_id is None) == (body.booking_id is None):
        raise Unprocessable("name exactly one of activity_id or booking_id", field="activity_id")
    async with req.connection() as conn:
        if body.activity_id is not None:
            cur = await conn.execute(
                "SELECT owner_id, territory_id FROM activities WHERE id = %s", (body.activity_id,)
            )
            row = await cur.fetchone()
            if row is None or not p.may_see(row[0], row[1]):
                raise NotFound(f"no activity {body.activity_id}", field="activity_id")
        else:
            cur = await conn.execute(
                "SELECT b.user_id, r.territory_id FROM cal_bookings b"
                " JOIN cal_resources r ON r.id = b.resource_id WHERE b.id = %s",
                (body.booking_id,),
            )
            row = await cur.fetchone()
            if row is None or not (
                p.sees_everything
                or row[0] == p.user_id
                or row[1] in p.team_territory_ids
                or row[1] is None
            ):
                raise NotFound(f"no booking {body.booking_id}", field="booking_id")
        cur = await conn.execute(
            "INSERT INTO cal_reminders (user_id, activity_id, booking_id, offset_min)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (user_id, activity_id, booking_id, offset_min)"
            f" DO UPDATE SET offset_min = EXCLUDED.offset_min RETURNING {_COLS}",
            (p.user_id, body.activity_id, body.booking_id, body.offset_min),
        )
        out = await cur.fetchone()
    assert out is not None
    return CalReminderOut(*out)


@routes.get(
    "/api/v1/calendar/reminders",
    access=Access.read(unscoped="the caller's own reminders"),
    summary="My reminders",
)
async def my_reminders(req: Req) -> CalReminderList:
    async with req.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_COLS} FROM cal_reminders WHERE user_id = %s ORDER BY id DESC LIMIT 500",
            (req.user.user_id,),
        )
        rows = await cur.fetchall()
    return CalReminderList([CalReminderOut(*r) for r in rows])


@routes.delete(
    "/api/v1/calendar/reminders/{id}",
    access=Access.write(unscoped="the caller's own reminders"),
    summary="Delete one of my reminders",
    status=204,
)
async def delete_reminder(req: Req, path: CalReminderPath) -> Reply[None]:
    async with req.connection() as conn:
        cur = await conn.execute(
            "DELETE FROM cal_reminders WHERE id = %s AND user_id = %s", (path.id, req.user.user_id)
        )
        if cur.rowcount == 0:
            raise NotFound(f"no reminder {path.id}", field="id")
    return Reply(None, status=204)
