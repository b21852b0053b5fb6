"""Predicted failures become proactive work orders (the maintenance model used live).

A periodic job (`crm_sync.predict_failures`, hourly; bounded: each asset's last 21 days of
telemetry, one model call) scores every asset whose device reports telemetry with the
active `failure-7d` model (insights.maintenance). A probability at or above the model's
threshold records a prediction (at most one open per device and model: the unique index
of `insights_failure_prediction`), and only a newly recorded prediction raises a
`predicted_failure` alert with the model's reasons, which takes the existing alert ->
work order -> re-plan path (`CrmAlertHooks`: webhook events, the work order on the asset's
account, an urgent one re-plans the route). A device that keeps predicting failure opens
no second work order. A prediction closes once the probability falls below half the
threshold (or its alert is cleared), so a later degradation predicts again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerts import store as alert_store
from alerts.rules import Severity
from crm_sync.workorders import SOURCE, CrmAlertHooks
from insights.maintenance import registry
from insights.maintenance.errors import ModelNotFoundError
from insights.maintenance.failure import FailureModel
from insights.maintenance.predict import daily_trajectory, predict_device, utcnow
from kernel.jobs import JobContext, Registry, Task

log = logging.getLogger(__name__)

TASK = "crm_sync.predict_failures"
EVERY_S = 3600.0
MODEL = "failure-7d"
ALERT_TYPE = "predicted_failure"
CRITICAL_AT = 0.8  # a probability this high is a critical alert (an urgent work order)


def _active(conn: psycopg.Connection[Any]) -> FailureModel | None:
    row = conn.execute(
        "SELECT artifact_path FROM maintenance_model WHERE name = %s AND active", (MODEL,)
    ).fetchone()
    if row is None:
        return None
    try:
        model: FailureModel = registry.load_artifact(Path(row[0]))
    except ModelNotFoundError as exc:
        log.warning("%s not loaded: %s", MODEL, exc)
        return None
    return model


def predict_failures(dsn: str, now: datetime | None = None) -> list[int]:
    """Score every asset once; the ids of the work orders opened for new predictions."""
    now = now or utcnow()
    opened: list[int] = []
    hooks = CrmAlertHooks()
    with psycopg.connect(dsn) as conn:
        model = _active(conn)
        if model is None:
            return opened
        assets = conn.execute(
            "SELECT id, device_id, equipment_model FROM assets WHERE device_id IS NOT NULL "
            "ORDER BY id"
        ).fetchall()
        for asset_id, device_id, equipment_model in assets:
            try:
                traj = daily_trajectory(conn, device_id, equipment_model, now)
            except Exception as exc:  # an equipment model the failure model does not know
                log.info("asset %s: not scored (%s)", asset_id, exc)
                continue
            if traj is None:
                continue
            pred = predict_device(model, traj, device_id, now)
            threshold = float(model.config.threshold)
            with conn.transaction():
                if pred.probability < threshold / 2:
                    conn.execute(
                        "UPDATE insights_failure_prediction SET state = 'closed', "
                        "closed_at = now() WHERE device_id = %s AND model = %s AND state = 'open'",
                        (device_id, MODEL),
                    )
                    continue
                if pred.probability < threshold:
                    continue
                row = conn.execute(
                    """
                    INSERT INTO insights_failure_prediction
                        (device_id, asset_id, model, model_version, probability, horizon_days,
                         predicted_failure_by, reasons)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (device_id, model) WHERE state = 'open' DO NOTHING
                    RETURNING id
                    """,
                    (
                        device_id,
                        asset_id,
                        MODEL,
                        model.card.version,
                        pred.probability,
                        pred.horizon_days,
                        pred.predicted_failure_by,
                        Jsonb(pred.reasons),
                    ),
                ).fetchone()
                if row is None:
                    continue  # already predicted: no second alert, no second work order
                wo = _raise(conn, hooks, pred, model.card.version, now)
                if wo is not None:
                    opened.append(wo[1])
                    conn.execute(
                        "UPDATE insights_failure_prediction SET alert_id = %s, "
                        "work_order_id = %s WHERE id = %s",
                        (wo[0], wo[1], row[0]),
                    )
    return opened


def _raise(
    conn: psycopg.Connection[Any], hooks: CrmAlertHooks, pred: Any, version: str, now: datetime
) -> tuple[str, int] | None:
    why = "; ".join(f"{r['feature']} {r['value']} ({r['contribution']:+.2f})" for r in pred.reasons)
    message = (
        f"{MODEL} {version}: failure within {pred.horizon_days:g} days, probability "
        f"{pred.probability:.2f} (by {pred.predicted_failure_by:%Y-%m-%d}). Reasons: {why}"
    )[:1000]
    severity = Severity.CRITICAL if pred.probability >= CRITICAL_AT else Severity.WARNING
    event = alert_store.raise_alert(
        conn, pred.device_id, ALERT_TYPE, severity, int(now.timestamp() * 1000), message=message
    )
    hooks.changed(conn, event.alert, "raised")
    hooks.raised(conn, event.alert, now=now, min_severity=Severity.WARNING)
    row = conn.execute(
        "SELECT id FROM work_orders WHERE source = %s AND source_ref = %s",
        (SOURCE, f"alert:{event.alert.alert_id}"),
    ).fetchone()
    return None if row is None else (event.alert.alert_id, int(row[0]))


async def run(ctx: JobContext, args: dict[str, Any]) -> None:
    opened = await asyncio.to_thread(predict_failures, ctx.dsn)
    if opened:
        log.info("predicted failures: work orders %s", opened)


def register(registry_: Registry) -> None:
    registry_.add(Task(TASK, run, timeout_s=1800.0))
    registry_.every(TASK, EVERY_S)
