"""Rules on live telemetry open alerts and work orders in the batch's transaction."""

from __future__ import annotations

import uuid

import numpy as np
import psycopg
import pytest

from alerts import store as alert_store
from alerts.model import Change
from alerts.rules import Severity
from alerts.stage import AlertStage
from crm_sync.workorders import CrmAlertHooks
from firmware_sim.physics import (
    DAY_S,
    EQUIPMENT_MODELS,
    METRICS,
    AssetParams,
    FailureMode,
    readings,
)
from gateway.pipeline import NewMessages
from insights.maintenance.anomaly import fit_anomaly
from insights.maintenance.live import AnomalyMonitor
from insights.maintenance.simfleet import T0_S, healthy_samples, model_settings
from telemetry.contracts import Sample, TelemetryBatch
from tests.crm_sync.fixtures import Site, make_site

pytestmark = pytest.mark.integration
T0_MS = 1_764_000_000_000


def _site_with_rule(
    db: psycopg.Connection, severity: str = "critical", tier: str = "premium"
) -> Site:
    """A site whose pump is of a model of its own, with one vibration rule."""
    model = f"pump-{uuid.uuid4().hex[:6]}"
    site = make_site(db, equipment_model=model, tier=tier)
    db.execute(
        "INSERT INTO alert_rules (rule_id, equipment_model, metric, kind, direction, "
        "limit_value, clear_at, min_duration_s, severity) "
        "VALUES (%s, %s, 'vibration_mm_s', 'threshold', 'above', 7.0, 6.0, 30, %s)",
        (f"vib-{model}", model, severity),
    )
    db.commit()
    return site


def _batch(device: str, values: list[float], start: int = 0, step_ms: int = 5000) -> NewMessages:
    new = NewMessages()
    samples = [
        Sample(T0_MS + (start + i) * step_ms, "vibration_mm_s", v) for i, v in enumerate(values)
    ]
    new.telemetry.append((device, TelemetryBatch(v=1, seq=start + 1, samples=samples)))
    return new


def test_excursion_raises_one_alert_and_one_work_order_then_clears(db: psycopg.Connection) -> None:
    site = _site_with_rule(db, tier="premium")
    stage = AlertStage(hooks=CrmAlertHooks())

    # a noisy sensor hovering at the limit, then a real excursion
    stage.handle(db, _batch(site.device_id, [6.9, 7.1] * 20))
    assert stage.last_events == []
    stage.handle(db, _batch(site.device_id, [9.0] * 10, start=40))
    db.commit()
    (raised,) = stage.last_events
    assert raised.change is Change.CREATED
    assert raised.alert.severity is Severity.CRITICAL
    wo = db.execute(
        "SELECT count(*), min(priority) FROM work_orders WHERE source = 'alert' AND source_ref = %s",
        (f"alert:{raised.alert.alert_id}",),
    ).fetchone()
    assert wo == (1, "urgent")

    # the same batch redelivered changes nothing; more high readings only count occurrences
    stage.handle(db, _batch(site.device_id, [9.0] * 10, start=40))
    assert stage.last_events == []
    stage.handle(db, _batch(site.device_id, [5.0] * 10, start=50))
    db.commit()
    (cleared,) = stage.last_events
    assert cleared.change is Change.CLEARED
    assert alert_store.active_keys(db).count((site.device_id, raised.alert.alert_type)) == 0
    (n,) = db.execute(
        "SELECT count(*) FROM alerts WHERE device_id = %s", (site.device_id,)
    ).fetchone() or (0,)
    assert n == 1


def test_flapping_reopens_the_same_alert_and_its_work_order(db: psycopg.Connection) -> None:
    site = _site_with_rule(db, severity="warning")
    stage = AlertStage(reopen_within_s=3600, hooks=CrmAlertHooks())
    ids = set()
    for k in range(5):  # up for a minute, down for a minute, five times
        stage.handle(db, _batch(site.device_id, [9.0] * 12, start=k * 24))
        stage.handle(db, _batch(site.device_id, [5.0] * 12, start=k * 24 + 12))
        ids |= {e.alert.alert_id for e in stage.last_events}
    db.commit()
    assert len(ids) == 1
    (alert_id,) = ids
    row = db.execute(
        "SELECT occurrences, state FROM alerts WHERE alert_id = %s", (alert_id,)
    ).fetchone()
    assert row == (5, "cleared")
    (wos,) = db.execute(
        "SELECT count(*) FROM work_orders WHERE source_ref = %s", (f"alert:{alert_id}",)
    ).fetchone() or (0,)
    assert wos == 1


def test_engine_restores_active_alerts_from_storage_after_a_rollback(
    db: psycopg.Connection,
) -> None:
    site = _site_with_rule(db)
    stage = AlertStage(hooks=CrmAlertHooks())
    stage.handle(db, _batch(site.device_id, [9.0] * 10))
    db.commit()
    assert [e.change for e in stage.last_events] == [Change.CREATED]
    stage.rollback()  # e.g. a later batch failed: state is rebuilt from the alerts table
    stage.handle(db, _batch(site.device_id, [5.0] * 10, start=10))
    db.commit()
    assert [e.change for e in stage.last_events] == [Change.CLEARED]


def test_devices_without_an_asset_are_ignored(db: psycopg.Connection) -> None:
    stage = AlertStage(hooks=CrmAlertHooks())
    stage.handle(db, _batch(f"stray-{uuid.uuid4().hex[:6]}", [50.0] * 10))
    assert stage.last_events == []


def test_live_anomaly_monitor_raises_an_anomaly_alert_and_work_order(
    db: psycopg.Connection,
) -> None:
    step_s = 600.0
    model = f"pump-{uuid.uuid4().hex[:6]}"
    site = make_site(db, equipment_model=model)
    detector = fit_anomaly(
        healthy_samples("pump-p200", n_assets=6, hours=72, interval_s=step_s, seed=1)
    )
    monitor = AnomalyMonitor(detector, METRICS, model_settings("pump-p200"))
    stage = AlertStage(monitors={model: monitor}, hooks=CrmAlertHooks())
    failure_s = T0_S + 6 * DAY_S
    pump = AssetParams(
        asset_id=site.device_id,
        model=EQUIPMENT_MODELS["pump-p200"],
        installed_s=T0_S - 300 * DAY_S,
        failure_mode=FailureMode.SEAL_LEAK,
        fault_onset_s=failure_s - 5 * DAY_S,
        failure_s=failure_s,
        seed=3,
    )
    t = T0_S + np.arange(int(5.9 * DAY_S / step_s)) * step_s
    r = readings(pump, t)
    changes = []
    for k in range(0, len(t), 24):  # a message every 4 hours of readings
        new = NewMessages()
        samples = [
            Sample(int(t[i] * 1000), m, float(r[m][i]))
            for i in range(k, min(k + 24, len(t)))
            for m in METRICS
        ]
        new.telemetry.append((site.device_id, TelemetryBatch(v=1, seq=k + 1, samples=samples)))
        stage.handle(db, new)
        changes += [(e.change, e.alert.alert_type) for e in stage.last_events]
    db.commit()
    assert changes
    assert changes[0] == (Change.CREATED, "anomaly")
    (wos,) = db.execute(
        "SELECT count(*) FROM work_orders w JOIN alerts a ON w.source_ref = 'alert:' || a.alert_id "
        "WHERE a.device_id = %s AND a.alert_type = 'anomaly'",
        (site.device_id,),
    ).fetchone() or (0,)
    assert wos == 1
