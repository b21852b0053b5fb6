"""Reports: a definition (entity, filter, up to two groupings, measures, chart) compiled to
one SQL statement that runs in the database under the caller's record-level access.

Rows are never loaded into Python to be aggregated: the database groups, measures, sorts
and limits; Python only shapes the answer. Field names come from the entity's whitelist
(`crm.entities`), filters are the list endpoints' filter language (`crm.filters`), values
are bound parameters. A grouping on a reference (owner, account, stage ...) answers the
referenced record's name (`crm.labels`), never its id. A sum, average, minimum or maximum of
money is grouped by currency too, so amounts in different currencies are never added up.

Besides the entity's own fields, one derived dimension: `segment`, the customer segment of
the account (insights' K-means segments, `insights_account_value`, read here only), for
accounts and for the records of an account (opportunities, activities, work orders through
their `account_id`). It is a correlated lookup on the table's primary key inside the same
statement; records of an account with no segment (prospects, not yet segmented) group as
null.

Groups read biggest first, except along an ordered dimension: time buckets in time order,
an ordinal enum (a status's life cycle, a priority's scale: `Field.ordinal`) in its
declared order, pipeline stages in pipeline order (their position; same-named stages of
several pipelines are one group, at their first position).

A grouped report whose groupings, filter, measures and access a rollup covers reads the
rollup instead of the table (`crm.rollups`: activities per UTC month, day or hour, type,
status, source, owner and territory, kept exact by triggers): the same rows, from
thousands of groups instead of millions of records.

`run_report(conn, principal, definition)` is the service API: the console's endpoints and the
scheduled reports of `automation` both call it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from psycopg import AsyncConnection, sql

from crm.entities import ENTITIES, Entity, Field
from crm.errors import CrmError
from crm.filters import compile_filter
from crm.labels import LABELS, label_sql
from crm.rollups import Rollup, choose, measure_sql, source_sql
from crm.store import db_errors, scope
from kernel.principal import Principal

REPORTABLE = ("accounts", "contacts", "leads", "opportunities", "activities", "work_orders")
MONEY_FIELDS = ("amount", "annual_revenue", "estimated_amount")
MAX_ROWS = 1000
_GROUP_KINDS = ("enum", "text", "int", "bool", "date", "datetime")
_NUMERIC_KINDS = ("int", "decimal")
SEGMENT = "segment"  # the derived dimension (see the module's text)
# referenced records that have an order of their own: the column holding it
_REF_ORDER = {"pipeline_stages": "position"}

Bucket = Literal["day", "week", "month", "quarter", "year"]
Aggregate = Literal["count", "sum", "avg", "min", "max"]
Chart = Literal["table", "bar", "line", "pie"]
Name = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z_]+$")]


class ReportGroupBy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    field: Name
    bucket: Bucket | None = None  # for date and datetime fields


class ReportMeasure(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    agg: Aggregate = "count"
    field: Name | None = None  # a numeric field; none for count


class ReportDefinition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    entity: Literal[REPORTABLE]  # type: ignore[valid-type]  # a tuple of literals
    group_by: Annotated[list[ReportGroupBy], Meta(max_length=2)] = []
    measures: Annotated[list[ReportMeasure], Meta(min_length=1, max_length=6)] = msgspec.field(
        default_factory=lambda: [ReportMeasure()]
    )
    columns: Annotated[list[Name], Meta(max_length=20)] = []  # listed when not grouped
    filter: dict[str, Any] | None = None  # the filter language of the list endpoints
    chart: Chart = "table"
    limit: Annotated[int, Meta(ge=1, le=MAX_ROWS)] = 200


class ReportColumn(msgspec.Struct):
    key: str
    label: str
    kind: Literal["group", "currency", "measure", "field"]
    money: bool = False


class ReportResult(msgspec.Struct):
    entity: str
    chart: str
    columns: list[ReportColumn]
    rows: list[list[Any]]
    truncated: bool
    as_of: dt.datetime | None = None  # when it was computed (a dashboard may show an older one)


def _bad(field: str, message: str) -> CrmError:
    return CrmError(f"{field}: {message}", field=field, status=422, code="invalid_report")


def _field(entity: Entity, name: str, where: str) -> Field:
    f = entity.field(name)
    if f is None or not f.read or f.kind in ("password", "point", "multipolygon"):
        raise _bad(where, f"{entity.name} has no field {name!r}")
    return f


def _human(name: str) -> str:
    return name.removesuffix("_id").replace("_", " ").capitalize()


def segment_expr(entity: Entity) -> sql.Composable | None:
    """The segment of the record's account as an SQL expression over alias `t`; None for an
    entity that is no account and has no account."""
    if entity.field(SEGMENT) is not None:
        return None  # an entity's own field of that name wins
    ref = entity.field("account_id")
    if entity.name == "accounts":
        account = sql.Identifier("t", "id")
    elif ref is not None and ref.ref == "accounts":
        account = sql.Identifier("t", "account_id")
    else:
        return None
    return sql.SQL(
        "(SELECT v.segment FROM insights_account_value v WHERE v.account_id = {})"
    ).format(account)


def _segment(entity: Entity, where: str) -> sql.Composable:
    expr = segment_expr(entity)
    if expr is None:
        raise _bad(
            where,
            f"{entity.name} has no account: the segment dimension is for accounts, "
            "opportunities, activities and work orders",
        )
    return expr


def _group_expr(
    entity: Entity, g: ReportGroupBy, where: str, tz: str = "UTC"
) -> tuple[sql.Composable, str]:
    if g.field == SEGMENT and entity.field(SEGMENT) is None:
        if g.bucket is not None:
            raise _bad(where, "segment is not a date: no bucket")
        return _segment(entity, where), "Segment"
    f = _field(entity, g.field, where)
    if f.kind not in _GROUP_KINDS:
        raise _bad(where, f"cannot group by {f.name} ({f.kind})")
    col = sql.Identifier("t", f.name)
    if f.kind in ("date", "datetime"):
        if g.bucket is None:
            raise _bad(
                where, f"grouping by {f.name} needs a bucket (day, week, month, quarter, year)"
            )
        # the bucket's local date in zone `tz`: the same dates as date_trunc on the
        # timestamptz in a session of that zone, without its two zone conversions per row
        # (some 20% of a 2M-row grouped report)
        expr = sql.SQL("date_trunc({}, {} AT TIME ZONE {})::date").format(
            sql.Literal(g.bucket), col, sql.Literal(tz)
        )
        return expr, f"{_human(f.name)} ({g.bucket})"
    if g.bucket is not None:
        raise _bad(where, f"{f.name} is not a date: no bucket")
    if f.ref in LABELS:
        target = ENTITIES[f.ref]
        # the referenced record's name (its own access rule does not hide a group's name:
        # the rows counted are the caller's; the name of their owner or stage is not a record)
        expr = sql.SQL("(SELECT {} FROM {} r WHERE r.id = {})").format(
            sql.SQL(label_sql(f.ref, "r")), sql.Identifier(target.table), col
        )
        return expr, _human(f.name)
    return col, _human(f.name)


def _order_key(entity: Entity, g: ReportGroupBy) -> sql.Composable | None:
    """Where a group of an ordered dimension stands in its order (an expression valid in
    the grouped query's ORDER BY); None for a dimension read biggest first."""
    f = entity.field(g.field)
    if f is None or g.bucket is not None:
        return None
    col = sql.Identifier("t", f.name)
    if f.kind == "enum" and f.ordinal:
        return sql.SQL("array_position({}::text[], {})").format(sql.Literal(list(f.enum)), col)
    if f.ref in _REF_ORDER:
        # per group: its earliest record's position (the group is the referenced name)
        return sql.SQL("min((SELECT r.{} FROM {} r WHERE r.id = {}))").format(
            sql.Identifier(_REF_ORDER[f.ref]), sql.Identifier(ENTITIES[f.ref].table), col
        )
    return None


def _measure_expr(
    entity: Entity, m: ReportMeasure, where: str, rollup: Rollup | None = None
) -> tuple[sql.Composable, str, bool]:
    if m.agg == "count":
        if m.field is not None:
            _field(entity, m.field, where)
            return (
                measure_sql("count", m.field)
                if rollup
                else sql.SQL("count({})").format(sql.Identifier("t", m.field)),
                f"Count of {_human(m.field).lower()}",
                False,
            )
        return (
            (measure_sql("count", None) if rollup else sql.SQL("count(*)")),
            "Count",
            False,
        )
    if m.field is None:
        raise _bad(where, f"{m.agg} needs a numeric field")
    f = _field(entity, m.field, where)
    if f.kind not in _NUMERIC_KINDS:
        raise _bad(where, f"{m.agg} needs a numeric field, {f.name} is {f.kind}")
    expr: sql.Composable = sql.SQL("{}({})::float8").format(
        sql.SQL(m.agg), sql.Identifier("t", f.name)
    )
    if m.agg == "avg":
        expr = sql.SQL("round(avg({})::numeric, 2)::float8").format(sql.Identifier("t", f.name))
    if rollup is not None:
        expr = measure_sql(m.agg, f.name)
    return expr, f"{m.agg.capitalize()} of {_human(f.name).lower()}", f.name in MONEY_FIELDS


def compile_report(
    definition: ReportDefinition,
    principal: Principal,
    tz: str = "UTC",
    rollup: Rollup | None = None,
) -> tuple[sql.Composed, list[Any], list[ReportColumn]]:
    """The definition as one parameterised SELECT under the principal's access clause;
    time buckets are dates in zone `tz` (run_report: the session's TimeZone). With
    `rollup` (one `crm.rollups.choose` found exact for it) it reads that rollup's groups."""
    entity = ENTITIES[definition.entity]
    acc, acc_p = scope(entity, principal)
    flt, flt_p = compile_filter(entity, definition.filter)
    where = sql.SQL("{} AND {}").format(acc, flt)
    params = [*acc_p, *flt_p]
    table = sql.Identifier(entity.table) if rollup is None else source_sql(rollup)
    if not definition.group_by and definition.columns:
        if rollup is not None:
            raise ValueError("a listing of records reads the table, never a rollup")
        fields = [
            None
            if c == SEGMENT and entity.field(SEGMENT) is None
            else _field(entity, c, f"columns[{i}]")
            for i, c in enumerate(definition.columns)
        ]
        cols = [
            ReportColumn(SEGMENT, "Segment", "field")
            if f is None
            else ReportColumn(f.name, _human(f.name), "field", f.name in MONEY_FIELDS)
            for f in fields
        ]
        exprs: list[sql.Composable] = []
        for i, f in enumerate(fields):
            if f is None:
                exprs.append(_segment(entity, f"columns[{i}]"))
            elif f.ref in LABELS:
                exprs.append(_group_expr(entity, ReportGroupBy(f.name), "columns")[0])
            elif f.kind in ("object", "array"):
                exprs.append(sql.SQL("{}::text").format(sql.Identifier("t", f.name)))
            else:
                exprs.append(sql.Identifier("t", f.name))
        if (
            any(c.money for c in cols)
            and entity.field("currency")
            and "currency" not in definition.columns
        ):
            cols.append(ReportColumn("currency", "Currency", "currency"))
            exprs.append(sql.Identifier("t", "currency"))
        query = sql.SQL("SELECT {} FROM {} t WHERE {} ORDER BY t.id LIMIT %s").format(
            sql.SQL(", ").join(exprs), table, where
        )
        return query, [*params, definition.limit + 1], cols

    groups = [
        _group_expr(entity, g, f"group_by[{i}]", tz) for i, g in enumerate(definition.group_by)
    ]
    measures = [
        _measure_expr(entity, m, f"measures[{i}]", rollup)
        for i, m in enumerate(definition.measures)
    ]
    cols = [ReportColumn(f"g{i}", label, "group") for i, (_, label) in enumerate(groups)]
    select: list[sql.Composable] = [
        sql.SQL("{} AS {}").format(e, sql.Identifier(f"g{i}")) for i, (e, _) in enumerate(groups)
    ]
    group_refs: list[sql.Composable] = [sql.Identifier(f"g{i}") for i in range(len(groups))]
    if any(money for _, _, money in measures) and entity.field("currency") is not None:
        cols.append(ReportColumn("currency", "Currency", "currency"))
        select.append(sql.SQL("t.currency AS currency"))
        group_refs.append(sql.Identifier("currency"))
    for i, (e, label, money) in enumerate(measures):
        cols.append(ReportColumn(f"m{i}", label, "measure", money))
        select.append(sql.SQL("{} AS {}").format(e, sql.Identifier(f"m{i}")))
    grouped = (
        sql.SQL(" GROUP BY {}").format(sql.SQL(", ").join(group_refs))
        if group_refs
        else sql.SQL("")
    )
    # along an ordered dimension (time buckets, an ordinal enum, stages) the groups read
    # in its order; otherwise biggest first; ties by group (the same rows under a limit
    # whichever plan or source reads them)
    keys = [_order_key(entity, g) for g in definition.group_by]
    ordered = any(g.bucket for g in definition.group_by) or any(k is not None for k in keys)
    by_group: list[sql.Composable] = []
    for i, ref in enumerate(group_refs):
        key = keys[i] if i < len(keys) else None  # the currency has no order of its own
        if key is not None:
            by_group.append(sql.SQL("{} NULLS LAST").format(key))
        by_group.append(sql.SQL("{} NULLS LAST").format(ref))
    order = sql.SQL(", ").join(
        by_group
        if ordered
        else [sql.SQL("{} DESC NULLS LAST").format(sql.Identifier("m0")), *by_group]
    )
    query = sql.SQL("SELECT {} FROM {} t WHERE {}{} ORDER BY {} LIMIT %s").format(
        sql.SQL(", ").join(select), table, where, grouped, order
    )
    return query, [*params, definition.limit + 1], cols


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return value


async def run_report(
    conn: AsyncConnection[Any],
    principal: Principal,
    definition: ReportDefinition,
    *,
    rollups: bool = True,
) -> ReportResult:
    """Run the report in the database, as `principal` (only rows they may see count), from
    a rollup when one answers it exactly (`rollups=False`: always from the table)."""
    # the session's zone as the server reported it (no round trip), as date_trunc used it
    tz = conn.info.parameter_status("TimeZone") or "UTC"
    rollup = await choose(conn, definition, tz) if rollups else None
    query, params, cols = compile_report(definition, principal, tz, rollup)
    async with db_errors():  # a value the database cannot take: 422 naming it, not a 500
        rows = await (await conn.execute(query, params)).fetchall()
    truncated = len(rows) > definition.limit
    return ReportResult(
        definition.entity,
        definition.chart,
        cols,
        [[_plain(v) for v in r] for r in rows[: definition.limit]],
        truncated,
    )
