"""Pipeline analytics over HTTP: stage summary, stage conversion, forecast, owners.

Every figure is computed over the opportunities the caller may see (crm.analytics applies
the access clause), so the endpoints need no record scope.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from crm import analytics
from crm.errors import CrmError
from crm.record_routes import API
from crm.schema import RecordId
from kernel.errors import NotFound
from kernel.http import Access, Req, Routes

_WHEN = Meta(
    pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+(Z|[+-][0-9]{2}:?[0-9]{2}))?$",
    description="ISO 8601 date (UTC midnight) or date-time with an offset",
)
When = Annotated[str, _WHEN]
FILTERED = "figures are computed over the opportunities the caller may see"


class PipelineQuery(msgspec.Struct, frozen=True):
    pipeline_id: RecordId | None = None


class PeriodQuery(msgspec.Struct, frozen=True):
    pipeline_id: RecordId | None = None
    start: When | None = None
    end: When | None = None


class OwnersQuery(msgspec.Struct, frozen=True):
    start: When | None = None
    end: When | None = None


class StageRow(msgspec.Struct):
    stage_id: int
    stage: str
    position: int
    is_won: bool
    is_lost: bool
    currency: str
    count: int
    amount: float
    weighted_amount: float


class StageSummary(msgspec.Struct):
    pipeline_id: int
    items: list[StageRow]


class ConversionRow(msgspec.Struct):
    stage_id: int
    stage: str
    position: int
    entered: int
    advanced: int
    rate: float | None


class Conversion(msgspec.Struct):
    pipeline_id: int
    start: dt.datetime
    end: dt.datetime
    items: list[ConversionRow]


class ForecastRow(msgspec.Struct):
    month: str
    currency: str
    open_count: int
    open_amount: float
    weighted_amount: float
    won_amount: float


class Forecast(msgspec.Struct):
    pipeline_id: int | None
    items: list[ForecastRow]


class OwnerRow(msgspec.Struct):
    owner_id: int | None
    owner_name: str | None
    won: int
    lost: int
    win_rate: float | None
    avg_cycle_days: float | None
    won_amount: float


class Owners(msgspec.Struct):
    items: list[OwnerRow]


def _time(name: str, raw: str | None) -> dt.datetime | None:
    if raw is None:
        return None
    try:
        if len(raw) == 10:
            return dt.datetime.fromisoformat(raw).replace(tzinfo=dt.UTC)
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CrmError(
            f"{name}: not an ISO 8601 date or time: {exc}", field=name, status=422
        ) from None
    if value.tzinfo is None:
        raise CrmError(f"{name}: needs a time zone offset", field=name, status=422)
    return value


async def _pipeline(conn: Any, pipeline_id: int | None) -> int:
    if pipeline_id is not None:
        return pipeline_id
    cur = await conn.execute("SELECT id FROM pipelines ORDER BY is_default DESC, id LIMIT 1")
    row = await cur.fetchone()
    if row is None:
        raise NotFound("no pipeline exists")
    return int(row[0])


async def stages(req: Req, query: PipelineQuery) -> Any:
    async with req.connection() as conn:
        pid = await _pipeline(conn, query.pipeline_id)
        return {"pipeline_id": pid, "items": await analytics.stage_summary(conn, req.user, pid)}


async def conversion(req: Req, query: PeriodQuery) -> Any:
    try:
        end = _time("end", query.end) or dt.datetime.now(dt.UTC)
        start = _time("start", query.start) or end - dt.timedelta(days=90)
    except OverflowError:
        raise CrmError("start: out of range", field="start", status=422) from None
    if start >= end:
        raise CrmError("start must be before end", field="start", status=422)
    async with req.connection() as conn:
        pid = await _pipeline(conn, query.pipeline_id)
        rows = await analytics.conversion(conn, req.user, pid, start, end)
    for r in rows:
        r["rate"] = round(r["advanced"] / r["entered"], 4) if r["entered"] else None
    return {"pipeline_id": pid, "start": start, "end": end, "items": rows}


async def forecast(req: Req, query: PeriodQuery) -> Any:
    start, end = _time("start", query.start), _time("end", query.end)
    async with req.connection() as conn:
        pid = query.pipeline_id
        rows = await analytics.forecast(
            conn, req.user, pid, start.date() if start else None, end.date() if end else None
        )
    return {"pipeline_id": pid, "items": rows}


async def owners(req: Req, query: OwnersQuery) -> Any:
    start, end = _time("start", query.start), _time("end", query.end)
    async with req.connection() as conn:
        rows = await analytics.owners(conn, req.user, start, end)
    return {"items": rows}


@functools.cache
def analytics_routes() -> Routes:
    routes = Routes("analytics", "Pipeline analytics")
    base = f"{API}/analytics/pipeline"
    routes.add(
        "GET",
        f"{base}/stages",
        stages,
        access=Access.read(unscoped=FILTERED),
        summary="Opportunities per stage: count, amount, weighted amount, by currency",
        description="The default pipeline unless `pipeline_id` is given.",
        response=StageSummary,
    )
    routes.add(
        "GET",
        f"{base}/conversion",
        conversion,
        access=Access.read(unscoped=FILTERED),
        summary="Per stage: opportunities that entered it in [start, end) and advanced",
        description="`end` defaults to now, `start` to 90 days before it.",
        response=Conversion,
    )
    routes.add(
        "GET",
        f"{base}/forecast",
        forecast,
        access=Access.read(unscoped=FILTERED),
        summary="By close month and currency: open, weighted and won amounts",
        response=Forecast,
    )
    routes.add(
        "GET",
        f"{base}/owners",
        owners,
        access=Access.read(unscoped=FILTERED),
        summary="Per owner: won, lost, win rate and average cycle time of closed deals",
        response=Owners,
    )
    return routes
