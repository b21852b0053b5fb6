"""The insights models as jobs (kernel.jobs): training, scoring on record change, nightly.

    insights.train    {"model": "lead-score"|"opportunity-win"|"account-churn"}: train from
                      the CRM tables,
                      activate the new version, then re-score every open record with it
    insights.score    {"entity": ..., "id": ...}: one record, queued in the transaction of
                      its create or update (crm.store.ON_CHANGE), de-duplicated while queued
    insights.nightly  periodic: retrain the three models (a refusal for too little data keeps
                      the active version; a version a person activated, e.g. a rollback,
                      stays active: the new one is only recorded), re-score every open record, recompute health,
                      check the live inputs and scores for drift (insights_drift alerts),
                      snapshot the pipeline forecast (accuracy against actuals later)

Scoring and training run in a thread (pandas, sklearn, a psycopg connection of their own),
never in an API worker.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
import psycopg
from psycopg import AsyncConnection

from crm import store as crm_store
from insights import live, pipeline
from insights.maintenance.errors import InsufficientDataError
from insights.maintenance.training import models_dir
from kernel.jobs import JobContext, Registry, Task, enqueue

log = logging.getLogger(__name__)

TRAIN_TASK = "insights.train"
SCORE_TASK = "insights.score"
NIGHTLY_TASK = "insights.nightly"
NIGHTLY_S = 86_400.0
SCORED = ("leads", "opportunities", "accounts")


class InsightsTrainIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: Literal["lead-score", "opportunity-win", "account-churn"]


class ScoreArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    entity: Literal["leads", "opportunities", "accounts"]
    id: int | None = None  # None: every open record of the entity


async def on_change(conn: AsyncConnection[Any], entity: str, old: Any, new: Any) -> None:
    """crm.store.ON_CHANGE listener: queue the record's (and its account's) re-scoring."""
    if entity in SCORED:
        await queue_score(conn, entity, int(new["id"]))
    if entity in ("opportunities", "activities", "work_orders") and new.get("account_id"):
        await queue_score(conn, "accounts", int(new["account_id"]))


async def queue_score(conn: AsyncConnection[Any], entity: str, record_id: int) -> int:
    return await enqueue(
        conn,
        SCORE_TASK,
        {"entity": entity, "id": record_id},
        dedupe_key=f"{SCORE_TASK}:{entity}:{record_id}",
        max_attempts=3,
    )


async def job_state(
    conn: AsyncConnection[Any], job_id: int, task: str
) -> tuple[str, str | None, Any] | None:
    """(status, last error, args) of one insights job of `task`, or None."""
    cur = await conn.execute(
        "SELECT status, last_error, args FROM jobs WHERE id = %s AND task = %s", (job_id, task)
    )
    row = await cur.fetchone()
    return None if row is None else (row[0], row[1], row[2])


def subscribe() -> None:
    """Listen to CRM writes (idempotent; API workers and the jobs role both write)."""
    if on_change not in crm_store.ON_CHANGE:
        crm_store.ON_CHANGE.append(on_change)


def _state_dir(ctx: JobContext) -> Path:
    if ctx.settings is None:
        raise RuntimeError("insights jobs need the deployment's settings (its state directory)")
    return ctx.settings.state_dir


def _train_sync(
    dsn: str, model: str, state_dir: Path, *, nightly: bool = False
) -> live.TrainResult:
    """Train and re-score. The nightly run records its version without activating it when
    a person chose the active one (a rollback holds until a person changes it)."""
    with psycopg.connect(dsn) as conn:
        activate = not (nightly and live.chosen_by_person(conn, model))
        result = live.train(conn, model, models_dir(state_dir), activate=activate)
        conn.commit()
        live.score_records(conn, live.ENTITY_OF[model], None)
        conn.commit()
    return result


def _score_sync(dsn: str, entity: str, ids: list[int] | None) -> int:
    with psycopg.connect(dsn) as conn:
        n = live.score_records(conn, entity, ids)
        conn.commit()
    return n


def _drift_sync(dsn: str, entity: str) -> list[live.DriftAlert]:
    with psycopg.connect(dsn) as conn:
        raised = live.check_drift(conn, entity)
        conn.commit()
    return raised


async def train(ctx: JobContext, args: dict[str, Any]) -> None:
    body = msgspec.convert(args, InsightsTrainIn)
    try:
        result = await asyncio.to_thread(_train_sync, ctx.dsn, body.model, _state_dir(ctx))
    except InsufficientDataError as exc:
        raise RuntimeError(f"insufficient_data: {exc}") from exc
    log.info("trained %s %s %s", result.name, result.version, result.metrics)


async def score(ctx: JobContext, args: dict[str, Any]) -> None:
    body = msgspec.convert(args, ScoreArgs)
    ids = None if body.id is None else [body.id]
    await asyncio.to_thread(_score_sync, ctx.dsn, body.entity, ids)


async def nightly(ctx: JobContext, args: dict[str, Any]) -> None:
    state_dir = _state_dir(ctx)
    for model in (live.LEAD_MODEL, live.WIN_MODEL, live.CHURN_MODEL):
        try:
            result = await asyncio.to_thread(
                functools.partial(_train_sync, ctx.dsn, model, state_dir, nightly=True)
            )
            if not result.activated:
                log.info(
                    "nightly %s: %s recorded, not activated (a person chose the active version)",
                    model,
                    result.version,
                )
        except InsufficientDataError as exc:
            log.info("nightly %s: kept the active version (%s)", model, exc)
    for entity in SCORED:
        await asyncio.to_thread(_score_sync, ctx.dsn, entity, None)
    for entity in live.DRIFT_MODELS:
        await asyncio.to_thread(_drift_sync, ctx.dsn, entity)
    async with ctx.pool.connection() as conn, conn.transaction():
        await pipeline.snapshot(conn, datetime.now(UTC).date())


def register(registry: Registry) -> None:
    subscribe()  # CSV imports and other jobs write CRM records in this process too
    # CPU-bound and queued by managers at will: one at a time, the other slots stay free
    registry.add(Task(TRAIN_TASK, train, timeout_s=3600.0, concurrency=1))
    registry.add(Task(SCORE_TASK, score, timeout_s=300.0))
    registry.add(Task(NIGHTLY_TASK, nightly, timeout_s=6 * 3600.0))
    registry.every(NIGHTLY_TASK, NIGHTLY_S)
