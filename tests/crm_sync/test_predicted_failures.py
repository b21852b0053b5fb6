"""The failure model used live, end to end on the real database: a device whose telemetry
degrades towards a failure gets one predicted_failure alert and exactly one work order on
its asset's account (with the model's reasons), however often the job runs; a healthy
device gets none."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest

from crm_sync.predictions import ALERT_TYPE, predict_failures
from fieldmesh import services
from fieldmesh.migrate import upgrade
from firmware_sim.physics import (
    DAY_S,
    EQUIPMENT_MODELS,
    METRICS,
    AssetParams,
    FailureMode,
    readings,
)
from insights.maintenance.training import train_failure_sim
from kernel.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dsn(services_up: Settings) -> Iterator[str]:
    name = f"fm_pred_{uuid.uuid4().hex[:8]}"
    dsn = services.create_database(services_up, name)
    try:
        upgrade(dsn)
        yield dsn
    finally:
        services.drop_database(services_up, name)


def _telemetry(conn: psycopg.Connection, device_id: str, p: AssetParams, now_s: float) -> None:
    t = now_s - np.arange(21 * 24, 0, -1, dtype=np.float64) * 3600.0
    r = readings(p, t)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO telemetry_sample (time, device_id, metric, value, seq) "
            "VALUES (%s, %s, %s, %s, %s)",
            [
                (datetime.fromtimestamp(float(ti), UTC), device_id, m, float(r[m][i]), i)
                for m in METRICS
                for i, ti in enumerate(t)
            ],
        )


def test_a_degrading_device_gets_exactly_one_work_order(
    dsn: str, tmp_path: object, services_up: Settings
) -> None:
    trained = train_failure_sim(
        state_dir=services_up.state_dir / f"pred-{uuid.uuid4().hex[:6]}",
        dsn=dsn,
        n_assets=120,
        days=60,
        seed=5,
    )
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    now_s = now.timestamp()
    pump = EQUIPMENT_MODELS["pump-p200"]
    failing = AssetParams(
        "failing", pump, installed_s=now_s - 200 * DAY_S, failure_mode=FailureMode.BEARING,
        fault_onset_s=now_s - 15 * DAY_S, failure_s=now_s + 2 * DAY_S, seed=11,
    )  # fmt: skip
    healthy = replace(
        failing, asset_id="healthy", failure_mode=FailureMode.NONE,
        fault_onset_s=math.inf, failure_s=math.inf, seed=12,
    )  # fmt: skip
    tag = uuid.uuid4().hex[:6]
    devices = {"failing": f"dev-fail-{tag}", "healthy": f"dev-ok-{tag}"}
    with psycopg.connect(dsn) as conn:
        account = conn.execute(
            "INSERT INTO accounts (name, type) VALUES ('Pump Co', 'customer') RETURNING id"
        ).fetchone()
        assert account is not None
        for key, params in (("failing", failing), ("healthy", healthy)):
            conn.execute(
                "INSERT INTO device (device_id, tenant) VALUES (%s, 'acme')", (devices[key],)
            )
            conn.execute(
                "INSERT INTO assets (account_id, device_id, equipment_model, contract_tier) "
                "VALUES (%s, %s, 'pump-p200', 'standard')",
                (account[0], devices[key]),
            )
            _telemetry(conn, devices[key], params, now_s)

    first = predict_failures(dsn, now)
    again = predict_failures(dsn, now)  # the job runs again: no second work order
    assert len(first) == 1 and again == []

    with psycopg.connect(dsn) as conn:
        orders = conn.execute(
            "SELECT w.id, w.account_id, w.description, a.device_id FROM work_orders w "
            "JOIN alerts a ON w.source_ref = 'alert:' || a.alert_id WHERE a.alert_type = %s",
            (ALERT_TYPE,),
        ).fetchall()
        assert [(o[0], o[3]) for o in orders] == [(first[0], devices["failing"])]
        assert orders[0][1] == account[0]
        pred = conn.execute(
            "SELECT model_version, probability, reasons, work_order_id, state "
            "FROM insights_failure_prediction WHERE device_id = %s",
            (devices["failing"],),
        ).fetchall()
        assert len(pred) == 1
        version, prob, reasons, wo, state = pred[0]
        assert version == trained.card.version and prob >= 0.5 and wo == first[0]
        assert state == "open" and len(reasons) == 3
        msg = conn.execute(
            "SELECT message FROM alerts WHERE device_id = %s AND alert_type = %s",
            (devices["failing"], ALERT_TYPE),
        ).fetchone()
        assert msg is not None and "Reasons:" in msg[0] and trained.card.version in msg[0]
        none = conn.execute(
            "SELECT count(*) FROM insights_failure_prediction WHERE device_id = %s",
            (devices["healthy"],),
        ).fetchone()
        assert none is not None and none[0] == 0
