"""Ready-made KPIs over HTTP (definitions, one KPI over a period, computed by crm.kpis under
the caller's access) and the sales quotas that quota attainment reads."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from msgspec import Meta

from crm.errors import CrmError
from crm.kpis import KPIS, run_kpi
from crm.record_routes import API
from crm.reports import ReportResult
from crm.store import db_errors
from kernel.errors import NotFound
from kernel.http import Access, Req, Routes
from kernel.principal import Forbidden, Principal

routes = Routes("kpis", "Ready-made field-service and sales KPIs, and sales quotas")
Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]


# --------------------------------------------------------------------------- KPIs


class KpiOut(msgspec.Struct, frozen=True):
    key: str
    title: str
    area: str
    unit: str
    definition: str


class KpiList(msgspec.Struct, frozen=True):
    items: list[KpiOut]


class KpiPath(msgspec.Struct, frozen=True):
    key: Annotated[str, Meta(max_length=40, pattern=r"^[a-z_]+$", description="a KPI's key")]


class KpiQuery(msgspec.Struct, frozen=True):
    since: (
        Annotated[dt.datetime, Meta(tz=True, description="period start (default: 90 days ago)")]
        | None
    ) = None
    until: (
        Annotated[dt.datetime, Meta(tz=True, description="period end, excluded (default: now)")]
        | None
    ) = None


@routes.get(
    f"{API}/kpis",
    access=Access.read(unscoped="definitions only; no record is read"),
    summary="The ready-made KPIs (field service and sales) with their definitions",
)
async def list_kpis(req: Req) -> KpiList:
    return KpiList([KpiOut(k.key, k.title, k.area, k.unit, k.definition) for k in KPIS.values()])


@routes.get(
    f"{API}/kpis/{{key}}",
    access=Access.read(unscoped="computed over the records the caller may see only"),
    summary="One KPI over a period, computed in the database",
    description="Rows as a report's result (groups and measures). 404 for an unknown KPI; "
    "422 for a period that ends before it starts or spans more than ten years.",
    errors=(404, 422),
)
async def get_kpi(req: Req, path: KpiPath, query: KpiQuery) -> ReportResult:
    kpi = KPIS.get(path.key)
    if kpi is None:
        raise NotFound(f"no KPI {path.key!r}")
    until = query.until or dt.datetime.now(dt.UTC)
    since = query.since or until - dt.timedelta(days=90)
    if since >= until or until - since > dt.timedelta(days=3653):
        raise CrmError(
            "since: the period must start before it ends, within ten years",
            field="since",
            status=422,
        )
    async with req.read_connection() as conn:
        return await run_kpi(conn, req.user, kpi, since, until)


# --------------------------------------------------------------------------- sales quotas

Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]


class QuotaIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: Id
    period_start: dt.date
    period_end: Annotated[dt.date, Meta(description="excluded")]
    amount: Annotated[float, Meta(gt=0, le=1e15)]
    currency: Currency


class QuotaOut(msgspec.Struct, frozen=True):
    id: int
    user_id: int
    user_name: str
    period_start: dt.date
    period_end: dt.date
    amount: float
    currency: str


class QuotaList(msgspec.Struct, frozen=True):
    items: list[QuotaOut]


class QuotaQuery(msgspec.Struct, frozen=True):
    user_id: Id | None = None


class QuotaPath(msgspec.Struct, frozen=True):
    id: Id


class QuotaRep(msgspec.Struct, frozen=True):
    id: int
    name: str
    manager_id: int | None


class QuotaReps(msgspec.Struct, frozen=True):
    items: list[QuotaRep]


def _may_set_quota(user: Principal, target: int) -> None:
    if not (user.is_admin or (user.role == "manager" and target in user.team_user_ids)):
        raise Forbidden("only an admin, or the rep's manager, sets a rep's quota")


_QUOTA_SELECT = (
    "SELECT q.id, q.user_id, u.name, q.period_start, q.period_end, q.amount::float8, q.currency"
    " FROM sales_quotas q JOIN users u ON u.id = q.user_id"
)


@routes.get(
    f"{API}/quotas",
    access=Access.read(unscoped="the caller's own quotas, their team's, or all for admins/viewers"),
    summary="Sales quotas per rep and period",
)
async def list_quotas(req: Req, query: QuotaQuery) -> QuotaList:
    user = req.user
    async with req.connection() as conn:
        cur = await conn.execute(
            f"{_QUOTA_SELECT} WHERE (%s OR q.user_id = ANY(%s))"
            " AND (%s::bigint IS NULL OR q.user_id = %s) ORDER BY u.name, q.period_start",
            (user.sees_everything, list(user.team_user_ids), query.user_id, query.user_id),
        )
        rows = await cur.fetchall()
    return QuotaList([QuotaOut(*r) for r in rows])


@routes.put(
    f"{API}/quotas",
    access=Access.managers(unscoped="admins for anyone, managers for their team (403 otherwise)"),
    summary="Set a rep's quota for a period and currency (replaces the same start and currency)",
    errors=(403, 422),
)
async def put_quota(req: Req, body: QuotaIn) -> QuotaOut:
    _may_set_quota(req.user, body.user_id)
    if body.period_end <= body.period_start:
        raise CrmError("period_end: must be after period_start", field="period_end", status=422)
    async with req.connection() as conn, db_errors():
        cur = await conn.execute(
            "INSERT INTO sales_quotas (user_id, period_start, period_end, amount, currency, set_by)"
            " SELECT %s, %s, %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM users WHERE id = %s)"
            " ON CONFLICT (user_id, period_start, currency) DO UPDATE SET"
            " period_end = excluded.period_end, amount = excluded.amount,"
            " set_by = excluded.set_by, updated_at = now() RETURNING id",
            (
                body.user_id,
                body.period_start,
                body.period_end,
                body.amount,
                body.currency,
                req.user.user_id,
                body.user_id,
            ),
        )
        row = await cur.fetchone()
        if row is None:
            raise CrmError("user_id: no such user", field="user_id", status=422)
        cur = await conn.execute(f"{_QUOTA_SELECT} WHERE q.id = %s", (row[0],))
        out = await cur.fetchone()
    assert out is not None
    return QuotaOut(*out)


@routes.get(
    f"{API}/quotas/assignable",
    access=Access.read(unscoped="the users whose quota the caller may set; none for reps"),
    summary="The active reps and managers whose quota the caller may set",
    description="Everyone for admins, their team for managers, nobody for reps and viewers "
    "(the quota screen offers its form from this list).",
)
async def assignable_reps(req: Req) -> QuotaReps:
    user = req.user
    if not (user.is_admin or user.role == "manager"):
        return QuotaReps([])
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT id, name, manager_id FROM users WHERE active AND role IN ('rep', 'manager')"
            " AND (%s OR id = ANY(%s)) ORDER BY name, id",
            (user.is_admin, list(user.team_user_ids)),
        )
        rows = await cur.fetchall()
    return QuotaReps([QuotaRep(*r) for r in rows])


@routes.delete(
    f"{API}/quotas/{{id}}",
    access=Access.managers(unscoped="admins for anyone, managers for their team (403 otherwise)"),
    summary="Remove a rep's quota",
    description="404 when there is no such quota or the caller may not see it.",
    response=None,
    status=204,
    errors=(403, 404),
)
async def delete_quota(req: Req, path: QuotaPath) -> None:
    user = req.user
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT user_id FROM sales_quotas WHERE id = %s AND (%s OR user_id = ANY(%s))",
            (path.id, user.sees_everything, list(user.team_user_ids)),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no quota {path.id}")
        _may_set_quota(user, int(row[0]))
        await conn.execute("DELETE FROM sales_quotas WHERE id = %s", (path.id,))
