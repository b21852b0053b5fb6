"""Ready-made KPIs: field-service and sales measures with their definitions, each one SQL
statement in the database under the caller's record-level access (only rows they may see
count), over a period [since, until) of the KPI's own date.

Definitions (also served with each KPI, `GET /api/v1/kpis`):
- sla_attainment: of the work orders completed in the period that had an SLA due time,
  the share completed by it; per month of completion.
- mttr: mean time to repair, hours from a work order's creation to its completion, for
  those completed in the period; per priority.
- first_time_fix_rate: of the work orders completed in the period, the share after which
  the same account needed no other work order within 30 days (no repeat visit); per month.
- win_rate: of the deals closed in the period, won / (won + lost); per owner.
- cycle_time: mean days from a deal's creation to its close, for deals won in the
  period; per owner.
- time_in_stage: mean days a deal spent in each stage, from the stage history of changes in
  the period (time up to the next change; a deal still in a stage counts until now).
- quota_attainment: per rep and quota period overlapping the period asked for: the amount
  won (deals closed won in the quota's period and currency) over the quota, and pipeline
  coverage: the open deals expected to close in the rest of the quota period over what is
  left of the quota (below 1 the pipeline cannot make the quota even if all of it is won).
- stalled_deals: open deals whose stage has not changed for STALLED_DAYS days or more, with
  their value per currency (never added across currencies); per owner.
- technician_utilisation: per rep, the time on site (the phone's check-in to check-out and
  the geofence visits from the rep's GPS, merged) over the time available (the rep's shift
  on each working day: a day with a planned route or time on site), in the rep's time zone.
- travel_vs_onsite: per rep, hours on site, hours travelling (the phone's GPS moving at
  crm.kpis_field.MOVING_MPS or more, not on site; on a day without fixes, the time
  between stops), hours between stops (first arrival to last departure, less on-site time),
  the planned drive of the day's routes, and the travel share of travel plus on-site time.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from crm.entities import ENTITIES
from crm.kpis_field import MAX_FIX_GAP_S, MOVING_MPS, TRAVEL_SQL, UTILISATION_SQL
from crm.labels import label_sql
from crm.reports import ReportColumn, ReportResult, _plain
from crm.store import db_errors, scope
from kernel.principal import Principal

STALLED_DAYS = 30
_SLOTS = re.compile(r"%\((since|until)\)s|\{acc\}|\{users\}|\{reps\}")
_NAMED = re.compile(r"%\((since|until)\)s")
REPEAT_DAYS = 30


@dataclass(frozen=True, slots=True)
class Kpi:
    key: str
    title: str
    area: str  # "field service" or "sales"
    unit: str  # "%", "hours", "days", "deals"
    definition: str
    entity: str  # whose access clause applies (alias t)
    query: str  # {acc} the access clause; %(since)s, %(until)s the period
    columns: tuple[ReportColumn, ...]
    chart: str = "bar"


def _g(label: str) -> ReportColumn:
    return ReportColumn(label.lower().replace(" ", "_"), label, "group")


def _m(label: str) -> ReportColumn:
    return ReportColumn(label.lower().replace(" ", "_"), label, "measure")


def _f(label: str) -> ReportColumn:
    """A figure shown in the table beside the charted measures (another unit)."""
    return ReportColumn(label.lower().replace(" ", "_"), label, "field")


_OWNER = (
    f"coalesce((SELECT {label_sql('users', 'u')} FROM users u WHERE u.id = t.owner_id), 'no owner')"
)

KPIS: dict[str, Kpi] = {
    k.key: k
    for k in (
        Kpi(
            "sla_attainment",
            "SLA attainment",
            "field service",
            "%",
            "Of the work orders completed in the period that had an SLA due time, the share"
            " completed by it; per month of completion.",
            "work_orders",
            "SELECT date_trunc('month', t.completed_at)::date AS m,"
            " round(100.0 * count(*) FILTER (WHERE t.completed_at <= t.sla_due_at) / count(*), 1),"
            " count(*) FROM work_orders t WHERE t.status = 'done' AND t.sla_due_at IS NOT NULL"
            " AND t.completed_at >= %(since)s AND t.completed_at < %(until)s AND {acc}"
            " GROUP BY 1 ORDER BY 1",
            (_g("Month"), _m("SLA attainment %"), _m("Completed with an SLA")),
            "line",
        ),
        Kpi(
            "mttr",
            "Mean time to repair",
            "field service",
            "hours",
            "Hours from a work order's creation to its completion, averaged over those"
            " completed in the period; per priority.",
            "work_orders",
            "SELECT t.priority, round((avg(extract(epoch FROM t.completed_at - t.created_at))"
            " / 3600)::numeric, 1), count(*) FROM work_orders t WHERE t.status = 'done'"
            " AND t.completed_at >= %(since)s AND t.completed_at < %(until)s AND {acc}"
            " GROUP BY 1 ORDER BY array_position(ARRAY['urgent','high','normal','low'], t.priority)",
            (_g("Priority"), _m("MTTR hours"), _m("Completed")),
        ),
        Kpi(
            "first_time_fix_rate",
            "First-time fix rate",
            "field service",
            "%",
            f"Of the work orders completed in the period, the share after which the same"
            f" account needed no other work order within {REPEAT_DAYS} days; per month.",
            "work_orders",
            "SELECT date_trunc('month', t.completed_at)::date,"
            " round(100.0 * count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM work_orders n"
            " WHERE n.account_id = t.account_id AND n.id <> t.id AND n.status <> 'cancelled'"
            " AND n.created_at > t.completed_at"
            f" AND n.created_at <= t.completed_at + interval '{REPEAT_DAYS} days')) / count(*), 1),"
            " count(*) FROM work_orders t WHERE t.status = 'done'"
            " AND t.completed_at >= %(since)s AND t.completed_at < %(until)s AND {acc}"
            " GROUP BY 1 ORDER BY 1",
            (_g("Month"), _m("First-time fix %"), _m("Completed")),
            "line",
        ),
        Kpi(
            "technician_utilisation",
            "Technician utilisation",
            "field service",
            "%",
            "Per rep: the time on site (the phone's check-in to check-out and the geofence"
            " visits from the rep's GPS, a stop recorded both ways counted once) over the time"
            " available (the rep's shift, lunch included, on each working day: a day with a"
            " planned route or time on site), days in the rep's time zone. Above 100 % is"
            " overtime on site.",
            "users",
            UTILISATION_SQL,
            (  # charted: the percentage; the hours and days beside it in the table
                _g("Rep"),
                _m("Utilisation %"),
                _f("On-site hours"),
                _f("Shift hours"),
                _f("Working days"),
            ),
        ),
        Kpi(
            "travel_vs_onsite",
            "Travel vs on-site time",
            "field service",
            "hours",
            "Per rep over their working days: hours on site (as for utilisation); hours"
            f" travelling (the phone's GPS moving at {MOVING_MPS:g} m/s or more, fixes at most"
            f" {MAX_FIX_GAP_S // 60} minutes apart, not on site; on a day without GPS fixes, the"
            " time between stops); hours between stops"
            " (first arrival to last departure, less on-site time: driving, waiting, breaks);"
            " the planned drive to the day's routed stops; and the travel share of travel plus"
            " on-site time.",
            "users",
            TRAVEL_SQL,
            (
                _g("Rep"),
                _m("On-site hours"),
                _m("Travel hours"),
                _m("Between stops hours"),
                _m("Planned travel hours"),
                _f("Travel share %"),  # charted: the hours, on one axis
                _f("Working days"),
            ),
        ),
        Kpi(
            "win_rate",
            "Win rate",
            "sales",
            "%",
            "Of the deals closed in the period, won / (won + lost); per owner.",
            "opportunities",
            f"SELECT {_OWNER}, round(100.0 * count(*) FILTER (WHERE t.status = 'won')"
            " / count(*), 1), count(*) FROM opportunities t WHERE t.status IN ('won', 'lost')"
            " AND t.closed_at >= %(since)s AND t.closed_at < %(until)s AND {acc}"
            " GROUP BY 1 ORDER BY 1",
            (_g("Owner"), _m("Win rate %"), _m("Closed deals")),
        ),
        Kpi(
            "cycle_time",
            "Sales cycle time",
            "sales",
            "days",
            "Days from a deal's creation to its close, averaged over the deals won in the"
            " period; per owner.",
            "opportunities",
            f"SELECT {_OWNER}, round((avg(extract(epoch FROM t.closed_at - t.created_at))"
            " / 86400)::numeric, 1), count(*) FROM opportunities t WHERE t.status = 'won'"
            " AND t.closed_at >= %(since)s AND t.closed_at < %(until)s AND {acc}"
            " GROUP BY 1 ORDER BY 1",
            (_g("Owner"), _m("Cycle days"), _m("Won deals")),
        ),
        Kpi(
            "time_in_stage",
            "Time in stage",
            "sales",
            "days",
            "Days a deal spent in each stage, averaged, from the stage changes made in the"
            " period (time up to the deal's next change; a deal still in the stage counts"
            " until now).",
            "opportunities",
            "SELECT s.name, round((avg(extract(epoch FROM coalesce(h.left_at, now())"
            " - h.changed_at)) / 86400)::numeric, 1), count(*) FROM (SELECT x.opportunity_id,"
            " x.to_stage_id, x.changed_at, lead(x.changed_at) OVER (PARTITION BY"
            " x.opportunity_id ORDER BY x.changed_at, x.id) AS left_at"
            " FROM opportunity_stage_history x) h JOIN opportunities t ON t.id = h.opportunity_id"
            " JOIN pipeline_stages s ON s.id = h.to_stage_id"
            " WHERE NOT (s.is_won OR s.is_lost) AND h.changed_at >= %(since)s"
            " AND h.changed_at < %(until)s AND {acc} GROUP BY s.name, s.position"
            " ORDER BY s.position",
            (_g("Stage"), _m("Days in stage"), _m("Stage entries")),
        ),
        Kpi(
            "quota_attainment",
            "Quota attainment and pipeline coverage",
            "sales",
            "%",
            "Per rep and quota period overlapping the period: the amount won (deals closed won"
            " in the quota's period and currency) over the quota; pipeline coverage: open deals"
            " expected to close in the rest of the quota period over what is left of the quota"
            " (below 1, the quota cannot be made even if all of them are won).",
            "opportunities",
            "SELECT (SELECT u.name FROM users u WHERE u.id = q.user_id), q.currency,"
            " q.period_start, q.amount, w.won, round(100 * w.won / q.amount, 1), w.open,"
            " CASE WHEN q.amount > w.won THEN round(w.open / (q.amount - w.won), 2) END"
            " FROM sales_quotas q, LATERAL (SELECT"
            " coalesce(sum(t.amount) FILTER (WHERE t.status = 'won' AND t.closed_at >="
            " q.period_start AND t.closed_at < q.period_end), 0) AS won,"
            " coalesce(sum(t.amount) FILTER (WHERE t.status = 'open' AND t.close_date >="
            " greatest(q.period_start, current_date) AND t.close_date < q.period_end), 0) AS open"
            " FROM opportunities t WHERE t.owner_id = q.user_id AND t.currency = q.currency"
            " AND {acc}) w"
            " WHERE q.period_start < %(until)s AND q.period_end > %(since)s AND {users}"
            " ORDER BY 1, 3, 2",
            (
                _g("Rep"),
                ReportColumn("currency", "Currency", "currency"),
                _g("Quota period from"),
                ReportColumn("quota", "Quota", "measure", money=True),
                ReportColumn("won", "Won", "measure", money=True),
                _m("Attainment %"),
                ReportColumn("open", "Open pipeline", "measure", money=True),
                _m("Coverage"),
            ),
            "table",
        ),
        Kpi(
            "stalled_deals",
            "Stalled deals",
            "sales",
            "deals",
            f"Open deals whose stage has not changed for {STALLED_DAYS} days or more (since"
            " their last stage change, or creation), with their value per currency; per owner."
            " The period does not apply: this is the pipeline as it stands.",
            "opportunities",
            f"SELECT {_OWNER}, t.currency, count(*), sum(t.amount) FROM opportunities t"
            " WHERE t.status = 'open' AND coalesce((SELECT max(x.changed_at) FROM"
            " opportunity_stage_history x WHERE x.opportunity_id = t.id), t.created_at)"
            f" < now() - interval '{STALLED_DAYS} days' AND %(since)s::timestamptz IS NOT NULL"
            " AND {acc} GROUP BY 1, 2 ORDER BY 1, 2",
            (
                _g("Owner"),
                ReportColumn("currency", "Currency", "currency"),
                _m("Stalled deals"),
                ReportColumn("value", "Value", "measure", money=True),
            ),
            "table",
        ),
    )
}


async def run_kpi(
    conn: AsyncConnection[Any],
    principal: Principal,
    kpi: Kpi,
    since: dt.datetime,
    until: dt.datetime,
) -> ReportResult:
    """The KPI over [since, until), counting only rows the principal may see."""
    acc, acc_p = scope(ENTITIES[kpi.entity], principal)
    # quotas are the caller's own, their team's, or everyone's for those who see everything
    team = list(principal.team_user_ids)
    users = sql.SQL("TRUE" if principal.sees_everything else "q.user_id = ANY(%s)")
    reps = sql.SQL("TRUE" if principal.sees_everything else "q.id = ANY(%s)")
    params: list[Any] = []
    for m in _SLOTS.finditer(kpi.query):  # the values in the order the query names them
        if m.group(0) == "{acc}":
            params += acc_p
        elif m.group(0) in ("{users}", "{reps}"):
            params += [] if principal.sees_everything else [team]
        else:
            params.append(since if m.group(1) == "since" else until)
    query = sql.SQL(_NAMED.sub("%s", kpi.query)).format(acc=acc, users=users, reps=reps)
    async with db_errors():
        rows = await (await conn.execute(query, params)).fetchall()
    return ReportResult(
        kpi.key,
        kpi.chart,
        list(kpi.columns),
        [[_plain(v) for v in r] for r in rows],
        False,
        dt.datetime.now(dt.UTC),
    )
