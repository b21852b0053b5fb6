"""Revenue forecast from the open pipeline and the closed-won history, by owner or territory.

For each of the next `periods` months, quarters or years (`step` 1, 3 or 12 months; the
current one first) and each group (owner, territory, or all):

- **pipeline**: the open deals expected to close that month (a close date already past
  counts in the current month). Each deal wins with its probability: the model's win
  probability (`insights_score`, opportunity-win) when scored, else its stage probability.
  The expected revenue is the sum of probability x amount; the 90% interval comes from
  simulating the deals' outcomes as independent Bernoulli draws (seeded, so a forecast is
  reproducible).
- **past**: the group's closed-won revenue of the whole periods before the current one;
  the current period's revenue won so far is `won_to_date` (never part of `expected`).
- **history**: a statistical forecast of the group's monthly closed-won revenue
  (`insights.forecast`: season 12 tested, trend and a 90% interval), when the group has
  enough months of history; it is what the group's run rate says, pipeline or not.

What-if scenarios change the inputs: `win_rate_factor` multiplies every probability
(capped at 1), `slip_months` moves every open deal's close date later, and `new_pipeline`
adds pipeline not created yet:

- **new pipeline**: `new_pipeline` of pipeline amount is created in each group every month
  from the current one on. It converts at the group's **history win rate** (the won share
  of the amount of the deals closed won or lost over the same 36 months, times
  `win_rate_factor`, capped at 1) and closes one **sales cycle** after it is created (the
  median of the days from creation to closing of the group's won deals, rounded to whole
  months of 30.44 days). A month's new pipeline thus adds `new_pipeline x win rate` to the
  expected revenue of every month at least one cycle ahead; slippage moves only the
  deals already open. Its interval treats it as deals of the group's median won amount
  (at least one a month), each won with the win rate, drawn with the open deals. A group
  with no deal closed in the window has no win rate, and new pipeline adds nothing to it.

`currency`, when given, keeps only the deals in that currency; amounts in different
currencies are otherwise added as they are (the result lists the currencies it counted).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from psycopg import AsyncConnection, sql

from crm.entities import ENTITIES
from crm.store import scope
from insights import forecast as fc
from insights.maintenance.errors import InsufficientDataError
from kernel.principal import Principal

SIMULATIONS = 4000
SIM_BLOCK = 1_000_000  # random numbers drawn at once (8 MB)
HISTORY_MONTHS = 36
DAYS_PER_MONTH = 30.4375
PAST = {1: 12, 3: 4, 12: 2}  # at least this many whole periods of closed-won shown before


@dataclass(frozen=True, slots=True)
class MonthFigures:
    period: str  # YYYY-MM, YYYY-Qn or YYYY
    expected: float
    low: float  # 90% interval
    high: float
    deals: int
    history_point: float | None = None
    history_low: float | None = None
    history_high: float | None = None
    from_new_pipeline: float = 0.0  # the expected part that comes from `new_pipeline`
    won_to_date: float = 0.0  # the current period's closed-won revenue so far (not expected)


@dataclass(frozen=True, slots=True)
class PastFigures:
    period: str  # a whole period before the current one
    actual: float  # its closed-won revenue


@dataclass(frozen=True, slots=True)
class GroupForecast:
    group: str  # owner id, territory id, "all" or "none"
    periods: list[MonthFigures]
    seasonal: bool | None  # history: a yearly season was found
    trend_per_month: float | None  # history: fitted slope of monthly revenue
    name: str | None = None  # the owner's or territory's name
    win_rate: float | None = None  # won share of the amount closed in the history window
    sales_cycle_days: float | None = None  # median days from creation to won
    past: list[PastFigures] = field(default_factory=list)  # oldest first


@dataclass(frozen=True, slots=True)
class Forecast:
    groups: list[GroupForecast]
    currencies: list[str]  # of the deals counted, most deals first


def _month_index(d: date, start: date) -> int:
    return (d.year - start.year) * 12 + d.month - start.month


def _label(pstart: date, k: int, step: int) -> str:
    y, m = divmod(pstart.month - 1 + k * step, 12)
    if step == 12:
        return f"{pstart.year + y:04d}"
    if step == 3:
        return f"{pstart.year + y:04d}-Q{m // 3 + 1}"
    return f"{pstart.year + y:04d}-{m + 1:02d}"


async def pipeline_forecast(
    conn: AsyncConnection[Any],
    principal: Principal,
    *,
    today: date,
    periods: int,
    group_by: str,
    step: int = 1,
    win_rate_factor: float = 1.0,
    slip_months: int = 0,
    new_pipeline: float = 0.0,
    currency: str | None = None,
    seed: int = 0,
) -> Forecast:
    """The forecast of each group over the opportunities the principal may see."""
    if step not in (1, 3, 12):
        raise ValueError(f"step must be 1, 3 or 12 months, got {step}")
    if new_pipeline < 0:
        raise ValueError(f"new_pipeline must be at least 0, got {new_pipeline}")
    acc, acc_p = scope(ENTITIES["opportunities"], principal, "t")
    if currency is not None:
        acc = sql.SQL("{} AND t.currency = %s").format(acc)
        acc_p = [*acc_p, currency]
    key = {"owner": "t.owner_id", "territory": "t.territory_id"}.get(group_by)
    group_expr = sql.SQL(key if key else "NULL")
    start = today.replace(day=1)
    pstart = date(start.year, (start.month - 1) // step * step + 1, 1)
    offset = _month_index(start, pstart)  # months of the current period already gone
    window = _window(today)
    cur = await conn.execute(
        sql.SQL(
            """
            SELECT {g}::text, t.amount::float8, t.close_date, t.probability::float8 / 100,
                   s.probability
            FROM opportunities t
            LEFT JOIN insights_score s ON s.entity = 'opportunities' AND s.record_id = t.id
                 AND s.model = 'opportunity-win'
            WHERE t.status = 'open' AND {acc}
            """
        ).format(g=group_expr, acc=acc),
        acc_p,
    )
    open_rows = await cur.fetchall()
    cur = await conn.execute(
        sql.SQL(
            """
            SELECT {g}::text, date_trunc('month', t.closed_at)::date, sum(t.amount)::float8
            FROM opportunities t
            WHERE t.status = 'won' AND t.closed_at >= %s AND t.closed_at < %s AND {acc}
            GROUP BY 1, 2
            """
        ).format(g=group_expr, acc=acc),
        [*window, *acc_p],
    )
    won_rows = await cur.fetchall()
    cur = await conn.execute(
        sql.SQL(
            """
            SELECT {g}::text,
                   coalesce(sum(t.amount) FILTER (WHERE t.status = 'won'), 0)::float8,
                   coalesce(sum(t.amount), 0)::float8,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY greatest(
                       extract(epoch FROM t.closed_at - t.created_at), 0) / 86400)
                       FILTER (WHERE t.status = 'won'),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY t.amount)
                       FILTER (WHERE t.status = 'won')
            FROM opportunities t
            WHERE t.status IN ('won', 'lost') AND t.closed_at >= %s AND t.closed_at < %s
              AND {acc}
            GROUP BY 1
            """
        ).format(g=group_expr, acc=acc),
        [*window, *acc_p],
    )
    closed = {str(r[0]): r[1:] for r in await cur.fetchall()}
    cur = await conn.execute(
        sql.SQL(
            "SELECT {g}::text, sum(t.amount)::float8 FROM opportunities t "
            "WHERE t.status = 'won' AND t.closed_at >= %s AND {acc} GROUP BY 1"
        ).format(g=group_expr, acc=acc),
        [pstart, *acc_p],
    )
    so_far = {str(r[0]): float(r[1]) for r in await cur.fetchall()}
    currencies = await _currencies(conn, acc, acc_p, window)
    groups = sorted({str(r[0]) for r in open_rows} | {str(r[0]) for r in won_rows} | set(so_far))
    names = await _names(conn, group_by, groups)

    def simulate() -> list[GroupForecast]:
        return _simulate_groups(
            groups, open_rows, won_rows, closed, so_far, names, key is None,
            start=start, pstart=pstart, offset=offset, step=step, periods=periods,
            win_rate_factor=win_rate_factor, slip_months=slip_months,
            new_pipeline=new_pipeline, seed=seed,
        )  # fmt: skip

    # seconds of numpy for a large pipeline: off the event loop, which serves everyone
    return Forecast(await asyncio.to_thread(simulate), currencies)


def _simulate_groups(
    groups: list[str],
    open_rows: list[Any],
    won_rows: list[Any],
    closed: dict[str, Any],
    so_far: dict[str, float],
    names: dict[str, str],
    one_group: bool,
    *,
    start: date,
    pstart: date,
    offset: int,
    step: int,
    periods: int,
    win_rate_factor: float,
    slip_months: int,
    new_pipeline: float,
    seed: int,
) -> list[GroupForecast]:
    """Each group's simulated periods (pure numpy, bounded memory: `period_sums`)."""
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[Any]] = {}
    for r in open_rows:  # once: a scan of every row per group was quadratic in owners
        by_group.setdefault(str(r[0]), []).append(r)
    out: list[GroupForecast] = []
    for g in groups:
        deals = by_group.get(g, [])
        amount = np.array([r[1] for r in deals], dtype=np.float64)
        prob = np.array(
            [r[4] if r[4] is not None else r[3] for r in deals], dtype=np.float64
        ).reshape(-1)
        prob = np.clip(prob * win_rate_factor, 0.0, 1.0)
        month = np.array(
            [
                max(_month_index(r[2], start), 0) + slip_months if r[2] is not None else 0
                for r in deals
            ],
            dtype=np.int64,
        )
        period = (month + offset) // step
        sums = period_sums(rng, prob, amount, period, periods)  # (periods, SIMULATIONS)
        figures: list[MonthFigures] = []
        ahead = periods * step - offset  # months from the current one to the last period's end
        history = _history(g, won_rows, start, ahead)
        hist_period = (np.arange(ahead) + offset) // step
        new = _NewPipeline.of(closed.get(g), new_pipeline, win_rate_factor)
        for k in range(periods):
            sel = period == k
            sims = sums[k]
            new_expected = 0.0
            if new is not None:
                # months of this period (from the current one) at least one cycle ahead
                months = int(np.sum((hist_period == k) & (np.arange(ahead) >= new.cycle_months)))
                new_expected = new_pipeline * new.rate * months
                sims = sims + new.simulate(rng, months)
            hp = hl = hh = None
            if history is not None:
                hk = hist_period == k  # summed bounds: a conservative period interval
                hp = round(float(history.point[hk].sum()), 2)
                hl = round(float(history.lower[hk].sum()), 2)
                hh = round(float(history.upper[hk].sum()), 2)
            figures.append(
                MonthFigures(
                    period=_label(pstart, k, step),
                    expected=round(float((prob[sel] * amount[sel]).sum()) + new_expected, 2),
                    low=round(float(np.quantile(sims, 0.05)), 2),
                    high=round(float(np.quantile(sims, 0.95)), 2),
                    deals=int(sel.sum()),
                    history_point=hp,
                    history_low=hl,
                    history_high=hh,
                    from_new_pipeline=round(new_expected, 2),
                    won_to_date=round(so_far.get(g, 0.0), 2) if k == 0 else 0.0,
                )
            )
        stats = closed.get(g)
        out.append(
            GroupForecast(
                group="all" if one_group else ("none" if g == "None" else g),
                periods=figures,
                seasonal=None if history is None else history.seasonal,
                trend_per_month=None if history is None else round(history.trend, 2),
                name=names.get(g),
                win_rate=None if stats is None or not stats[1] else round(stats[0] / stats[1], 4),
                sales_cycle_days=None if stats is None or stats[2] is None else round(stats[2], 1),
                past=_past(g, won_rows, start, pstart, offset, step, max(periods, PAST[step])),
            )
        )
    return out


def period_sums(
    rng: np.random.Generator,
    prob: np.ndarray[Any, Any],
    amount: np.ndarray[Any, Any],
    period: np.ndarray[Any, Any],
    periods: int,
) -> np.ndarray[Any, Any]:
    """Won amount of each period in each of SIMULATIONS simulated outcomes (one draw per
    deal), shape (periods, SIMULATIONS). Drawn in blocks of simulations of at most
    SIM_BLOCK numbers: the same stream and figures as one draw of SIMULATIONS x deals,
    whose 8 bytes a number cost 640 MB for 20,000 open deals, on every request."""
    out = np.zeros((periods, SIMULATIONS), dtype=np.float64)
    rows = max(1, SIM_BLOCK // max(len(prob), 1))
    masks = [period == k for k in range(periods)]
    for first in range(0, SIMULATIONS, rows):
        last = min(first + rows, SIMULATIONS)
        wins = rng.random((last - first, len(prob))) < prob  # one simulated outcome per deal
        for k, sel in enumerate(masks):
            out[k, first:last] = (wins[:, sel] * amount[sel]).sum(axis=1)
    return out


@dataclass(frozen=True, slots=True)
class _NewPipeline:
    """A group's conversion of new pipeline: win rate (with the what-if factor), months
    from creation to close, and the amount of one simulated deal."""

    rate: float
    cycle_months: int
    deals_per_month: int
    deal_amount: float

    @classmethod
    def of(cls, stats: Any, amount: float, factor: float) -> _NewPipeline | None:
        if amount <= 0 or stats is None or not stats[1]:
            return None
        won, closed_amount, cycle_days, median_won = stats
        rate = min(won / closed_amount * factor, 1.0)
        n = max(1, round(amount / median_won)) if median_won else 1
        return cls(rate, round((cycle_days or 0.0) / DAYS_PER_MONTH), n, amount / n)

    def simulate(self, rng: np.random.Generator, months: int) -> np.ndarray[Any, Any]:
        wins = rng.binomial(self.deals_per_month * months, self.rate, SIMULATIONS)
        return wins.astype(np.float64) * self.deal_amount


async def _names(conn: AsyncConnection[Any], group_by: str, keys: list[str]) -> dict[str, str]:
    """The owners' or territories' names of the groups (`None`: unassigned)."""
    table = {"owner": "users", "territory": "territories"}.get(group_by)
    ids = [int(k) for k in keys if k.isdigit()]
    if table is None or not ids:
        return {}
    cur = await conn.execute(
        sql.SQL("SELECT id::text, name FROM {} WHERE id = ANY(%s)").format(sql.Identifier(table)),
        (ids,),
    )
    return {str(r[0]): str(r[1]) for r in await cur.fetchall() if r[1]}


def _past(
    g: str, won_rows: list[Any], start: date, pstart: date, offset: int, step: int, n: int
) -> list[PastFigures]:
    """The group's closed-won revenue of up to `n` whole periods before the current one,
    those inside the history window; none for a group that never won."""
    mine = {_month_index(r[1], start): float(r[2]) for r in won_rows if str(r[0]) == g}
    if not mine:
        return []
    out = []
    for k in range(-n, 0):
        first = k * step - offset  # the period's first month, counted from this one
        if first < -HISTORY_MONTHS:
            continue
        total = sum(mine.get(m, 0.0) for m in range(first, first + step))
        out.append(PastFigures(_label(pstart, k, step), round(total, 2)))
    return out


def _history(g: str, won_rows: list[Any], start: date, months: int) -> fc.Forecast | None:
    """Closed-won revenue of the group by month up to last month (zeros where nothing
    closed, from its first won month), forecast `months` ahead; None when too short."""
    mine = {_month_index(r[1], start): float(r[2]) for r in won_rows if str(r[0]) == g}
    if not mine:
        return None
    first = min(mine)
    series = [mine.get(k, 0.0) for k in range(first, 0)]
    season = 12 if len(series) >= 36 else 1
    try:
        return fc.forecast(series, months, season)
    except InsufficientDataError:
        return None


# ----------------------------------------------------------------------- snapshots

SYSTEM = Principal(
    user_id=0, email="insights@system", role="admin", territory_id=None,
    team_user_ids=(), team_territory_ids=(),
)  # fmt: skip


async def _currencies(
    conn: AsyncConnection[Any], acc: sql.Composable, acc_p: list[Any], window: list[date]
) -> list[str]:
    """The currencies of the deals a forecast counts (open, or won in its history window),
    most deals first: the currency a console shows when it must pick one."""
    cur = await conn.execute(
        sql.SQL(
            "SELECT t.currency::text FROM opportunities t "
            "WHERE (t.status = 'open' OR t.status = 'won' AND t.closed_at >= %s "
            "AND t.closed_at < %s) AND {acc} GROUP BY 1 ORDER BY count(*) DESC, 1"
        ).format(acc=acc),
        [*window, *acc_p],
    )
    return [str(r[0]) for r in await cur.fetchall()]


def _window(today: date) -> list[date]:
    """The closed-won history a forecast learns from: HISTORY_MONTHS up to this month."""
    start = today.replace(day=1)
    return [date(start.year - HISTORY_MONTHS // 12, start.month, 1), start]


async def snapshot(conn: AsyncConnection[Any], today: date, months: int = 3) -> int:
    """Store today's forecast of every territory and of the whole tenant, per currency;
    rows written."""
    n = 0
    acc, acc_p = scope(ENTITIES["opportunities"], SYSTEM, "t")
    # the same currencies pipeline_forecast lists, without simulating a forecast for them
    for currency in await _currencies(conn, acc, acc_p, _window(today)):
        for group_by in ("all", "territory"):
            forecast = await pipeline_forecast(
                conn, SYSTEM, today=today, periods=months, group_by=group_by, currency=currency
            )
            for g in forecast.groups:
                for m in g.periods:
                    await conn.execute(
                        """
                        INSERT INTO insights_forecast_snapshot
                            (taken_on, group_by, group_key, currency, month, expected, low,
                             high, history_point)
                        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                        ON CONFLICT (taken_on, group_by, group_key, currency, month)
                        DO UPDATE SET
                            expected = EXCLUDED.expected, low = EXCLUDED.low,
                            high = EXCLUDED.high, history_point = EXCLUDED.history_point
                        """,
                        (today, group_by, g.group, currency, m.period, m.expected, m.low,
                         m.high, m.history_point),
                    )  # fmt: skip
                    n += 1
    return n


async def snapshot_currencies(conn: AsyncConnection[Any]) -> list[str]:
    """The currencies with stored snapshots, the tenant's most used deal currency first."""
    cur = await conn.execute(
        """
        SELECT s.currency::text FROM (SELECT DISTINCT currency FROM insights_forecast_snapshot) s
        LEFT JOIN (SELECT currency, count(*) AS n FROM opportunities GROUP BY 1) o
            ON o.currency = s.currency
        ORDER BY coalesce(o.n, 0) DESC, 1
        """
    )
    return [r[0] for r in await cur.fetchall()]


@dataclass(frozen=True, slots=True)
class Accuracy:
    month: str
    taken_on: date  # the latest snapshot taken before the month began
    expected: float
    low: float
    high: float
    actual: float  # closed-won revenue of the month
    error: float  # actual - expected
    within_interval: bool


async def accuracy(
    conn: AsyncConnection[Any],
    today: date,
    group_by: str = "all",
    group_key: str = "all",
    currency: str = "XXX",
) -> list[Accuracy]:
    """For every finished month with a snapshot taken before it began: the forecast then
    against the closed-won revenue of the month, in `currency` (`XXX`: the snapshots taken
    before they were per currency, against the revenue of every currency)."""
    key = {"all": "'all'", "territory": "coalesce(o.territory_id::text, 'none')"}[group_by]
    cur = await conn.execute(
        sql.SQL(
            """
            WITH snap AS (
                SELECT DISTINCT ON (month) month, taken_on, expected, low, high
                FROM insights_forecast_snapshot
                WHERE group_by = %(by)s AND group_key = %(key)s AND currency = %(cur)s
                  AND taken_on < to_date(month || '-01', 'YYYY-MM-DD')
                  AND to_date(month || '-01', 'YYYY-MM-DD') + interval '1 month' <= %(today)s
                ORDER BY month, taken_on DESC
            ), won AS (
                SELECT to_char(o.closed_at, 'YYYY-MM') AS month, sum(o.amount)::float8 AS v
                FROM opportunities o
                WHERE o.status = 'won' AND {key} = %(key)s
                  AND (%(cur)s = 'XXX' OR o.currency = %(cur)s)
                GROUP BY 1
            )
            SELECT s.month, s.taken_on, s.expected, s.low, s.high, coalesce(w.v, 0)
            FROM snap s LEFT JOIN won w ON w.month = s.month ORDER BY s.month
            """
        ).format(key=sql.SQL(key)),
        {"by": group_by, "key": group_key, "cur": currency, "today": today},
    )
    return [
        Accuracy(m, t, e, lo, hi, a, round(a - e, 2), lo <= a <= hi)
        for m, t, e, lo, hi, a in await cur.fetchall()
    ]
