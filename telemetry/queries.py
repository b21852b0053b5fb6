"""Reading telemetry back: raw samples, latest values, time-bucketed aggregates.

Aggregates are computed server-side (date_bin over the (device_id, time) index), with a
cap on the number of buckets, so a chart never receives raw millions of points.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql

from telemetry.online import last_received_sql, online_sql

MAX_BUCKETS = 2_000
MAX_RAW_ROWS = 10_000


class QueryError(ValueError):
    """A query parameter cannot work; the message names it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    n: int
    min: float
    max: float
    avg: float


def choose_bucket(start: datetime, end: datetime, bucket: timedelta | None) -> timedelta:
    """The requested bucket, or the smallest round size that keeps under MAX_BUCKETS."""
    if end <= start:
        raise QueryError("'to' must be after 'from'", "to")
    span = end - start
    if bucket is not None:
        if bucket <= timedelta(0):
            raise QueryError("bucket must be positive", "bucket_s")
        if span / bucket > MAX_BUCKETS:
            raise QueryError(f"more than {MAX_BUCKETS} buckets: choose a larger bucket", "bucket_s")
        return bucket
    for seconds in (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 4 * 3600, 86_400, 7 * 86_400):
        if span / timedelta(seconds=seconds) <= MAX_BUCKETS:
            return timedelta(seconds=seconds)
    raise QueryError("range too long", "from")


async def aggregates(
    conn: AsyncConnection[Any],
    device_id: str,
    metric: str,
    start: datetime,
    end: datetime,
    bucket: timedelta,
) -> list[Bucket]:
    rows = await (
        await conn.execute(
            "SELECT date_bin(%s, time, %s) AS b, count(*), min(value), max(value), avg(value)"
            " FROM telemetry_sample WHERE device_id = %s AND metric = %s AND time >= %s AND time < %s"
            " GROUP BY b ORDER BY b",
            (bucket, start, device_id, metric, start, end),
        )
    ).fetchall()
    return [Bucket(r[0], r[1], r[2], r[3], r[4]) for r in rows]


async def raw_samples(
    conn: AsyncConnection[Any],
    device_id: str,
    metric: str,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[tuple[datetime, float]]:
    rows = await (
        await conn.execute(
            "SELECT time, value FROM telemetry_sample WHERE device_id = %s AND metric = %s"
            " AND time >= %s AND time < %s ORDER BY time LIMIT %s",
            (device_id, metric, start, end, min(limit, MAX_RAW_ROWS)),
        )
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


async def latest(conn: AsyncConnection[Any], device_id: str) -> dict[str, tuple[datetime, float]]:
    rows = await (
        await conn.execute(
            "SELECT metric, time, value FROM telemetry_latest WHERE device_id = %s", (device_id,)
        )
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


async def devices(
    conn: AsyncConnection[Any], *, kind: str | None, limit: int, after: str | None
) -> list[dict[str, Any]]:
    rows = await (
        await conn.execute(
            "SELECT d.device_id, d.tenant, d.kind, d.name, d.created_at, "
            + online_sql(last_received_sql("d.device_id"))
            + ", s.changed_at, s.firmware FROM device d LEFT JOIN device_status s USING (device_id)"
            " WHERE (%s::text IS NULL OR d.kind = %s) AND (%s::text IS NULL OR d.device_id > %s)"
            " ORDER BY d.device_id LIMIT %s",
            (kind, kind, after, after, limit),
        )
    ).fetchall()
    return [
        {
            "device_id": r[0],
            "tenant": r[1],
            "kind": r[2],
            "name": r[3],
            "created_at": r[4].isoformat(),
            "online": r[5],
            "status_changed_at": r[6].isoformat() if r[6] else None,
            "firmware": r[7],
        }
        for r in rows
    ]


async def dead_letters(
    conn: AsyncConnection[Any],
    limit: int,
    before_id: int | None,
    visible: tuple[sql.Composable, list[Any]] = (sql.SQL("TRUE"), []),
) -> list[dict[str, Any]]:
    """Refused messages newest first; `visible` is the condition (on `dl.device_id`) a
    message of a known device must meet: a message naming no known device has no
    territory and is every fleet operator's concern."""
    cond, params = visible
    stmt = sql.SQL(
        "SELECT id, received_at, topic, device_id, reason, detail, length(payload)"
        " FROM dead_letter dl WHERE (%s::bigint IS NULL OR id < %s)"
        " AND (dl.device_id IS NULL"
        " OR NOT EXISTS (SELECT 1 FROM device d WHERE d.device_id = dl.device_id) OR {})"
        " ORDER BY id DESC LIMIT %s"
    ).format(cond)
    rows = await (await conn.execute(stmt, [before_id, before_id, *params, limit])).fetchall()
    return [
        {
            "id": r[0],
            "received_at": r[1].isoformat(),
            "topic": r[2],
            "device_id": r[3],
            "reason": r[4],
            "detail": r[5],
            "payload_bytes": r[6],
        }
        for r in rows
    ]
