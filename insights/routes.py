"""HTTP API of the insights scores: lead score, opportunity win probability, account health.

    GET  /api/v1/insights/leads/{id}/score           the lead's score, version, reasons
    GET  /api/v1/insights/opportunities/{id}/win     model win probability beside the stage's
    GET  /api/v1/insights/accounts/{id}/health       computed health (manual override beside)
    GET  /api/v1/insights/forecast/accuracy          admins: snapshots against actuals
    GET  /api/v1/insights/drift                      managers: drift alerts of the models
    GET  /api/v1/insights/forecast/pipeline          revenue forecast by month, quarter or
                                                     year, by owner or territory,
                                                     with intervals and what-if scenarios
                                                     (win rate, slippage, new pipeline)
    POST /api/v1/insights/train                      managers: queue a model's training
    GET  /api/v1/insights/train/{job_id}             the training job's state

The models' versions, activation and rollback, and batch scores: insights.model_routes.

Scores are written by jobs (insights.jobs) on record change and nightly; these endpoints
only read. Every record endpoint is scoped: a record the caller may not see is a 404.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from psycopg import sql

from crm import store as crm_store
from crm.entities import ENTITIES
from insights import jobs as insights_jobs
from insights import live, model_routes, pipeline, record_scores
from kernel import jobs
from kernel.errors import NotFound
from kernel.http import Access, Req, Routes

PREFIX = "/api/v1/insights"

routes = Routes("insights", "Scores of CRM records by the insights models, with their reasons")


class InsightsRecordPath(msgspec.Struct, frozen=True):
    id: Annotated[int, msgspec.Meta(ge=1, le=2**62)]


class InsightsReason(msgspec.Struct, frozen=True):
    feature: str
    value: str
    contribution: float  # log-odds for trained models, health points for account health


class InsightsScore(msgspec.Struct, frozen=True, omit_defaults=True):
    model: str
    model_version: str
    score: int  # 0-100
    reasons: list[InsightsReason]
    computed_at: datetime
    probability: float | None = None


class InsightsLeadScore(msgspec.Struct, frozen=True):
    lead_id: int
    score: InsightsScore | None  # None until a model is active and the lead is scored


class InsightsWinProbability(msgspec.Struct, frozen=True):
    opportunity_id: int
    stage_probability: float  # the pipeline stage's (or the typed override), percent
    model: InsightsScore | None
    days_in_stage: float
    # the 90th percentile of past stays in this stage (None below MIN_STAYS of them)
    stage_p90_days: float | None
    stalled: bool | None  # open and in its stage longer than stage_p90_days


MIN_STAYS = 5
_STALL_SQL = """
WITH stays AS (
    SELECT h.to_stage_id AS stage_id,
           extract(epoch FROM lead(h.changed_at) OVER (
               PARTITION BY h.opportunity_id ORDER BY h.changed_at, h.id) - h.changed_at)
           / 86400.0 AS days
    FROM opportunity_stage_history h
)
SELECT o.status, o.probability::float8,
       extract(epoch FROM now() - coalesce(
           (SELECT max(changed_at) FROM opportunity_stage_history x
            WHERE x.opportunity_id = o.id AND x.to_stage_id = o.stage_id), o.created_at))
           / 86400.0,
       (SELECT count(days) FROM stays WHERE stage_id = o.stage_id),
       (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY days) FROM stays
        WHERE stage_id = o.stage_id AND days IS NOT NULL)
FROM opportunities o WHERE o.id = %s
"""


class InsightsAccountHealth(msgspec.Struct, frozen=True):
    account_id: int
    health: InsightsScore | None  # computed from service history, engagement and deals
    manual_override: int | None  # accounts.health_score when someone typed it
    # which one counts: a typed override wins over the computed value (None: neither yet)
    in_force: Literal["override", "computed"] | None = None


def _scope(entity: str) -> Any:
    async def check(req: Req, path: InsightsRecordPath) -> None:
        async with req.connection() as conn:
            await crm_store.get_record(conn, ENTITIES[entity], req.user, path.id)

    check.__name__ = f"{entity}_scope"
    return check


async def _score(req: Req, entity: str, record_id: int, model: str) -> InsightsScore | None:
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT model, model_version, score, reasons, computed_at, probability "
            "FROM insights_score WHERE entity = %s AND record_id = %s AND model = %s",
            (entity, record_id, model),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return InsightsScore(
        model=row[0],
        model_version=row[1],
        score=int(row[2]),
        reasons=msgspec.convert(row[3], list[InsightsReason]),
        computed_at=row[4],
        probability=row[5],
    )


@routes.get(
    f"{PREFIX}/leads/{{id}}/score",
    access=Access.read(scope=_scope("leads")),
    summary="A lead's 0-100 score, conversion probability, model version and top reasons",
)
async def lead_score(req: Req, path: InsightsRecordPath) -> InsightsLeadScore:
    return InsightsLeadScore(path.id, await _score(req, "leads", path.id, live.LEAD_MODEL))


@routes.get(
    f"{PREFIX}/opportunities/{{id}}/win",
    access=Access.read(scope=_scope("opportunities")),
    summary="An opportunity's model win probability beside its stage probability, and "
    "whether it is stalled (longer in its stage than 90% of past stays there)",
)
async def win_probability(req: Req, path: InsightsRecordPath) -> InsightsWinProbability:
    async with req.connection() as conn:
        cur = await conn.execute(_STALL_SQL, (path.id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"opportunity {path.id} not found")
    status, probability, days, stays, p90 = row
    known = int(stays) >= MIN_STAYS and p90 is not None
    return InsightsWinProbability(
        path.id,
        float(probability),
        await _score(req, "opportunities", path.id, live.WIN_MODEL),
        round(float(days), 2),
        round(float(p90), 2) if known else None,
        (status == "open" and float(days) > float(p90)) if known else None,
    )


class InsightsFunnelQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    by: Literal["source", "owner", "month"] = "source"


class InsightsFunnelRow(msgspec.Struct, frozen=True):
    key: str
    leads: int
    open: int  # new or contacted
    qualified: int  # qualified or converted
    unqualified: int
    converted: int
    conversion_rate: float | None  # (qualified + converted) / decided leads


class InsightsFunnel(msgspec.Struct, frozen=True):
    by: str
    items: list[InsightsFunnelRow]


_FUNNEL_KEYS = {
    "source": "t.source",
    "owner": "coalesce(t.owner_id::text, 'none')",
    "month": "to_char(t.created_at, 'YYYY-MM')",
}


@routes.get(
    f"{PREFIX}/leads/funnel",
    access=Access.read(unscoped="figures are computed over the leads the caller may see"),
    summary="Lead funnel: counts by status and the conversion rate by source, owner or month",
)
async def lead_funnel(req: Req, query: InsightsFunnelQuery) -> InsightsFunnel:
    acc, params = crm_store.scope(ENTITIES["leads"], req.user, "t")
    stmt = sql.SQL(
        """
        SELECT {key} AS k, count(*),
               count(*) FILTER (WHERE t.status IN ('new', 'contacted')),
               count(*) FILTER (WHERE t.status IN ('qualified', 'converted')),
               count(*) FILTER (WHERE t.status = 'unqualified'),
               count(*) FILTER (WHERE t.status = 'converted')
        FROM leads t WHERE {acc} GROUP BY 1 ORDER BY 1
        """
    ).format(key=sql.SQL(_FUNNEL_KEYS[query.by]), acc=acc)
    async with req.connection() as conn:
        cur = await conn.execute(stmt, params)
        rows = await cur.fetchall()
    return InsightsFunnel(
        query.by,
        [
            InsightsFunnelRow(str(k), n, o, q, u, c, round(q / (q + u), 4) if q + u else None)
            for k, n, o, q, u, c in rows
        ],
    )


@routes.get(
    f"{PREFIX}/accounts/{{id}}/health",
    access=Access.read(scope=_scope("accounts")),
    summary="An account's computed health with its components; a typed value is the override",
)
async def account_health(req: Req, path: InsightsRecordPath) -> InsightsAccountHealth:
    async with req.connection() as conn:
        cur = await conn.execute("SELECT health_score FROM accounts WHERE id = %s", (path.id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"account {path.id} not found")
    computed = await _score(req, "accounts", path.id, live.HEALTH_MODEL)
    override = None if row[0] is None else int(row[0])
    in_force: Literal["override", "computed"] | None = (
        "override" if override is not None else "computed" if computed is not None else None
    )
    return InsightsAccountHealth(path.id, computed, override, in_force)


class InsightsAccountChurn(msgspec.Struct, frozen=True):
    account_id: int
    # None until the churn model is active, and for accounts with no won deal (prospects)
    churn: InsightsScore | None
    outcome: str = (
        f"no won deal in the {live.CHURN_WINDOW_DAYS} days after (a lapsed customer), "
        "learned from the customers of that long ago with the facts known then"
    )


@routes.get(
    f"{PREFIX}/accounts/{{id}}/churn",
    access=Access.read(scope=_scope("accounts")),
    summary="An account's churn probability (0-100 score), model version and top reasons",
)
async def account_churn(req: Req, path: InsightsRecordPath) -> InsightsAccountChurn:
    return InsightsAccountChurn(path.id, await _score(req, "accounts", path.id, live.CHURN_MODEL))


class InsightsValue(msgspec.Struct, frozen=True):
    yearly_revenue: float  # won in the last 365 days
    retention: float  # yearly, from the churn model
    clv: float  # m * r / (1 + d - r), d = 10% (insights.segments)
    segment: str
    atypical: bool  # outside every dense group (DBSCAN)
    computed_at: datetime


class InsightsAccountValue(msgspec.Struct, frozen=True):
    account_id: int
    value: InsightsValue | None  # None for prospects and until the churn model is active


@routes.get(
    f"{PREFIX}/accounts/{{id}}/value",
    access=Access.read(scope=_scope("accounts")),
    summary="An account's customer lifetime value, retention and segment",
)
async def account_value(req: Req, path: InsightsRecordPath) -> InsightsAccountValue:
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT yearly_revenue, retention, clv, segment, atypical, computed_at "
            "FROM insights_account_value WHERE account_id = %s",
            (path.id,),
        )
        row = await cur.fetchone()
    return InsightsAccountValue(
        path.id,
        None
        if row is None
        else InsightsValue(
            round(float(row[0]), 2), round(float(row[1]), 4), round(float(row[2]), 2),
            row[3], bool(row[4]), row[5],
        ),
    )  # fmt: skip


class InsightsSegmentQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # with a segment: its member accounts too (segment membership as a filter)
    segment: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class InsightsSegmentRow(msgspec.Struct, frozen=True):
    segment: str
    accounts: int
    atypical: int
    yearly_revenue: float  # won in the last 365 days
    revenue_growth: float | None  # against the 365 days before (None: nothing then)
    mean_churn: float | None
    mean_clv: float


class InsightsSegments(msgspec.Struct, frozen=True):
    items: list[InsightsSegmentRow]
    members: list[int] | None  # account ids of the asked segment (at most 1000)


@routes.get(
    f"{PREFIX}/segments",
    access=Access.read(unscoped="figures are computed over the accounts the caller may see"),
    summary="Customer segments (K-means, named by profile) with size, revenue, growth, "
    "churn and lifetime value; with ?segment= its member accounts",
)
async def account_segments(req: Req, query: InsightsSegmentQuery) -> InsightsSegments:
    acc, params = crm_store.scope(ENTITIES["accounts"], req.user, "t")
    stmt = sql.SQL(
        """
        SELECT v.segment, count(*), count(*) FILTER (WHERE v.atypical), sum(v.yearly_revenue),
          sum((SELECT coalesce(sum(o.amount), 0) FROM opportunities o
               WHERE o.account_id = t.id AND o.status = 'won'
                 AND o.closed_at <= now() - interval '365 days'
                 AND o.closed_at > now() - interval '730 days')),
          avg(sc.probability), avg(v.clv)
        FROM insights_account_value v JOIN accounts t ON t.id = v.account_id
        LEFT JOIN insights_score sc ON sc.entity = 'accounts' AND sc.record_id = t.id
             AND sc.model = 'account-churn'
        WHERE {acc} GROUP BY 1 ORDER BY 1
        """
    ).format(acc=acc)
    members: list[int] | None = None
    async with req.connection() as conn:
        rows = await (await conn.execute(stmt, params)).fetchall()
        if query.segment is not None:
            mstmt = sql.SQL(
                "SELECT t.id FROM insights_account_value v JOIN accounts t ON t.id = v.account_id "
                "WHERE v.segment = %s AND {acc} ORDER BY t.id LIMIT 1000"
            ).format(acc=acc)
            cur = await conn.execute(mstmt, [query.segment, *params])
            members = [int(r[0]) for r in await cur.fetchall()]
    return InsightsSegments(
        [
            InsightsSegmentRow(
                str(seg), int(n), int(odd), round(float(rev), 2),
                round(float(rev) / float(prev) - 1.0, 4) if prev else None,
                None if churn is None else round(float(churn), 4), round(float(v), 2),
            )
            for seg, n, odd, rev, prev, churn, v in rows
        ],
        members,
    )  # fmt: skip


class InsightsTrainJob(msgspec.Struct, frozen=True):
    job_id: int
    status: str  # queued, running, done, failed
    model: str
    error: str | None = None  # `insufficient_data: ...` when refused for too little data
    poll: str = ""


class InsightsJobPath(msgspec.Struct, frozen=True):
    job_id: Annotated[int, msgspec.Meta(ge=1, le=2**62)]


@routes.post(
    f"{PREFIX}/train",
    access=Access.managers(unscoped="trains a tenant-wide model; answers no record data"),
    summary="Queue the training of a CRM model (the `jobs` role trains, then re-scores)",
    status=202,
)
async def train(req: Req, body: insights_jobs.InsightsTrainIn) -> InsightsTrainJob:
    async with req.connection() as conn:
        job_id = await jobs.enqueue(
            conn, insights_jobs.TRAIN_TASK, msgspec.to_builtins(body), max_attempts=1
        )
    return InsightsTrainJob(job_id, "queued", body.model, poll=f"{PREFIX}/train/{job_id}")


@routes.get(
    f"{PREFIX}/train/{{job_id}}",
    access=Access.managers(unscoped="training jobs concern tenant-wide models"),
    summary="A CRM model training job's state",
)
async def train_state(req: Req, path: InsightsJobPath) -> InsightsTrainJob:
    async with req.connection() as conn:
        row = await insights_jobs.job_state(conn, path.job_id, insights_jobs.TRAIN_TASK)
    if row is None:
        raise NotFound(f"no training job {path.job_id}", field="job_id")
    body = msgspec.convert(row[2], insights_jobs.InsightsTrainIn)
    return InsightsTrainJob(
        path.job_id, row[0], body.model, row[1], poll=f"{PREFIX}/train/{path.job_id}"
    )


class InsightsForecastQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    group_by: Literal["owner", "territory", "all"] = "owner"
    period: Literal["month", "quarter", "year"] = "month"
    periods: Annotated[int, msgspec.Meta(ge=1, le=24)] = 3
    win_rate_factor: Annotated[float, msgspec.Meta(ge=0.0, le=5.0)] = 1.0
    slip_months: Annotated[int, msgspec.Meta(ge=0, le=24)] = 0
    # what-if: pipeline amount created per month in each group from now on
    new_pipeline: Annotated[float, msgspec.Meta(ge=0.0, le=1e12)] = 0.0
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] | None = None


class InsightsForecastPeriod(msgspec.Struct, frozen=True):
    period: str  # YYYY-MM, YYYY-Qn or YYYY
    expected: float
    low: float
    high: float
    deals: int
    history_point: float | None
    history_low: float | None
    history_high: float | None
    from_new_pipeline: float  # the part of `expected` that the new pipeline adds
    won_to_date: float  # the current period's closed-won revenue so far, beside `expected`


class InsightsForecastPast(msgspec.Struct, frozen=True):
    period: str  # a whole period before the current one
    actual: float  # its closed-won revenue


class InsightsForecastGroup(msgspec.Struct, frozen=True):
    group: str
    name: str | None  # the owner's or territory's name
    periods: list[InsightsForecastPeriod]
    seasonal: bool | None
    trend_per_month: float | None
    win_rate: float | None  # won share of the amount closed (won or lost) in 36 months
    sales_cycle_days: float | None  # median days from creation to won
    past: list[InsightsForecastPast]  # closed-won revenue of the periods before, oldest first


class InsightsForecast(msgspec.Struct, frozen=True):
    group_by: str
    period: str
    win_rate_factor: float
    slip_months: int
    new_pipeline: float
    currency: str | None
    currencies: list[str]  # of the deals counted, most deals first (amounts not converted)
    items: list[InsightsForecastGroup]


@routes.get(
    f"{PREFIX}/forecast/pipeline",
    access=Access.read(unscoped="figures are computed over the opportunities the caller may see"),
    summary="Revenue forecast by month from the open pipeline (90% interval) and the "
    "closed-won history (trend, season), by owner or territory, with what-if scenarios "
    "(win rate, slippage, new pipeline per month)",
)
async def pipeline_forecast(req: Req, query: InsightsForecastQuery) -> InsightsForecast:
    async with req.connection() as conn:
        fc = await pipeline.pipeline_forecast(
            conn,
            req.user,
            today=datetime.now(UTC).date(),
            periods=query.periods,
            group_by=query.group_by,
            step={"month": 1, "quarter": 3, "year": 12}[query.period],
            win_rate_factor=query.win_rate_factor,
            slip_months=query.slip_months,
            new_pipeline=query.new_pipeline,
            currency=query.currency,
        )
    return InsightsForecast(
        query.group_by,
        query.period,
        query.win_rate_factor,
        query.slip_months,
        query.new_pipeline,
        query.currency,
        fc.currencies,
        [msgspec.convert(dataclasses.asdict(g), InsightsForecastGroup) for g in fc.groups],
    )


class InsightsAccuracyQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    group_by: Literal["all", "territory"] = "all"
    group_key: Annotated[str, msgspec.Meta(pattern=r"^(all|none|[0-9]{1,19})$")] = "all"
    # snapshots are per currency; omitted: the currency with the most snapshots
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] | None = None


class InsightsAccuracyMonth(msgspec.Struct, frozen=True):
    month: str
    taken_on: date
    expected: float
    low: float
    high: float
    actual: float
    error: float
    within_interval: bool


class InsightsAccuracy(msgspec.Struct, frozen=True):
    group_by: str
    group_key: str
    currency: str | None  # XXX: snapshots from before they were per currency
    currencies: list[str]  # with stored snapshots, the most snapshotted first
    mean_abs_error: float | None
    interval_coverage: float | None  # share of months whose actual fell in the interval
    items: list[InsightsAccuracyMonth]


@routes.get(
    f"{PREFIX}/forecast/accuracy",
    access=Access.admin(unscoped="snapshots are tenant-wide; admins see every record"),
    summary="Stored forecast snapshots against the closed-won revenue of each finished month",
)
async def forecast_accuracy(req: Req, query: InsightsAccuracyQuery) -> InsightsAccuracy:
    async with req.connection() as conn:
        currencies = await pipeline.snapshot_currencies(conn)
        currency = query.currency or (currencies[0] if currencies else None)
        rows = (
            await pipeline.accuracy(
                conn, datetime.now(UTC).date(), query.group_by, query.group_key, currency
            )
            if currency
            else []
        )
    items = [msgspec.convert(dataclasses.asdict(r), InsightsAccuracyMonth) for r in rows]
    n = len(items)
    return InsightsAccuracy(
        query.group_by,
        query.group_key,
        currency,
        currencies,
        round(sum(abs(i.error) for i in items) / n, 2) if n else None,
        round(sum(i.within_interval for i in items) / n, 4) if n else None,
        items,
    )


class InsightsDriftAlert(msgspec.Struct, frozen=True):
    model: str
    model_version: str
    feature: str  # `__score__`: the scores themselves
    psi: float  # population stability index, live against training (>= 0.25 raises)
    live_rows: int
    state: str  # raised, cleared
    raised_at: datetime
    checked_at: datetime


class InsightsDriftPage(msgspec.Struct, frozen=True):
    items: list[InsightsDriftAlert]


@routes.get(
    f"{PREFIX}/drift",
    access=Access.managers(unscoped="drift figures describe tenant-wide models, no record"),
    summary="Drift alerts: live inputs or scores that moved away from a model's training data",
)
async def drift(req: Req) -> InsightsDriftPage:
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT model, model_version, feature, psi, live_rows, state, raised_at, "
            "checked_at FROM insights_drift ORDER BY raised_at DESC, id DESC LIMIT 200"
        )
        rows = await cur.fetchall()
    return InsightsDriftPage([InsightsDriftAlert(*r) for r in rows])


def setup(app: web.Application) -> None:
    insights_jobs.subscribe()  # writes through this API queue their records' re-scoring
    record_scores.add_export_columns()  # the lists' score columns in their exports
    routes.mount(app)
    model_routes.routes.mount(app)  # the models' life cycle and batch scores
