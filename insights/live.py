"""Scores of live CRM records: lead score, opportunity win probability, account health.

Models are trained from the CRM's own tables (`train`), versioned and activated through
the maintenance registry (`maintenance_model`, artefacts under the state directory), and
applied to one record (`score_record`) or all of them (`rescore`). Every score is stored
in `insights_score` with the model version and its top reasons.

- **lead-score**: labels are leads that reached `qualified` or `converted` (positive) or
  ended `unqualified` (negative), in creation order; features are what a lead says about itself (source,
  region, estimated amount, which contact fields it has, title seniority).
- **opportunity-win**: closed opportunities, `won` against `lost`; features are the deal
  (amount, competitors, planned length), the furthest open stage it reached before closing
  (its current stage while open), its account's type and its lead's source.
- **account-health** is computed, not trained: a base of 80 moved by the account's service
  history (open alerts on its assets, work orders past their SLA, an overdue visit),
  engagement (done activities in the last 90 days) and deals won or lost in the last year.
  Each component is a reason. A typed `accounts.health_score` stays as a visible override.

Reasons of the trained models are feature contributions by occlusion (`insights.tabular`:
each feature set to its training reference, the change in log-odds).

Synchronous (psycopg): the jobs run these in a thread.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # pandas 3 has no stubs package yet
import psycopg
from psycopg.types.json import Jsonb

from insights import segments
from insights.cards import binary_metrics
from insights.drift import DriftReference
from insights.maintenance import registry
from insights.maintenance.errors import InsufficientDataError, ModelNotFoundError
from insights.tabular import (
    FloatArray,
    TabularConfig,
    TabularModel,
    fit_tabular,
    time_ordered_cv,
)

log = logging.getLogger(__name__)

LEAD_MODEL = "lead-score"
WIN_MODEL = "opportunity-win"
CHURN_MODEL = "account-churn"
HEALTH_MODEL = "account-health"
HEALTH_VERSION = "health-rules-1"
MODELS = {"leads": LEAD_MODEL, "opportunities": WIN_MODEL}
DRIFT_MODELS = {**MODELS, "accounts": CHURN_MODEL}  # the trained models drift is checked for
ENTITY_OF = {LEAD_MODEL: "leads", WIN_MODEL: "opportunities", CHURN_MODEL: "accounts"}
TOP_REASONS = 3
HEALTH_DROP_ACTIVITY = 15  # points: a drop this large leaves a task for the owner

_SENIOR = re.compile(r"\b(ceo|cto|cfo|coo|chief|vp|vice|president|director|head|owner|founder)\b")
_MANAGER = re.compile(r"\b(manager|lead|supervisor|principal)\b")


def title_level(title: object) -> str:
    t = str(title or "").lower()
    if not t.strip():
        return "none"
    if _SENIOR.search(t):
        return "executive"
    if _MANAGER.search(t):
        return "manager"
    return "staff"


LEAD_CONFIG = TabularConfig(
    numeric=("log_amount", "has_email", "has_phone", "has_company", "has_address"),
    categorical=("source", "region", "title_level"),
    max_iter=150,
    min_samples_leaf=10,
    min_rows=60,
    min_positives=10,
)
WIN_CONFIG = TabularConfig(
    numeric=("log_amount", "n_competitors", "planned_days", "stage_position", "from_lead"),
    categorical=("account_type", "lead_source"),
    max_iter=150,
    min_samples_leaf=10,
    min_rows=60,
    min_positives=10,
)
CHURN_CONFIG = TabularConfig(
    numeric=(
        "tenure_days",
        "days_since_won",
        "won_365",
        "log_won_amount_365",
        "lost_365",
        "activities_90",
        "work_orders_365",
        "sla_breaches_365",
    ),
    categorical=("account_type",),
    max_iter=150,
    min_samples_leaf=10,
    min_rows=60,
    min_positives=10,
)
CONFIGS = {LEAD_MODEL: LEAD_CONFIG, WIN_MODEL: WIN_CONFIG, CHURN_MODEL: CHURN_CONFIG}
# churn: the outcome window. An account is a customer at a date when it has a won deal
# closed before it; it churned when it won nothing in the CHURN_WINDOW_DAYS after.
CHURN_WINDOW_DAYS = 180
# Training origins: the customers of CHURN_WINDOW_DAYS ago, and of every
# CHURN_ORIGIN_STEP_DAYS before that (CHURN_ORIGINS dates in all), each with the facts known
# then and its own outcome. One date alone gave a small tenant too few rows for years (the
# demo world's year of history: 20 customers on the one date, 60 needed); an account is a
# row per date, as a customer's situation and outcome change. The outcome windows of
# neighbouring dates overlap, so the time-ordered validation is somewhat optimistic.
CHURN_ORIGINS = 6
CHURN_ORIGIN_STEP_DAYS = 30


def churn_origins(now: datetime) -> list[datetime]:
    """The churn model's training dates, oldest first."""
    return [
        now - timedelta(days=CHURN_WINDOW_DAYS + k * CHURN_ORIGIN_STEP_DAYS)
        for k in reversed(range(CHURN_ORIGINS))
    ]


_LEADS_SQL = """
SELECT id, source, coalesce(region, '') AS region, estimated_amount, email, phone, company,
       title, address, status, created_at
FROM leads {where} ORDER BY created_at, id
"""
_OPPS_SQL = """
SELECT o.id, o.amount, cardinality(o.competitors) AS n_competitors,
       coalesce(o.close_date - o.created_at::date, 0) AS planned_days,
       coalesce((SELECT max(s.position) FROM opportunity_stage_history h
                 JOIN pipeline_stages s ON s.id = h.to_stage_id
                 WHERE h.opportunity_id = o.id AND NOT s.is_won AND NOT s.is_lost), 1)
           AS stage_position,
       (o.lead_id IS NOT NULL)::int AS from_lead,
       a.type AS account_type, coalesce(l.source, 'none') AS lead_source,
       o.status, o.created_at
FROM opportunities o JOIN accounts a ON a.id = o.account_id
LEFT JOIN leads l ON l.id = o.lead_id {where} ORDER BY o.created_at, o.id
"""


# account facts as of a date %(t)s (nothing after it): the churn model's features
_ACCOUNTS_SQL = """
SELECT a.id, a.type AS account_type,
  extract(epoch FROM %(t)s - min(o.closed_at) FILTER (WHERE o.status = 'won')) / 86400.0
      AS tenure_days,
  extract(epoch FROM %(t)s - max(o.closed_at) FILTER (WHERE o.status = 'won')) / 86400.0
      AS days_since_won,
  count(*) FILTER (WHERE o.status = 'won' AND o.closed_at > %(t)s - interval '365 days')
      AS won_365,
  coalesce(sum(o.amount) FILTER (WHERE o.status = 'won'
      AND o.closed_at > %(t)s - interval '365 days'), 0) AS won_amount_365,
  count(*) FILTER (WHERE o.status = 'lost' AND o.closed_at > %(t)s - interval '365 days')
      AS lost_365,
  (SELECT count(*) FROM activities t WHERE t.account_id = a.id AND t.status = 'done'
     AND coalesce(t.completed_at, t.end_at, t.updated_at) <= %(t)s
     AND coalesce(t.completed_at, t.end_at, t.updated_at) > %(t)s - interval '90 days')
      AS activities_90,
  (SELECT count(*) FROM work_orders w WHERE w.account_id = a.id AND w.created_at <= %(t)s
     AND w.created_at > %(t)s - interval '365 days') AS work_orders_365,
  (SELECT count(*) FROM work_orders w WHERE w.account_id = a.id AND w.sla_due_at IS NOT NULL
     AND w.sla_due_at <= %(t)s AND w.sla_due_at > %(t)s - interval '365 days'
     AND (w.completed_at IS NULL OR w.completed_at > w.sla_due_at)) AS sla_breaches_365,
  (SELECT count(*) FROM opportunities x WHERE x.account_id = a.id AND x.status = 'won'
     AND x.closed_at > %(t)s AND x.closed_at <= %(t)s + make_interval(days => %(w)s))
      AS won_after
FROM accounts a JOIN opportunities o ON o.account_id = a.id AND o.closed_at <= %(t)s
{where}
GROUP BY a.id, a.type
HAVING count(*) FILTER (WHERE o.status = 'won') > 0
ORDER BY a.id
"""


def account_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Churn features from account facts (`_ACCOUNTS_SQL` rows)."""
    out = pd.DataFrame(index=raw.index)
    for c in CHURN_CONFIG.numeric:
        if c == "log_won_amount_365":
            amount = pd.to_numeric(raw["won_amount_365"], errors="coerce").astype(np.float64)
            out[c] = np.log1p(amount.clip(lower=0))
        else:
            out[c] = pd.to_numeric(raw[c], errors="coerce").astype(np.float64)
    out["account_type"] = raw["account_type"].astype(str)
    return out


def _accounts(conn: psycopg.Connection[Any], at: datetime, ids: list[int] | None) -> pd.DataFrame:
    where = "" if ids is None else "WHERE a.id = ANY(%(ids)s)"
    cur = conn.execute(
        _ACCOUNTS_SQL.format(where=where),
        {"t": at, "w": CHURN_WINDOW_DAYS, "ids": ids},
    )
    cols = [d.name for d in cur.description or ()]
    return pd.DataFrame(cur.fetchall(), columns=cols)


def _rows(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> pd.DataFrame:
    cur = conn.execute(query, params)
    cols = [d.name for d in cur.description or ()]
    return pd.DataFrame(cur.fetchall(), columns=cols)


def lead_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Lead features from `leads` rows."""
    out = pd.DataFrame(index=raw.index)
    amount = pd.to_numeric(raw["estimated_amount"], errors="coerce").astype(np.float64)
    out["log_amount"] = np.log1p(amount.clip(lower=0))
    for col in ("email", "phone", "company", "address"):
        out[f"has_{col}"] = raw[col].map(lambda v: float(bool(str(v or "").strip())))
    out["source"] = raw["source"].astype(str)
    out["region"] = raw["region"].astype(str).str.lower().str.strip()
    out["title_level"] = raw["title"].map(title_level)
    return out


def opportunity_frame(raw: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=raw.index)
    amount = pd.to_numeric(raw["amount"], errors="coerce").astype(np.float64)
    out["log_amount"] = np.log1p(amount.clip(lower=0))
    for c in ("n_competitors", "planned_days", "stage_position", "from_lead"):
        out[c] = pd.to_numeric(raw[c], errors="coerce").astype(np.float64)
    out["account_type"] = raw["account_type"].astype(str)
    out["lead_source"] = raw["lead_source"].astype(str)
    return out


def labelled(
    conn: psycopg.Connection[Any], model: str
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Training rows of a model from the CRM tables, oldest first, their labels, and the
    drift reference: the inputs live scoring is compared with later."""
    if model == LEAD_MODEL:
        where = "WHERE status IN ('qualified', 'converted', 'unqualified')"
        raw = _rows(conn, _LEADS_SQL.format(where=where), ())
        x = lead_frame(raw)
        return x, (raw["status"] != "unqualified").to_numpy(dtype=bool), x
    if model == WIN_MODEL:
        raw = _rows(conn, _OPPS_SQL.format(where="WHERE o.status IN ('won', 'lost')"), ())
        x = opportunity_frame(raw)
        return x, (raw["status"] == "won").to_numpy(dtype=bool), x
    if model == CHURN_MODEL:
        # the customers on each training date, with the facts known then; churned: no
        # won deal in the window after (a lapsed customer: no renewal, no new business)
        now = datetime.now(UTC)
        frames = [f for f in (_accounts(conn, at, None) for at in churn_origins(now)) if len(f)]
        if not frames:
            return pd.DataFrame(), np.zeros(0, dtype=bool), pd.DataFrame()
        raw = pd.concat(frames, ignore_index=True)
        y = pd.to_numeric(raw["won_after"]).to_numpy() == 0
        # The drift reference: today's customers as the model is trained. Its labelled
        # rows are at least half a year old by construction, and a young tenant's
        # customers grow older and its pipeline bigger in that time, which is no drift of
        # the population the model scores; an alert says the customers changed since.
        today = _accounts(conn, now, None)
        ref = account_frame(today) if len(today) else account_frame(frames[-1])
        return account_frame(raw), y, ref
    raise ValueError(f"unknown model {model!r}")


@dataclass(frozen=True, slots=True)
class TrainResult:
    name: str
    version: str
    metrics: dict[str, float]
    activated: bool = True


def chosen_by_person(conn: psycopg.Connection[Any], model: str) -> bool:
    """Whether a person chose the model's active version (through the API or the command
    line, e.g. a rollback), not a training run."""
    row = conn.execute(
        "SELECT x.activated_via <> 'training' FROM insights_model_activation x "
        "JOIN maintenance_model m ON m.name = x.model AND m.version = x.version AND m.active "
        "WHERE x.model = %s ORDER BY x.activated_at DESC, x.id DESC LIMIT 1",
        (model,),
    ).fetchone()
    return bool(row and row[0])


def train(
    conn: psycopg.Connection[Any], model: str, models_dir: Path, *, activate: bool = True
) -> TrainResult:
    """Train a model on the CRM's labelled records, record and (unless `activate` is False)
    activate its version. Too little data raises InsufficientDataError with the reason
    (nothing is recorded)."""
    cfg = CONFIGS[model]
    x, y, ref = labelled(conn, model)
    if x.empty:
        raise InsufficientDataError(f"{model}: no labelled records yet")

    # validation folds train on the older part only: a smaller floor there (the model
    # itself still needs cfg.min_rows)
    fold_cfg = dataclasses.replace(cfg, min_rows=max(30, cfg.min_rows // 2), min_positives=5)

    def fit(d: pd.DataFrame, yy: np.ndarray) -> Any:
        m = fit_tabular(d, yy, fold_cfg, name=model, kind=model)
        return m.predict_proba

    fitted = fit_tabular(
        x, y, cfg, name=model, kind=model, data={"source": "crm", "window": _window(conn, model)}
    )
    metrics: dict[str, float] = {}
    try:  # time-ordered validation when the older part alone is enough to train on
        cv = time_ordered_cv(x, y, fit, folds=3, first_share=0.5)
        metrics = {f"cv_{k}": float(v) for k, v in cv.metrics.items() if math.isfinite(v)}
        fitted.threshold = float(cv.metrics["threshold"])
    except InsufficientDataError as exc:
        log.info("%s: no time-ordered validation (%s)", model, exc)
        metrics = {
            f"train_{k}": float(v)
            for k, v in binary_metrics(fitted.predict_proba(x), y).items()
            if math.isfinite(v)
        }
    fitted.card = fitted.card.with_metrics(**metrics)
    fitted.drift = DriftReference.of(
        ref[list(cfg.columns)], cfg.numeric + cfg.context, fitted.predict_proba(ref)
    )
    path = registry.ModelStore(models_dir).save(fitted)
    registry.record(conn, fitted.card, path)
    if activate:
        registry.activate(conn, fitted.card.name, fitted.card.version)
    return TrainResult(model, fitted.card.version, metrics, activate)


def _window(conn: psycopg.Connection[Any], model: str) -> str:
    if model == CHURN_MODEL:
        dates = churn_origins(datetime.now(UTC))
        return (
            f"customers on {dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d} (every "
            f"{CHURN_ORIGIN_STEP_DAYS} days), outcome over the {CHURN_WINDOW_DAYS} days after"
        )
    table = "leads" if model == LEAD_MODEL else "opportunities"
    row = conn.execute(f"SELECT min(created_at), max(created_at) FROM {table}").fetchone()
    return f"{row[0]} .. {row[1]}" if row else ""


# ----------------------------------------------------------------------- applying

_cache: dict[str, tuple[str, TabularModel]] = {}


def active_model(conn: psycopg.Connection[Any], name: str) -> TabularModel | None:
    """The active version of a model (cached per process by version), or None."""
    row = conn.execute(
        "SELECT version, artifact_path FROM maintenance_model WHERE name = %s AND active",
        (name,),
    ).fetchone()
    if row is None:
        return None
    hit = _cache.get(name)
    if hit is not None and hit[0] == row[0]:
        return hit[1]
    try:
        model = registry.load_artifact(Path(row[1]))
    except ModelNotFoundError as exc:
        log.warning("model %s %s not loaded: %s", name, row[0], exc)
        return None
    _cache[name] = (str(row[0]), model)
    return model  # type: ignore[no-any-return]


def _store(
    conn: psycopg.Connection[Any],
    entity: str,
    ids: list[int],
    model: str,
    version: str,
    probs: list[float | None],
    scores: list[int],
    reasons: list[list[dict[str, Any]]],
) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO insights_score
                (entity, record_id, model, model_version, probability, score, reasons)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (entity, record_id, model) DO UPDATE SET
                model_version = EXCLUDED.model_version, probability = EXCLUDED.probability,
                score = EXCLUDED.score, reasons = EXCLUDED.reasons, computed_at = now()
            """,
            [
                (entity, i, model, version, p, s, Jsonb(r))
                for i, p, s, r in zip(ids, probs, scores, reasons, strict=True)
            ],
        )


def _live(
    conn: psycopg.Connection[Any], entity: str, ids: list[int] | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw rows and model features of these records (every open one when `ids` is None)."""
    params: tuple[Any, ...] = () if ids is None else (ids,)
    if entity == "leads":
        where = "WHERE status IN ('new', 'contacted')" if ids is None else "WHERE id = ANY(%s)"
        raw = _rows(conn, _LEADS_SQL.format(where=where), params)
        return raw, lead_frame(raw)
    where = "WHERE o.status = 'open'" if ids is None else "WHERE o.id = ANY(%s)"
    raw = _rows(conn, _OPPS_SQL.format(where=where), params)
    return raw, opportunity_frame(raw)


@dataclass(frozen=True, slots=True)
class DriftAlert:
    model: str
    version: str
    feature: str
    psi: float
    live_rows: int


def check_drift(conn: psycopg.Connection[Any], entity: str) -> list[DriftAlert]:
    """Compare the open records' inputs and scores with the active model's training data;
    raise a drift alert (once per model version and feature while raised) for every PSI at
    or above its alert level (ALERT_PSI above the chance level of samples that size), clear
    the ones back below it. The newly raised alerts."""
    name = DRIFT_MODELS[entity]
    model = active_model(conn, name)
    if model is None or model.drift is None:
        return []
    if entity == "accounts":
        x = account_frame(_accounts(conn, datetime.now(UTC), None))
    else:
        _, x = _live(conn, entity, None)
    if x.empty:
        return []
    figures = model.drift.check(x, model.predict_proba(x))
    raised: list[DriftAlert] = []
    for feature, value in figures.items():
        if value >= model.drift.alert_level(feature, len(x)):
            row = conn.execute(
                """
                INSERT INTO insights_drift (model, model_version, feature, psi, live_rows)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (model, model_version, feature) WHERE state = 'raised'
                DO UPDATE SET psi = EXCLUDED.psi, live_rows = EXCLUDED.live_rows,
                              checked_at = now()
                RETURNING (xmax = 0)
                """,
                (name, model.card.version, feature, value, len(x)),
            ).fetchone()
            if row is not None and row[0]:
                alert = DriftAlert(name, model.card.version, feature, value, len(x))
                log.warning("drift: %s", alert)
                raised.append(alert)
        else:
            conn.execute(
                "UPDATE insights_drift SET state = 'cleared', psi = %s, checked_at = now() "
                "WHERE model = %s AND model_version = %s AND feature = %s AND state = 'raised'",
                (value, name, model.card.version, feature),
            )
    return raised


def score_records(conn: psycopg.Connection[Any], entity: str, ids: list[int] | None) -> int:
    """Score these records (all open ones when `ids` is None) with the active model;
    0 when no model is active yet. Returns how many were scored."""
    if entity == "accounts":
        n = health_records(conn, ids)
        churn_records(conn, ids)
        return n
    name = MODELS[entity]
    model = active_model(conn, name)
    if model is None:
        return 0
    raw, x = _live(conn, entity, ids)
    if raw.empty:
        return 0
    p = model.predict_proba(x)
    why = model.reasons(x, top=TOP_REASONS)
    _store(
        conn,
        entity,
        [int(i) for i in raw["id"]],
        name,
        model.card.version,
        [float(v) for v in p],
        [round(float(v) * 100) for v in p],
        [
            [{"feature": r.feature, "value": r.value, "contribution": r.contribution} for r in rs]
            for rs in why
        ],
    )
    return len(raw)


def churn_records(conn: psycopg.Connection[Any], ids: list[int] | None) -> int:
    """Churn probability of these accounts (every customer when None) from today's facts
    with the active churn model; 0 when none is active. Accounts with no won deal yet are
    prospects, not customers, and get no churn score."""
    model = active_model(conn, CHURN_MODEL)
    if model is None:
        return 0
    raw = _accounts(conn, datetime.now(UTC), ids)
    if raw.empty:
        return 0
    x = account_frame(raw)
    p = model.predict_proba(x)
    why = model.reasons(x, top=TOP_REASONS)
    _store(
        conn,
        "accounts",
        [int(i) for i in raw["id"]],
        CHURN_MODEL,
        model.card.version,
        [float(v) for v in p],
        [round(float(v) * 100) for v in p],
        [
            [{"feature": r.feature, "value": r.value, "contribution": r.contribution} for r in rs]
            for rs in why
        ],
    )
    if ids is None:  # the whole customer base: lifetime values and segments with it
        value_records(conn, raw, x, p)
    return len(raw)


def value_records(
    conn: psycopg.Connection[Any], raw: pd.DataFrame, x: pd.DataFrame, churn: FloatArray
) -> int:
    """Lifetime value and segment of every customer (`insights.segments`) from today's
    facts and churn probabilities. The previous run's rows are updated in place (an
    account no longer a customer loses its row), so a row's segment changes only when the
    account's membership does: `segment.entered` / `segment.left` workflows read exactly
    those changes (automation's capture trigger on this table)."""
    profile = pd.DataFrame(
        {
            "log_revenue": x["log_won_amount_365"].to_numpy(),
            "won_365": x["won_365"].to_numpy(),
            "activities_90": x["activities_90"].to_numpy(),
            "days_since_won": x["days_since_won"].to_numpy(),
            "churn": churn,
        }
    )
    seg = segments.segment(profile)
    revenue = pd.to_numeric(raw["won_amount_365"]).astype(np.float64).to_numpy()
    # the churn model's outcome window is half a year: a yearly retention is its square
    retention = np.clip((1.0 - churn) ** (365.0 / CHURN_WINDOW_DAYS), 0.0, 1.0)
    rows = [
        (int(i), float(m), float(r), segments.clv(float(m), float(r)), name, bool(odd))
        for i, m, r, name, odd in zip(
            raw["id"], revenue, retention, seg.labels, seg.atypical, strict=True
        )
    ]
    conn.execute(
        "DELETE FROM insights_account_value WHERE NOT (account_id = ANY(%s))",
        ([r[0] for r in rows],),
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO insights_account_value "
            "(account_id, yearly_revenue, retention, clv, segment, atypical) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (account_id) DO UPDATE SET "
            "yearly_revenue = EXCLUDED.yearly_revenue, retention = EXCLUDED.retention, "
            "clv = EXCLUDED.clv, segment = EXCLUDED.segment, atypical = EXCLUDED.atypical, "
            "computed_at = now()",
            rows,
        )
    return len(rows)


# ----------------------------------------------------------------------- account health

_HEALTH_SQL = """
SELECT a.id, a.owner_id, a.visit_frequency_days, a.last_visit_at,
  (SELECT count(*) FROM alerts al JOIN assets s ON s.device_id = al.device_id
     WHERE s.account_id = a.id AND al.state <> 'cleared') AS open_alerts,
  (SELECT count(*) FROM work_orders w WHERE w.account_id = a.id AND w.sla_due_at IS NOT NULL
     AND ((w.status NOT IN ('done', 'cancelled') AND w.sla_due_at < now())
          OR (w.status = 'done' AND w.completed_at > w.sla_due_at
              AND w.completed_at > now() - interval '365 days'))) AS sla_breaches,
  (SELECT count(*) FROM activities t WHERE t.account_id = a.id AND t.status = 'done'
     AND coalesce(t.completed_at, t.end_at, t.updated_at) > now() - interval '90 days') AS recent_activities,
  (SELECT count(*) FROM opportunities o WHERE o.account_id = a.id AND o.status = 'won'
     AND o.closed_at > now() - interval '365 days') AS won,
  (SELECT count(*) FROM opportunities o WHERE o.account_id = a.id AND o.status = 'lost'
     AND o.closed_at > now() - interval '365 days') AS lost,
  (SELECT score FROM insights_score sc WHERE sc.entity = 'accounts' AND sc.record_id = a.id
     AND sc.model = 'account-health') AS previous
FROM accounts a {where}
"""


def health_of(row: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """Health 0-100 of one account and the components that moved it from the base of 80,
    largest first."""
    parts: list[tuple[str, str, float]] = []
    alerts = int(row["open_alerts"])
    if alerts:
        parts.append(("open_alerts", str(alerts), -min(30.0, 10.0 * alerts)))
    breaches = int(row["sla_breaches"])
    if breaches:
        parts.append(("sla_breaches", str(breaches), -min(30.0, 10.0 * breaches)))
    freq, last = row["visit_frequency_days"], row["last_visit_at"]
    if freq and last is not None:
        from datetime import UTC, datetime

        overdue = (datetime.now(UTC) - last).days - int(freq)
        if overdue > 0:
            parts.append(("visit_overdue_days", str(overdue), -min(20.0, 5.0 + overdue / 7)))
    acts = int(row["recent_activities"])
    parts.append(("activities_90d", str(acts), min(10.0, 2.0 * acts) if acts else -10.0))
    won, lost = int(row["won"]), int(row["lost"])
    if won or lost:
        parts.append(
            ("deals_won_lost_365d", f"{won}/{lost}", min(10.0, 5.0 * won) - min(10.0, 5.0 * lost))
        )
    score = round(min(100.0, max(0.0, 80.0 + sum(p[2] for p in parts))))
    parts.sort(key=lambda p: -abs(p[2]))
    return score, [{"feature": f, "value": v, "contribution": c} for f, v, c in parts]


def health_records(conn: psycopg.Connection[Any], ids: list[int] | None) -> int:
    """Compute and store the health of these accounts (all when None); a drop of
    HEALTH_DROP_ACTIVITY points or more leaves an open task for the account's owner."""
    where = "" if ids is None else "WHERE a.id = ANY(%s)"
    cur = conn.execute(_HEALTH_SQL.format(where=where), () if ids is None else (ids,))
    cols = [d.name for d in cur.description or ()]
    rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    out_ids, scores, reasons = [], [], []
    for row in rows:
        score, why = health_of(row)
        out_ids.append(int(row["id"]))
        scores.append(score)
        reasons.append(why)
        prev = row["previous"]
        if prev is not None and int(prev) - score >= HEALTH_DROP_ACTIVITY:
            top = ", ".join(f"{r['feature']} {r['value']}" for r in why[:TOP_REASONS])
            conn.execute(
                """
                INSERT INTO activities (type, subject, body, status, due_at, account_id, owner_id,
                                        territory_id, source)
                SELECT 'task', %s, %s, 'open', now() + interval '2 days', a.id, a.owner_id,
                       a.territory_id, 'insights'
                FROM accounts a WHERE a.id = %s
                """,
                (
                    f"Account health dropped from {prev} to {score}",
                    f"Computed health fell {int(prev) - score} points. Reasons: {top}.",
                    row["id"],
                ),
            )
    if out_ids:
        _store(
            conn,
            "accounts",
            out_ids,
            HEALTH_MODEL,
            HEALTH_VERSION,
            [None] * len(out_ids),
            scores,
            reasons,
        )
    return len(out_ids)
