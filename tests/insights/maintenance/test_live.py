from __future__ import annotations

import math

import numpy as np
import pytest

from firmware_sim.physics import (
    DAY_S,
    EQUIPMENT_MODELS,
    METRICS,
    AssetParams,
    FailureMode,
    readings,
)
from insights.maintenance.anomaly import fit_anomaly
from insights.maintenance.errors import DataFormatError
from insights.maintenance.live import AnomalyMonitor, LiveKind, RowAssembler
from insights.maintenance.simfleet import T0_S, healthy_samples, model_settings

STEP_S = 600.0
PUMP = "pump-p200"


def test_rows_are_complete_only_when_every_metric_arrived() -> None:
    a = RowAssembler(("t", "v"), max_pending=2)
    assert a.add("d1", 1000, "t", 1.0) is None
    assert a.add("d1", 1000, "unknown", 5.0) is None
    assert a.add("d2", 1000, "v", 9.0) is None  # other device
    row = a.add("d1", 1000, "v", 2.0)
    assert row is not None and row.tolist() == [1.0, 2.0]
    # incomplete rows are bounded: the oldest is dropped
    for t in (2000, 3000, 4000):
        a.add("d1", t, "t", 1.0)
    assert a.add("d1", 2000, "v", 2.0) is None  # 2000 was dropped, starts afresh
    row = a.add("d1", 4000, "v", 3.0)
    assert row is not None and row.tolist() == [1.0, 3.0]


def _stream(monitor: AnomalyMonitor, p: AssetParams, days: float) -> list[tuple[str, int]]:
    t = T0_S + np.arange(int(days * DAY_S / STEP_S)) * STEP_S
    r = readings(p, t)
    out = []
    for i, ts in enumerate(t):
        for m in METRICS:
            tr = monitor.observe(p.asset_id, int(ts * 1000), m, float(r[m][i]))
            if tr is not None:
                out.append((tr.kind.value, tr.t_ms))
    return out


@pytest.fixture(scope="module")
def monitor_factory():  # type: ignore[no-untyped-def]
    detector = fit_anomaly(
        healthy_samples(PUMP, n_assets=6, hours=72, interval_s=STEP_S, seed=1), name="pump-live"
    )

    def make() -> AnomalyMonitor:
        return AnomalyMonitor(detector, METRICS, model_settings(PUMP))

    return make


def test_live_monitor_raises_before_a_bearing_failure(monitor_factory) -> None:  # type: ignore[no-untyped-def]
    failure_s = T0_S + 10 * DAY_S
    p = AssetParams(
        asset_id="pump-7",
        model=EQUIPMENT_MODELS[PUMP],
        installed_s=T0_S - 200 * DAY_S,
        failure_mode=FailureMode.BEARING,
        fault_onset_s=failure_s - 8 * DAY_S,
        failure_s=failure_s,
        seed=7,
    )
    events = _stream(monitor_factory(), p, days=9.9)
    raises = [t for kind, t in events if kind == LiveKind.RAISE.value]
    assert raises, "no alert before the failure"
    assert raises[0] / 1000 < failure_s
    assert raises[0] / 1000 > T0_S + 2 * DAY_S  # not while the pump was healthy


def test_live_monitor_stays_quiet_on_a_healthy_pump(monitor_factory) -> None:  # type: ignore[no-untyped-def]
    p = AssetParams(
        asset_id="pump-8",
        model=EQUIPMENT_MODELS[PUMP],
        installed_s=T0_S - 100 * DAY_S,
        failure_s=math.inf,
        seed=8,
    )
    assert _stream(monitor_factory(), p, days=4) == []


def test_monitor_refuses_a_metric_list_that_does_not_fit_the_detector(monitor_factory) -> None:  # type: ignore[no-untyped-def]
    detector = monitor_factory().detector
    with pytest.raises(DataFormatError, match="expects 4 metrics"):
        AnomalyMonitor(detector, ("temperature_c",), model_settings(PUMP))
