"""Bookable resources: rooms, vehicles, tools and equipment, each with a capacity.

A resource of capacity N has N unit rows; the exclusion constraint on bookings
(migration cbk0001) lets each unit hold one booking at a time, so the database itself
bounds concurrent bookings by the capacity. Capacity only grows (units are added), since
dropping a unit would orphan its bookings; a resource that should shrink is deactivated
and replaced.

Visibility: a resource with a territory is seen by those who see that territory (its
reps, the managers of its team, admins and viewers); one without a territory is shared by
everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from calendars.slots import ResourceLoad
from kernel.principal import Principal

KINDS = ("room", "vehicle", "tool", "equipment")


@dataclass(frozen=True, slots=True)
class Resource:
    id: int
    name: str
    kind: str
    capacity: int
    territory_id: int | None
    active: bool


_COLS = "id, name, kind, capacity, territory_id, active"


def visible(principal: Principal, r: Resource) -> bool:
    return (
        principal.sees_everything
        or r.territory_id is None
        or r.territory_id in principal.team_territory_ids
    )


async def create(
    conn: AsyncConnection[Any],
    *,
    name: str,
    kind: str,
    capacity: int,
    territory_id: int | None,
    created_by: int | None,
) -> Resource:
    cur = conn.cursor(row_factory=class_row(Resource))
    await cur.execute(
        f"INSERT INTO cal_resources (name, kind, capacity, territory_id, created_by)"
        f" VALUES (%s, %s, %s, %s, %s) RETURNING {_COLS}",
        (name, kind, capacity, territory_id, created_by),
    )
    res = await cur.fetchone()
    assert res is not None
    await conn.execute(
        "INSERT INTO cal_resource_units (resource_id, unit) SELECT %s, g FROM generate_series(1, %s) g",
        (res.id, capacity),
    )
    return res


async def grow(conn: AsyncConnection[Any], resource_id: int, capacity: int) -> Resource | None:
    """Raise the capacity (never lowers it: the caller refuses that first)."""
    cur = conn.cursor(row_factory=class_row(Resource))
    await cur.execute(
        f"UPDATE cal_resources SET capacity = greatest(capacity, %s) WHERE id = %s RETURNING {_COLS}",
        (capacity, resource_id),
    )
    res = await cur.fetchone()
    if res is not None:
        await conn.execute(
            "INSERT INTO cal_resource_units (resource_id, unit)"
            " SELECT %s, g FROM generate_series(1, %s) g ON CONFLICT DO NOTHING",
            (resource_id, res.capacity),
        )
    return res


async def set_active(conn: AsyncConnection[Any], resource_id: int, active: bool) -> None:
    await conn.execute("UPDATE cal_resources SET active = %s WHERE id = %s", (active, resource_id))


async def get(conn: AsyncConnection[Any], resource_id: int) -> Resource | None:
    cur = conn.cursor(row_factory=class_row(Resource))
    await cur.execute(f"SELECT {_COLS} FROM cal_resources WHERE id = %s", (resource_id,))
    return await cur.fetchone()


async def listed(
    conn: AsyncConnection[Any], principal: Principal, kind: str | None, limit: int
) -> list[Resource]:
    cur = conn.cursor(row_factory=class_row(Resource))
    await cur.execute(
        f"SELECT {_COLS} FROM cal_resources"
        " WHERE (%s::text IS NULL OR kind = %s)"
        " AND (%s OR territory_id IS NULL OR territory_id = ANY(%s))"
        " ORDER BY kind, lower(name), id LIMIT %s",
        (
            kind,
            kind,
            principal.sees_everything,
            list(principal.team_territory_ids),
            limit,
        ),
    )
    return await cur.fetchall()


async def loads(
    conn: AsyncConnection[Any], resource_ids: list[int], start: datetime, end: datetime
) -> list[ResourceLoad]:
    """Each resource's capacity and the booked intervals overlapping [start, end)."""
    cur = await conn.execute(
        """
        SELECT r.id, r.capacity,
               coalesce(array_agg(lower(b.during) ORDER BY lower(b.during))
                        FILTER (WHERE b.id IS NOT NULL), '{}'),
               coalesce(array_agg(upper(b.during) ORDER BY lower(b.during))
                        FILTER (WHERE b.id IS NOT NULL), '{}')
        FROM cal_resources r
        LEFT JOIN cal_bookings b ON b.resource_id = r.id AND b.status = 'booked'
             AND b.during && tstzrange(%s, %s)
        WHERE r.id = ANY(%s) GROUP BY r.id, r.capacity
        """,
        (start, end, resource_ids),
    )
    by_id = {
        int(rid): ResourceLoad(int(rid), int(cap), tuple(zip(starts, ends, strict=True)))
        for rid, cap, starts, ends in await cur.fetchall()
    }
    return [by_id[r] for r in resource_ids if r in by_id]
