"""Meetings: a CRM activity with a time, its resource bookings and reminders, created or
moved in one transaction with conflicts checked.

A person is not double-booked by fieldmesh's own writers: creating or moving a meeting
takes a transaction-scoped advisory lock on its owner, then checks the owner's busy time
(calendars.busy) and answers `MeetingConflict` (409) with what is in the way and the next
free slots. Resources are protected by the database itself (calendars.bookings). The
activity is written through the CRM's service (`crm.store`), so its rules, scoping and
audit run. `CALENDAR_EVENT_HOOK` is where the calendar event row of calendars part A (the
CalDAV-synced event keyed by the activity id) is written at merge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from calendars import bookings, busy, resources
from calendars.bookings import Booking, BookingConflict
from calendars.jobs import enqueue_sync
from calendars.slots import Busy, Query, Slot, find_slots
from crm.entities import ACTIVITIES
from crm.store import create_record, get_record, update_record
from kernel.principal import Principal

_LOCK_SPACE = 0x63616C  # "cal": one advisory lock space for people's calendars

# Called with (conn, activity_id) after a meeting is created or moved, in its transaction.
EventHook = Callable[[AsyncConnection[Any], int], Awaitable[None]]


async def _sync_soon(conn: AsyncConnection[Any], activity_id: int) -> None:
    """The owner's calendar sync round comes at once (not at the next periodic round), so a
    booked or moved meeting reaches their phone's calendar within seconds; only for
    owners who opted in to sync (calendars.sync)."""
    cur = await conn.execute(
        "SELECT a.owner_id FROM activities a JOIN cal_accounts c ON c.user_id = a.owner_id "
        "WHERE a.id = %s AND c.enabled",
        (activity_id,),
    )
    row = await cur.fetchone()
    if row is not None:
        await enqueue_sync(conn, int(row[0]))


CALENDAR_EVENT_HOOKS: list[EventHook] = [_sync_soon]


class MeetingConflict(Exception):
    """The owner is busy then: what is in the way, and the next free slots."""

    def __init__(self, message: str, conflicting: Busy, alternatives: tuple[Slot, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.conflicting = conflicting
        self.alternatives = alternatives


async def lock_user(conn: AsyncConnection[Any], user_id: int) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_SPACE, user_id % 2**31))


async def first_conflict(
    conn: AsyncConnection[Any],
    user_id: int,
    start: datetime,
    end: datetime,
    ignore_refs: set[str],
) -> Busy | None:
    items = (await busy.busy_by_user(conn, [user_id], start, end)).get(user_id, [])
    hits = [b for b in items if b.ref not in ignore_refs and b.start < end and b.end > start]
    return min(hits, key=lambda b: (b.start, b.ref)) if hits else None


async def alternatives(
    conn: AsyncConnection[Any],
    user_id: int,
    resource_ids: list[int],
    start: datetime,
    duration: timedelta,
    ignore_refs: set[str],
    limit: int = 3,
) -> tuple[Slot, ...]:
    horizon = start + timedelta(days=14)
    people = await busy.attendees(conn, [user_id], start, horizon)
    people = [
        type(p)(
            p.user_id, p.tz, p.week, tuple(b for b in p.busy if b.ref not in ignore_refs), p.home
        )
        for p in people
    ]
    loads = await resources.loads(conn, resource_ids, start, horizon)
    q = Query(tuple(people), tuple(loads), start, horizon, duration, limit=limit)
    return tuple(find_slots(q))


async def _run_hooks(conn: AsyncConnection[Any], activity_id: int) -> None:
    for hook in CALENDAR_EVENT_HOOKS:
        await hook(conn, activity_id)


async def create_meeting(
    conn: AsyncConnection[Any],
    principal: Principal,
    *,
    subject: str,
    start: datetime,
    end: datetime,
    tz: str,
    owner_id: int,
    account_id: int | None = None,
    contact_id: int | None = None,
    work_order_id: int | None = None,
    body: str | None = None,
    resource_ids: tuple[int, ...] = (),
    reminder_min: int | None = None,
    allow_overlap: bool = False,
    source: str = "calendar",
    source_ref: str | None = None,
) -> tuple[dict[str, Any], list[Booking]]:
    """The new activity and its bookings; MeetingConflict or BookingConflict otherwise
    (the caller's transaction then rolls back, so nothing half-made stays)."""
    await lock_user(conn, owner_id)
    if not allow_overlap:
        hit = await first_conflict(conn, owner_id, start, end, set())
        if hit is not None:
            alts = await alternatives(conn, owner_id, list(resource_ids), start, end - start, set())
            raise MeetingConflict("the owner is busy at that time", hit, alts)
    values: dict[str, Any] = {
        "type": "meeting",
        "subject": subject,
        "start_at": start,
        "end_at": end,
        "tz": tz,
        "owner_id": owner_id,
        "source": source,
    }
    for k, v in (
        ("account_id", account_id),
        ("contact_id", contact_id),
        ("work_order_id", work_order_id),
        ("body", body),
        ("source_ref", source_ref),
    ):
        if v is not None:
            values[k] = v
    activity = await create_record(conn, ACTIVITIES, principal, values)
    made = [
        await bookings.book(
            conn,
            resource_id=rid,
            start=start,
            end=end,
            title=subject,
            user_id=owner_id,
            activity_id=int(activity["id"]),
            created_by=principal.user_id,
        )
        for rid in resource_ids
    ]
    if reminder_min is not None:
        await conn.execute(
            "INSERT INTO cal_reminders (user_id, activity_id, offset_min) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (owner_id, activity["id"], reminder_min),
        )
    await _run_hooks(conn, int(activity["id"]))
    return activity, made


async def move_meeting(
    conn: AsyncConnection[Any],
    principal: Principal,
    activity_id: int,
    start: datetime,
    end: datetime,
    allow_overlap: bool = False,
) -> tuple[dict[str, Any], list[Booking]]:
    """The meeting (and its resource bookings) at a new time; MeetingConflict when its
    owner is busy then, BookingConflict when a resource is full."""
    current = await get_record(conn, ACTIVITIES, principal, activity_id)
    owner = current.get("owner_id")
    if current.get("start_at") is None:
        raise MeetingConflict(
            "the activity has no time to move",
            Busy(start, end, "activity", str(current["subject"]), f"activity:{activity_id}"),
            (),
        )
    ignore = {f"activity:{activity_id}"}
    cur = await conn.execute(
        "SELECT id, resource_id FROM cal_bookings WHERE activity_id = %s AND status = 'booked'",
        (activity_id,),
    )
    linked = await cur.fetchall()
    ignore |= {f"booking:{b}" for b, _ in linked}
    if owner is not None:
        await lock_user(conn, int(owner))
        if not allow_overlap:
            hit = await first_conflict(conn, int(owner), start, end, ignore)
            if hit is not None:
                alts = await alternatives(
                    conn, int(owner), [int(r) for _, r in linked], start, end - start, ignore
                )
                raise MeetingConflict("the owner is busy at that time", hit, alts)
    delta = start - current["start_at"]
    moved = await bookings.move_for_activity(conn, activity_id, delta, end - start)
    new = await update_record(
        conn,
        ACTIVITIES,
        principal,
        activity_id,
        {"start_at": start, "end_at": end},
        None,
        check_etag=False,
    )
    # reminders follow by themselves: they are due relative to the current start
    await _run_hooks(conn, activity_id)
    return new, moved


__all__ = ["BookingConflict", "MeetingConflict", "create_meeting", "move_meeting"]
