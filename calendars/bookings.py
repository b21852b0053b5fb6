"""Bookings of resources, conflict-free by construction (see migration cbk0001).

`book` tries the resource's units in order, each INSERT under a savepoint: the exclusion
constraint refuses a unit whose booking overlaps (SQLSTATE 23P01; a concurrent
transaction holding that unit makes the INSERT wait for its outcome, then refuse), and the
next unit is tried. When no unit is free the caller gets `BookingConflict` with a booking
that is in the way and the next free times of the same resource (and other resources of
its kind free at the asked time), for the 409 answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import class_row

from calendars import busy, resources
from calendars.slots import Query, Slot, find_slots

ALTERNATIVES_DAYS = 14


@dataclass(frozen=True, slots=True)
class Booking:
    id: int
    resource_id: int
    unit: int
    start: datetime
    end: datetime
    title: str
    user_id: int | None
    activity_id: int | None
    status: str
    reschedules: int


@dataclass(frozen=True, slots=True)
class OtherResource:
    id: int
    name: str


class BookingConflict(Exception):
    def __init__(
        self,
        message: str,
        conflicting: Booking | None,
        alternatives: list[Slot],
        other_resources: list[OtherResource],
    ) -> None:
        super().__init__(message)
        self.message = message
        self.conflicting = conflicting
        self.alternatives = alternatives
        self.other_resources = other_resources


_COLS = (
    "id, resource_id, unit, lower(during) AS start, upper(during) AS end, title, user_id,"
    " activity_id, status, reschedules"
)


async def get(conn: AsyncConnection[Any], booking_id: int) -> Booking | None:
    cur = conn.cursor(row_factory=class_row(Booking))
    await cur.execute(f"SELECT {_COLS} FROM cal_bookings WHERE id = %s", (booking_id,))
    return await cur.fetchone()


async def listed(
    conn: AsyncConnection[Any],
    resource_ids: list[int] | None,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[Booking]:
    cur = conn.cursor(row_factory=class_row(Booking))
    await cur.execute(
        f"SELECT {_COLS} FROM cal_bookings WHERE status = 'booked'"
        " AND during && tstzrange(%s, %s) AND (%s::bigint[] IS NULL OR resource_id = ANY(%s))"
        " ORDER BY lower(during), id LIMIT %s",
        (start, end, resource_ids, resource_ids, limit),
    )
    return await cur.fetchall()


async def _units(conn: AsyncConnection[Any], resource_id: int) -> list[int]:
    cur = await conn.execute(
        "SELECT unit FROM cal_resource_units WHERE resource_id = %s ORDER BY unit", (resource_id,)
    )
    return [int(r[0]) for r in await cur.fetchall()]


async def book(
    conn: AsyncConnection[Any],
    *,
    resource_id: int,
    start: datetime,
    end: datetime,
    title: str,
    user_id: int | None,
    activity_id: int | None,
    created_by: int | None,
) -> Booking:
    """A booking on the first free unit, or BookingConflict. Runs in the caller's
    transaction (the conflict answer needs no rollback of the caller's other writes)."""
    for unit in await _units(conn, resource_id):
        try:
            async with conn.transaction():
                cur = conn.cursor(row_factory=class_row(Booking))
                await cur.execute(
                    f"INSERT INTO cal_bookings (resource_id, unit, during, title, user_id,"
                    f" activity_id, created_by) VALUES (%s, %s, tstzrange(%s, %s), %s, %s, %s, %s)"
                    f" RETURNING {_COLS}",
                    (resource_id, unit, start, end, title, user_id, activity_id, created_by),
                )
                row = await cur.fetchone()
                assert row is not None
                return row
        except psycopg.errors.ExclusionViolation:
            continue
    raise await conflict(conn, resource_id, start, end, user_id, exclude_id=None)


async def move(
    conn: AsyncConnection[Any], booking: Booking, start: datetime, end: datetime
) -> Booking:
    """The booking at a new time (its unit, or another free one), or BookingConflict."""
    units = await _units(conn, booking.resource_id)
    units.sort(key=lambda u: u != booking.unit)
    for unit in units:
        try:
            async with conn.transaction():
                cur = conn.cursor(row_factory=class_row(Booking))
                await cur.execute(
                    f"UPDATE cal_bookings SET unit = %s, during = tstzrange(%s, %s),"
                    f" reschedules = reschedules + 1, updated_at = now()"
                    f" WHERE id = %s AND status = 'booked' RETURNING {_COLS}",
                    (unit, start, end, booking.id),
                )
                row = await cur.fetchone()
                if row is None:
                    raise BookingConflict("the booking was cancelled", None, [], [])
                return row
        except psycopg.errors.ExclusionViolation:
            continue
    raise await conflict(
        conn, booking.resource_id, start, end, booking.user_id, exclude_id=booking.id
    )


async def cancel(conn: AsyncConnection[Any], booking_id: int) -> bool:
    cur = await conn.execute(
        "UPDATE cal_bookings SET status = 'cancelled', updated_at = now()"
        " WHERE id = %s AND status = 'booked'",
        (booking_id,),
    )
    return cur.rowcount > 0


async def move_for_activity(
    conn: AsyncConnection[Any], activity_id: int, delta: timedelta, duration: timedelta
) -> list[Booking]:
    """Move every booking linked to a meeting with it (BookingConflict if one cannot)."""
    cur = conn.cursor(row_factory=class_row(Booking))
    await cur.execute(
        f"SELECT {_COLS} FROM cal_bookings WHERE activity_id = %s AND status = 'booked'"
        " ORDER BY id",
        (activity_id,),
    )
    return [
        await move(conn, b, b.start + delta, b.start + delta + duration)
        for b in await cur.fetchall()
    ]


async def conflict(
    conn: AsyncConnection[Any],
    resource_id: int,
    start: datetime,
    end: datetime,
    user_id: int | None,
    exclude_id: int | None,
) -> BookingConflict:
    """What is in the way, and where the booking would fit instead."""
    cur = conn.cursor(row_factory=class_row(Booking))
    await cur.execute(
        f"SELECT {_COLS} FROM cal_bookings WHERE resource_id = %s AND status = 'booked'"
        " AND during && tstzrange(%s, %s) AND id IS DISTINCT FROM %s"
        " ORDER BY lower(during), id LIMIT 1",
        (resource_id, start, end, exclude_id),
    )
    in_way = await cur.fetchone()
    alternatives = await next_free(conn, resource_id, start, end - start, user_id, exclude_id)
    others = await free_alternatives(conn, resource_id, start, end)
    return BookingConflict(
        "the resource is fully booked at that time", in_way, alternatives, others
    )


async def next_free(
    conn: AsyncConnection[Any],
    resource_id: int,
    start: datetime,
    duration: timedelta,
    user_id: int | None,
    exclude_id: int | None,
    limit: int = 3,
) -> list[Slot]:
    """The next free times of this resource from `start` (within the booker's working
    hours and outside their other appointments when the booking is for a user)."""
    horizon = start + timedelta(days=ALTERNATIVES_DAYS)
    loads = await resources.loads(conn, [resource_id], start, horizon)
    if exclude_id is not None:  # a booking being moved does not block its own new time
        own = await get(conn, exclude_id)
        if own is not None and own.status == "booked":
            loads = [
                type(ld)(
                    ld.resource_id,
                    ld.capacity,
                    tuple(iv for iv in ld.booked if iv != (own.start, own.end)),
                )
                for ld in loads
            ]
    people = await busy.attendees(conn, [user_id], start, horizon) if user_id else []
    if exclude_id is not None:
        ref = f"booking:{exclude_id}"
        people = [
            type(p)(p.user_id, p.tz, p.week, tuple(b for b in p.busy if b.ref != ref), p.home)
            for p in people
        ]
    step = timedelta(minutes=15)
    q = Query(tuple(people), tuple(loads), start, horizon, duration, step, limit=limit)
    return find_slots(q)


async def free_alternatives(
    conn: AsyncConnection[Any], resource_id: int, start: datetime, end: datetime
) -> list[OtherResource]:
    """Other active resources of the same kind (and territory) with a free unit then."""
    cur = await conn.execute(
        """
        SELECT o.id, o.name FROM cal_resources r
        JOIN cal_resources o ON o.kind = r.kind AND o.id <> r.id AND o.active
             AND o.territory_id IS NOT DISTINCT FROM r.territory_id
        WHERE r.id = %s AND (
            SELECT count(*) FROM cal_bookings b WHERE b.resource_id = o.id
            AND b.status = 'booked' AND b.during && tstzrange(%s, %s)) < o.capacity
        ORDER BY lower(o.name) LIMIT 5
        """,
        (resource_id, start, end),
    )
    return [OtherResource(int(i), str(n)) for i, n in await cur.fetchall()]
