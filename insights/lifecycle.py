"""One life cycle for every recorded model: its versions with their cards, who activated
which version and when, its open drift alerts, and activation (an older version: rollback).

Versions are what `insights.maintenance.registry` recorded in `maintenance_model` (the CRM
models of `insights.live` and the maintenance models alike). Activating a CRM model's
version queues the re-scoring of every open record of its entity (`insights.score` with no
id, the job training runs too), in the activation's transaction: the records are scored
with the version just activated, by the `jobs` role, never in an API worker.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from psycopg import AsyncConnection

from insights import jobs as insights_jobs
from insights import live
from insights.maintenance import registry
from kernel import jobs

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # as the registry saves them
MAX_VERSIONS = 50  # per model in the listing, newest first


class ModelVersion(msgspec.Struct, frozen=True):
    version: str
    created_at: datetime
    active: bool
    params: dict[str, Any]  # features and settings of the fit
    data: dict[str, Any]  # source, window, rows, positives, sha256 of the training rows
    # cv_* (time-ordered validation) or train_* (in-sample, too little data for folds):
    # auc, threshold, precision, recall, f1 (at the threshold), brier, ece, lift_top10,
    # base_rate
    metrics: dict[str, float]
    last_activated_at: datetime | None  # None: never activated since activations are logged
    last_activated_by: str | None  # the user's name (API activations)
    last_activated_via: str | None  # training, api, cli (an operator on the command line)


class ModelDrift(msgspec.Struct, frozen=True):
    model_version: str
    feature: str  # `__score__`: the scores themselves
    psi: float  # population stability index, live against training (>= 0.25 raises)
    live_rows: int
    raised_at: datetime
    checked_at: datetime


class ModelSummary(msgspec.Struct, frozen=True):
    name: str
    kind: str
    entity: str | None  # the CRM records it scores (leads, opportunities, accounts)
    trainable: bool  # POST /api/v1/insights/train takes it
    active_version: str | None
    versions_total: int
    versions: list[ModelVersion]  # newest first, at most MAX_VERSIONS
    drift: list[ModelDrift]  # open (raised) alerts


class Activation(msgspec.Struct, frozen=True):
    name: str
    version: str
    previous_version: str | None
    changed: bool  # False: the version was already active
    rescore_job: int | None  # the re-scoring of the open records (CRM models)
    rescore_poll: str | None


class UnknownModel(LookupError):
    """No recorded model of that name, or no such version of it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


_VERSIONS_SQL = """
SELECT m.name, m.kind, m.version, m.created_at, m.active, m.params, m.data, m.metrics,
       a.activated_at, u.name, count(*) OVER (PARTITION BY m.name), a.activated_via
FROM maintenance_model m
LEFT JOIN LATERAL (
    SELECT x.activated_at, x.activated_by, x.activated_via FROM insights_model_activation x
    WHERE x.model = m.name AND x.version = m.version
    ORDER BY x.activated_at DESC, x.id DESC LIMIT 1
) a ON true
LEFT JOIN users u ON u.id = a.activated_by
ORDER BY m.name, m.created_at DESC, m.version DESC
"""

_DRIFT_SQL = """
SELECT model, model_version, feature, psi, live_rows, raised_at, checked_at
FROM insights_drift WHERE state = 'raised' ORDER BY model, psi DESC, id
"""


def _metrics(raw: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in dict(raw or {}).items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue  # a card's figure that is no number is not a metric
    return out


async def list_models(conn: AsyncConnection[Any]) -> list[ModelSummary]:
    """Every recorded model by name, its versions newest first, with open drift alerts."""
    rows = await (await conn.execute(_VERSIONS_SQL)).fetchall()
    drift: dict[str, list[ModelDrift]] = {}
    for r in await (await conn.execute(_DRIFT_SQL)).fetchall():
        drift.setdefault(str(r[0]), []).append(ModelDrift(*r[1:]))
    by_name: dict[str, list[Any]] = {}
    for r in rows:
        by_name.setdefault(str(r[0]), []).append(r)
    out: list[ModelSummary] = []
    for name, rs in by_name.items():
        versions = [
            ModelVersion(
                version=str(r[2]),
                created_at=r[3],
                active=bool(r[4]),
                params=dict(r[5] or {}),
                data=dict(r[6] or {}),
                metrics=_metrics(r[7]),
                last_activated_at=r[8],
                last_activated_by=r[9],
                last_activated_via=r[11],
            )
            for r in rs[:MAX_VERSIONS]
        ]
        active = next((str(r[2]) for r in rs if r[4]), None)
        out.append(
            ModelSummary(
                name=name,
                kind=str(rs[0][1]),
                entity=live.ENTITY_OF.get(name),
                trainable=name in live.ENTITY_OF,
                active_version=active,
                versions_total=int(rs[0][10]),
                versions=versions,
                drift=drift.get(name, []),
            )
        )
    return out


def _rescore(entity: str) -> tuple[dict[str, Any], str, int]:
    """The re-scoring job of every open record of `entity` (args, dedupe key, attempts)."""
    return {"entity": entity}, f"{insights_jobs.SCORE_TASK}:{entity}:open", 3


def activate_sync(conn: psycopg.Connection[Any], name: str, version: str) -> Activation:
    """`activate` for the CLI (an operator, no user): the registry's activation, then the
    re-scoring job, committed together. Raises ModelNotFoundError for an unknown one."""
    with conn.transaction():
        previous = registry.activate(conn, name, version, via="cli")
        entity = live.ENTITY_OF.get(name)
        job_id = None
        if entity is not None:
            args, key, attempts = _rescore(entity)
            job_id = jobs.enqueue_sync(
                conn, insights_jobs.SCORE_TASK, args, dedupe_key=key, max_attempts=attempts
            )
    return Activation(name, version, previous, previous != version, job_id, None)


async def activate(
    conn: AsyncConnection[Any], name: str, version: str, by: int, poll_prefix: str
) -> Activation:
    """Make `version` the active one of `name` (logged with `by`), and queue the re-scoring
    of its entity's open records, in the caller's transaction."""
    cur = await conn.execute(registry.LOCK_VERSIONS_SQL, (name,))
    rows = await cur.fetchall()
    if not rows:
        raise UnknownModel(f"no recorded model {name!r}", "name")
    if not any(r[0] == version for r in rows):
        raise UnknownModel(f"model {name!r} has no recorded version {version!r}", "version")
    previous = next((str(r[0]) for r in rows if r[1]), None)
    changed = previous != version
    if changed:
        await conn.execute(registry.DEACTIVATE_SQL, (name,))
        await conn.execute(registry.ACTIVATE_SQL, (name, version))
        await conn.execute(registry.LOG_ACTIVATION_SQL, (name, version, previous, "api", by))
    entity = live.ENTITY_OF.get(name)
    job_id = None
    if entity is not None:
        args, key, attempts = _rescore(entity)
        job_id = await jobs.enqueue(
            conn, insights_jobs.SCORE_TASK, args, dedupe_key=key, max_attempts=attempts
        )
    return Activation(
        name,
        version,
        previous,
        changed,
        job_id,
        None if job_id is None else f"{poll_prefix}/{job_id}",
    )
