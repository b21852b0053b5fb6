from __future__ import annotations

import numpy as np
import pytest

from insights.maintenance.anomaly import AnomalyConfig, OnlineScorer, fit_anomaly
from insights.maintenance.cmapss import Trajectories
from insights.maintenance.errors import DataFormatError, InsufficientDataError


def healthy_fleet(n_units: int, rows: int, seed: int) -> Trajectories:
    """Pumps at two load regimes with a daily cycle and noise; nothing wrong with them."""
    rng = np.random.default_rng(seed)
    n = n_units * rows
    t = np.tile(np.arange(rows, dtype=np.float64), n_units)
    regime = rng.integers(0, 2, n)
    load = np.where(regime == 1, 1.0, 0.6)
    daily = np.sin(2 * np.pi * t / 24.0)
    temp = 40 + 10 * load + 1.5 * daily + rng.normal(0, 0.3, n)
    vib = 2.0 * load + rng.normal(0, 0.05, n)
    press = 6.0 * load + rng.normal(0, 0.05, n)
    return Trajectories(
        unit=np.repeat(np.arange(1, n_units + 1), rows).astype(np.int64),
        cycle=(t + 1).astype(np.int64),
        settings=np.column_stack((load * 100, np.zeros(n), np.zeros(n))),
        sensors=np.column_stack((temp, vib, press)),
        sensor_names=("temperature_c", "vibration_mm_s", "pressure_bar"),
    )


def _faulty_stream() -> tuple[Trajectories, Trajectories]:
    stream = healthy_fleet(1, 400, seed=2)
    sensors = stream.sensors.copy()
    sensors[200:215, 1] += 1.5  # a vibration burst on a bearing
    sensors[300:, 2] -= 1.0  # a pressure drop that stays (a seal leak)
    faulty = Trajectories(
        unit=stream.unit,
        cycle=stream.cycle,
        settings=stream.settings,
        sensors=sensors,
        sensor_names=stream.sensor_names,
    )
    return stream, faulty


def test_detector_flags_injected_anomalies_and_not_healthy_rows() -> None:
    detector = fit_anomaly(healthy_fleet(8, 300, seed=1))
    stream, faulty = _faulty_stream()
    flags = detector.flag_rows(faulty)
    assert flags[200:215].mean() > 0.8
    assert flags[300:320].mean() > 0.8
    assert flags[20:200].mean() < 0.02  # the healthy part of the stream
    assert detector.flag_rows(stream)[20:].mean() < 0.01
    assert detector.card.metrics["healthy_flag_rate"] < 0.01


def test_isolation_forest_variant_ranks_injected_anomalies_above_healthy_rows() -> None:
    detector = fit_anomaly(healthy_fleet(8, 300, seed=1), AnomalyConfig(method="isolation_forest"))
    _, faulty = _faulty_stream()
    scores = detector.score_rows(faulty)
    healthy_p99 = np.quantile(scores[20:200], 0.99)
    assert np.median(scores[202:215]) > healthy_p99
    assert np.median(scores[305:]) > healthy_p99


def test_explanation_names_the_metric_that_moved() -> None:
    detector = fit_anomaly(healthy_fleet(6, 300, seed=3))
    stream = healthy_fleet(1, 100, seed=4)
    sensors = stream.sensors.copy()
    sensors[-1, 1] += 2.0
    x = detector.normaliser.channels(stream.settings, sensors)
    from insights.maintenance.features import window_features

    row = window_features(x, detector.config.spec)[-1]
    (name, z), *_ = detector.explain(row)
    assert name.startswith("vibration_mm_s:")
    assert abs(z) > 5


def test_online_scorer_matches_batch_scores_with_a_bounded_buffer() -> None:
    detector = fit_anomaly(healthy_fleet(6, 300, seed=5))
    stream = healthy_fleet(1, 80, seed=6)
    batch = detector.score_rows(stream)
    scorer = OnlineScorer(detector)
    online = [
        scorer.update("pump-1", stream.settings[i], stream.sensors[i]) for i in range(stream.n_rows)
    ]
    warm = detector.config.buffer_rows
    assert all(s is None for s in online[: warm - 1])
    np.testing.assert_allclose(np.array(online[warm - 1 :], dtype=float), batch[warm - 1 :])


def test_online_scorer_forgets_the_least_recent_asset_beyond_its_limit() -> None:
    detector = fit_anomaly(healthy_fleet(6, 300, seed=7))
    scorer = OnlineScorer(detector, max_assets=2)
    s = healthy_fleet(1, 1, seed=8)
    for asset in ("a", "b", "a", "c"):
        scorer.update(asset, s.settings[0], s.sensors[0])
    assert set(scorer._buffers) == {"a", "c"}


def test_training_on_too_little_healthy_data_is_refused_with_the_reason() -> None:
    with pytest.raises(InsufficientDataError, match=r"at least 200 healthy samples.*got 50"):
        fit_anomaly(healthy_fleet(1, 50, seed=9))


def test_unknown_method_is_rejected() -> None:
    with pytest.raises(DataFormatError, match="unknown anomaly method"):
        AnomalyConfig(method="magic")  # type: ignore[arg-type]
