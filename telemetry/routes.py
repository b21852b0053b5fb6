"""Telemetry over HTTP: devices, latest values, bucketed series, dead letters.

Every device endpoint is scoped: a caller sees a device when they may see its account (or,
for a phone, its rep); any other device answers 404, as if it did not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec
from aiohttp import web
from psycopg import sql

from kernel.errors import ApiError
from kernel.http import Access, Req, Routes
from telemetry import queries
from telemetry.access import device_clause, device_scope
from telemetry.contracts import DeviceId
from telemetry.online import ONLINE_WINDOW_S, last_received_sql, online_sql

routes = Routes("telemetry", "Devices and their telemetry")

_ONLINE_DOC = (
    f"`online` is true when the server stored a message from the device within the last "
    f"{ONLINE_WINDOW_S} s (by its receive clock), false when its newest message is older, null "
    "when it never sent any; `last_seen` is that newest message's receive time. The device's "
    "own status messages do not decide it (`status_changed_at` is their time, on the device's "
    "clock)."
)

Limit = Annotated[int, msgspec.Meta(ge=1, le=1000, description="page size")]
Metric = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="metric name")]
# Aware times only, within the range PostgreSQL and Python both represent.
Time = Annotated[datetime, msgspec.Meta(tz=True)]


class DevicePath(msgspec.Struct, frozen=True):
    device_id: DeviceId


class DeviceListQuery(msgspec.Struct, frozen=True):
    kind: Literal["equipment", "phone"] | None = None
    limit: Limit = 100
    after: (
        Annotated[str, msgspec.Meta(max_length=64, description="cursor: last device_id")] | None
    ) = None


class DeviceSummary(msgspec.Struct, frozen=True):
    device_id: str
    tenant: str
    kind: str
    name: str | None
    created_at: datetime
    online: bool | None  # telemetry.online: data received within the window; None: none ever
    status_changed_at: datetime | None  # the device's last status message, on its own clock
    firmware: str | None
    last_seen: datetime | None  # the server's receive time of the newest stored message


class DevicePage(msgspec.Struct, frozen=True):
    items: list[DeviceSummary]
    next: str | None


class LatestValue(msgspec.Struct, frozen=True):
    time: datetime
    value: float


class DeviceDetail(msgspec.Struct, frozen=True):
    device_id: str
    online: bool | None
    status_changed_at: datetime | None
    firmware: str | None
    latest: dict[str, LatestValue]
    last_seen: datetime | None = None


class SeriesQuery(msgspec.Struct, frozen=True, rename={"start": "from", "end": "to"}):
    metric: Metric
    start: Time | None = None
    end: Time | None = None
    bucket_s: Annotated[int, msgspec.Meta(ge=1, le=10**8)] | None = None


class SeriesBucket(msgspec.Struct, frozen=True):
    start: datetime
    n: int
    min: float
    max: float
    avg: float


class Series(msgspec.Struct, frozen=True, rename={"start": "from", "end": "to"}):
    device_id: str
    metric: str
    start: datetime
    end: datetime
    bucket_s: int
    buckets: list[SeriesBucket]


class DeadLetterQuery(msgspec.Struct, frozen=True):
    limit: Limit = 100
    before_id: Annotated[int, msgspec.Meta(ge=1, le=2**62)] | None = None


class DeadLetter(msgspec.Struct, frozen=True):
    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    reason: str
    detail: str
    payload_bytes: int


class DeadLetterPage(msgspec.Struct, frozen=True):
    items: list[DeadLetter]
    next: int | None


@routes.get(
    "/api/v1/devices",
    access=Access.read(unscoped="the list is filtered to the devices the caller may see"),
    summary="Devices the caller may see, with their online status",
    description=_ONLINE_DOC,
)
async def list_devices(req: Req, query: DeviceListQuery) -> DevicePage:
    visible, params = device_clause(req.user, sql.Identifier("d", "device_id"))
    stmt = sql.SQL(
        "SELECT d.device_id, d.tenant, d.kind, d.name, d.created_at, "
        + online_sql("rx.t")
        + ", s.changed_at, s.firmware, rx.t FROM device d LEFT JOIN device_status s USING (device_id)"
        " LEFT JOIN LATERAL (SELECT " + last_received_sql("d.device_id") + " AS t) rx ON true"
        " WHERE (%s::text IS NULL OR d.kind = %s) AND (%s::text IS NULL OR d.device_id > %s)"
        " AND {} ORDER BY d.device_id LIMIT %s"
    ).format(visible)
    args = [query.kind, query.kind, query.after, query.after, *params, query.limit]
    async with req.read_connection() as conn:  # a list: the replica may serve it
        rows = await (await conn.execute(stmt, args)).fetchall()
    items = [DeviceSummary(*r) for r in rows]
    nxt = items[-1].device_id if len(items) == query.limit else None
    return DevicePage(items, nxt)


@routes.get(
    "/api/v1/devices/{device_id}",
    access=Access.read(scope=device_scope),
    summary="A device, its status and latest values",
    description=_ONLINE_DOC,
)
async def get_device(req: Req, path: DevicePath) -> DeviceDetail:
    async with req.connection() as conn:
        latest = await queries.latest(conn, path.device_id)
        row = await (
            await conn.execute(
                "SELECT " + online_sql("rx.t") + ", s.changed_at, s.firmware, rx.t"
                " FROM (SELECT " + last_received_sql("%(d)s") + " AS t) rx"
                " LEFT JOIN device_status s ON s.device_id = %(d)s",
                {"d": path.device_id},
            )
        ).fetchone()
    online, changed_at, firmware, last_seen = row or (None, None, None, None)
    return DeviceDetail(
        device_id=path.device_id,
        online=online,
        status_changed_at=changed_at,
        firmware=firmware,
        latest={m: LatestValue(t, v) for m, (t, v) in sorted(latest.items())},
        last_seen=last_seen,
    )


@routes.get(
    "/api/v1/devices/{device_id}/telemetry",
    access=Access.read(scope=device_scope),
    summary="Time-bucketed aggregates (count, min, max, avg) of one metric over a range",
    description="`from` defaults to 24 h before `to`, `to` to now; the bucket size is chosen "
    "to keep at most 2,000 buckets unless `bucket_s` is given.",
)
async def device_series(req: Req, path: DevicePath, query: SeriesQuery) -> Series:
    end = query.end or datetime.now(UTC)
    try:
        start = query.start or end - timedelta(hours=24)
        bucket = queries.choose_bucket(
            start, end, timedelta(seconds=query.bucket_s) if query.bucket_s else None
        )
    except OverflowError:
        raise ApiError("from: out of range", field="from", status=422) from None
    except queries.QueryError as exc:
        raise ApiError(str(exc), field=exc.field, status=422) from None
    async with req.read_connection() as conn:  # analytics: the replica may serve it
        buckets = await queries.aggregates(conn, path.device_id, query.metric, start, end, bucket)
    return Series(
        device_id=path.device_id,
        metric=query.metric,
        start=start,
        end=end,
        bucket_s=int(bucket.total_seconds()),
        buckets=[SeriesBucket(b.start, b.n, b.min, b.max, b.avg) for b in buckets],
    )


@routes.get(
    "/api/v1/dead-letters",
    access=Access.managers(
        unscoped="filtered to the devices the caller may see (and messages of no known device)"
    ),
    summary="Messages the gateway refused, newest first",
    description="A manager sees the refused messages of the devices they may see, and "
    "those naming no known device; admins see all.",
)
async def list_dead_letters(req: Req, query: DeadLetterQuery) -> DeadLetterPage:
    visible = device_clause(req.user, sql.Identifier("dl", "device_id"))
    async with req.connection() as conn:
        items = await queries.dead_letters(conn, query.limit, query.before_id, visible)
    return DeadLetterPage(
        items=[msgspec.convert(i, DeadLetter) for i in items],
        next=items[-1]["id"] if len(items) == query.limit else None,
    )


def setup(app: web.Application) -> None:
    routes.mount(app)
