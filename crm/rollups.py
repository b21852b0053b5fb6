"""Which reports a pre-aggregated rollup answers exactly, and how it answers them.

A rollup is a table of one record type's rows counted per group: the start of the UTC
hour, day or month of its time field and a few low-cardinality dimensions, with the count
`n`, kept exact by the database's statement triggers (migration c3201:
`activity_rollup_{hour,day,month}`). The coarsest that answers a report is read. Its
columns carry the record type's own names, so a report's groupings, filter and access
clause compile against it unchanged (`crm.reports`); only the measures differ (a count is
the sum of `n`, a sum is the sum of value x `n`).

A report is answered from the rollup only when the answer is the same row for row:
- every grouping is a dimension, or the time field bucketed in periods made of the
  rollup's (a month grain answers month, quarter and year; hour and day grains all);
- every measure is a count, or a sum/avg/min/max of a numeric dimension;
- every filter condition is constant within a group: on a dimension (any operator), or
  on the time field `gte`/`lt` the start of a UTC period of the grain (`is_null` too: the
  field is never null);
- the caller's access reads only dimensions (territory and owner);
- with a time bucket, the session's zone is UTC, or (hour grain) it puts every UTC hour
  of the data in one local date: whole-hour offsets that change only on the hour (Europe/Paris, America/New_York;
  not Asia/Kolkata, nor a zone's local mean time before 1900). Checked per zone and year
  from the system's time zone data (PostgreSQL's too on Debian), at day steps with an
  hour-by-hour look at each day whose offset changes: a zone changing its offset and
  back within one day would slip through (no zone does since 1970).
Anything else falls back to the record type's own table. Never a cached result: the
rollup is as current as the table, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from psycopg import AsyncConnection, sql

from crm.entities import ENTITIES, parse_datetime

if TYPE_CHECKING:
    from crm.reports import ReportDefinition

_HOUR = dt.timedelta(hours=1)
_DAY = dt.timedelta(days=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Universal", "Zulu", "UCT"})
MAX_SPAN_YEARS = 300  # a zone check over more years is not worth its time: fall back


Grain = Literal["hour", "day", "month"]
# the bucket sizes a grain can answer: a week is not made of months
_BUCKETS: dict[str, frozenset[str]] = {
    "hour": frozenset({"day", "week", "month", "quarter", "year"}),
    "day": frozenset({"day", "week", "month", "quarter", "year"}),
    "month": frozenset({"month", "quarter", "year"}),
}


@dataclass(frozen=True, slots=True)
class Rollup:
    entity: str
    table: str
    grain: Grain  # of its time column: the start of the UTC hour, day or month
    time_field: str  # the base table's; the rollup's column of that name is the period
    dims: frozenset[str]


_COARSEST_FIRST: tuple[Grain, ...] = ("month", "day", "hour")
_ACTIVITY_DIMS = frozenset({"type", "status", "source", "owner_id", "territory_id"})
# coarsest first: the first that answers a report exactly is the one read
ROLLUPS: dict[str, tuple[Rollup, ...]] = {
    "activities": tuple(
        Rollup("activities", f"activity_rollup_{g}", g, "occurred_at", _ACTIVITY_DIMS)
        for g in _COARSEST_FIRST
    )
}


def _numeric(entity: str, name: str) -> bool:
    f = ENTITIES[entity].field(name)
    return f is not None and f.kind in ("int", "decimal")


def _aligned(value: Any, grain: Grain) -> bool:
    """A filter value that is the start of a UTC hour, day or month."""
    if not isinstance(value, str):
        return False
    try:
        at = parse_datetime(value).astimezone(dt.UTC)
    except ValueError:
        return False
    if (at - _EPOCH) % (_HOUR if grain == "hour" else _DAY):
        return False
    return grain != "month" or at.day == 1


def _filter_fits(r: Rollup, node: Any, depth: int = 0) -> bool:
    if depth > 16 or not isinstance(node, dict):
        return False
    for key in ("and", "or"):
        if key in node:
            items = node[key]
            return isinstance(items, list) and all(_filter_fits(r, n, depth + 1) for n in items)
    if "not" in node:
        return _filter_fits(r, node["not"], depth + 1)
    name, op = node.get("field"), node.get("op")
    if name in r.dims:
        return True
    if name == r.time_field:
        return op == "is_null" or (op in ("gte", "lt") and _aligned(node.get("value"), r.grain))
    return False


def answers(r: Rollup, definition: ReportDefinition) -> bool:
    """Whether rollup `r` answers `definition` exactly (the zone aside: `zone_fits`)."""
    if definition.entity != r.entity or (not definition.group_by and definition.columns):
        return False
    for g in definition.group_by:
        if g.field == r.time_field:
            if g.bucket not in _BUCKETS[r.grain]:
                return False
        elif g.field not in r.dims:
            return False
    for m in definition.measures:
        if m.field is None:
            continue
        if m.agg == "count":
            if m.field not in r.dims and m.field != r.time_field:
                return False
        elif m.field not in r.dims or not _numeric(r.entity, m.field):
            return False
    access = {"territory_id", "owner_id", *ENTITIES[r.entity].extra_owner_columns}
    if not access <= r.dims:
        return False
    return definition.filter is None or _filter_fits(r, definition.filter)


def rollup_for(definition: ReportDefinition) -> Rollup | None:
    """The coarsest rollup that answers `definition` exactly in UTC, or None. The
    definition is validated by the report compiler either way."""
    for r in ROLLUPS.get(definition.entity, ()):
        if answers(r, definition):
            return r
    return None


def timed(definition: ReportDefinition) -> bool:
    return any(g.bucket is not None for g in definition.group_by)


@functools.lru_cache(maxsize=4096)
def _year_fits(tz: str, year: int) -> bool:
    """Every UTC hour of `year` lies in one local date of zone `tz`: the zone's offset is a
    whole number of hours and changes only on a whole UTC hour."""
    try:
        zone = zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False

    def offset(at: dt.datetime) -> dt.timedelta:
        off = at.astimezone(zone).utcoffset()
        assert off is not None
        return off

    day = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)
    before = offset(day)
    while day < end:
        after = offset(day + _DAY)
        if before % _HOUR or after % _HOUR:
            return False
        if after != before:  # look at each hour of that day
            for h in range(24):
                start = day + h * _HOUR
                first, last = offset(start), offset(start + _HOUR - dt.timedelta(microseconds=1))
                if first != last or first % _HOUR:
                    return False
        day, before = day + _DAY, after
    return True


def zone_fits_span(tz: str, lo: dt.datetime, hi: dt.datetime) -> bool:
    """Every UTC hour from `lo` to `hi` lies in one local date of zone `tz`."""
    if tz in _UTC_NAMES:
        return True
    lo_year, hi_year = lo.astimezone(dt.UTC).year, hi.astimezone(dt.UTC).year
    if hi_year - lo_year > MAX_SPAN_YEARS or lo_year < 2 or hi_year > 9998:
        return False
    return all(_year_fits(tz, y) for y in range(lo_year, hi_year + 1))


async def zone_fits(conn: AsyncConnection[Any], r: Rollup, tz: str) -> bool:
    """Time buckets in zone `tz` are exact from the rollup's periods: in UTC always; else
    only hours, over the hours the rollup holds (two index probes)."""
    if tz in _UTC_NAMES:
        return True
    if r.grain != "hour":
        return False
    col, table = sql.Identifier(r.time_field), sql.Identifier(r.table)
    cur = await conn.execute(sql.SQL("SELECT min({}), max({}) FROM {}").format(col, col, table))
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return True  # no rows: nothing to put in the wrong date
    return zone_fits_span(tz, row[0], row[1])


async def choose(
    conn: AsyncConnection[Any], definition: ReportDefinition, tz: str
) -> Rollup | None:
    """The rollup to answer `definition` from in zone `tz` (the coarsest that answers it
    exactly), or None for the table."""
    for r in ROLLUPS.get(definition.entity, ()):
        if answers(r, definition) and (not timed(definition) or await zone_fits(conn, r, tz)):
            return r
    return None


_KEY = ("occurred_at", "type", "status", "source", "owner_id", "territory_id")


def source_sql(r: Rollup) -> sql.Composable:
    """The rollup's groups with their counts summed over its stripes (the writers' rows of
    one group, migration c3201); a group whose stripes sum to zero holds no record."""
    key = sql.SQL(", ").join(sql.Identifier(k) for k in _KEY)
    return sql.SQL("(SELECT {}, sum(n) AS n FROM {} GROUP BY {} HAVING sum(n) > 0)").format(
        key, sql.Identifier(r.table), key
    )


def measure_sql(agg: str, field: str | None, alias: str = "t") -> sql.Composable:
    """A measure over the rollup's groups: the same value the record type's table gives."""
    n = sql.Identifier(alias, "n")
    if field is None:
        return sql.SQL("coalesce(sum({}), 0)::bigint").format(n)
    col = sql.Identifier(alias, field)
    if agg == "count":
        return sql.SQL("coalesce(sum({}) FILTER (WHERE {} IS NOT NULL), 0)::bigint").format(n, col)
    if agg in ("min", "max"):
        return sql.SQL("{}({})::float8").format(sql.SQL(agg), col)
    total = sql.SQL("sum({}::numeric * {})").format(col, n)
    if agg == "sum":
        return sql.SQL("{}::float8").format(total)
    # avg: the numeric quotient avg() computes, rounded as the table's report rounds it
    return sql.SQL(
        "round({} / nullif(sum({}) FILTER (WHERE {} IS NOT NULL), 0), 2)::float8"
    ).format(total, n, col)
