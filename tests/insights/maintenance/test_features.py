from __future__ import annotations

import numpy as np
import pytest

from insights.maintenance.cmapss import Trajectories
from insights.maintenance.errors import DataFormatError, InsufficientDataError
from insights.maintenance.features import (
    WindowSpec,
    ewm,
    fit_normaliser,
    fit_regimes,
    life_fraction,
    rul_targets,
    trajectory_features,
    window_features,
)

from .synthetic import degrading_fleet

SPEC = WindowSpec(
    mean_windows=(3,), std_windows=(3,), slope_windows=(3,), ewm_alphas=(0.5,), baseline_rows=2
)


def _column(x: np.ndarray, name: str, channels: tuple[str, ...] = ("a",)) -> np.ndarray:
    names = SPEC.feature_names(channels)
    return window_features(x, SPEC)[:, names.index(name)]


def test_trailing_mean_std_and_slope_use_truncated_windows() -> None:
    x = np.array([[1.0], [3.0], [5.0], [4.0]])
    np.testing.assert_allclose(_column(x, "a:mean3"), [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(
        _column(x, "a:std3"), [0.0, 1.0, float(np.std([1, 3, 5])), float(np.std([3, 5, 4]))]
    )
    # slope of a least-squares line over the window: [1,3] -> 2, [1,3,5] -> 2, [3,5,4] -> 0.5
    np.testing.assert_allclose(_column(x, "a:slope3"), [0.0, 2.0, 2.0, 0.5])
    np.testing.assert_allclose(_column(x, "position"), [1, 2, 3, 4])


def test_ewm_and_drift_from_the_units_own_baseline() -> None:
    x = np.array([[2.0], [4.0], [8.0]])
    np.testing.assert_allclose(ewm(x, 0.5)[:, 0], [2.0, 3.0, 5.5])
    # drift = ewm(0.5) minus the mean of the first min(t+1, 2) rows
    np.testing.assert_allclose(_column(x, "a:drift"), [0.0, 0.0, 2.5])


def test_features_are_causal_so_a_cut_trajectory_gives_the_same_row() -> None:
    traj = degrading_fleet(6, seed=1)
    norm = fit_normaliser(traj, life_fraction(traj))
    spec = WindowSpec()
    full = trajectory_features(traj, norm, spec)
    unit, s = traj.unit_slices()[2]
    cut = s.start + 37
    keep = np.ones(traj.n_rows, bool)
    keep[cut + 1 : s.stop] = False
    truncated = traj.select(keep)
    row_in_truncated = cut  # rows before the cut are unchanged
    np.testing.assert_allclose(
        trajectory_features(truncated, norm, spec)[row_in_truncated], full[cut]
    )
    assert unit == 3


def test_one_regime_when_settings_vary_only_by_quantised_noise() -> None:
    rng = np.random.default_rng(0)
    noise = np.column_stack(
        (
            np.round(rng.normal(0, 0.002, 4000), 4),
            np.round(rng.normal(0, 0.0003, 4000), 4),  # a few distinct values, gaps between
            np.full(4000, 100.0),
        )
    )
    sensors = rng.normal(0, 1.0, (4000, 3))  # unaffected by the settings
    assert fit_regimes(noise, sensors).n_regimes == 1


def test_six_discrete_operating_conditions_give_six_regimes() -> None:
    rng = np.random.default_rng(1)
    centres = np.array(
        [[0, 0, 100], [10, 0.25, 100], [20, 0.7, 100], [25, 0.62, 60], [35, 0.84, 100],
         [42, 0.84, 100]]
    )  # fmt: skip
    which = rng.integers(0, 6, 5000)
    settings = centres[which] + np.round(rng.normal(0, 0.002, (5000, 3)), 4)
    level = np.array([0.0, 3.0, 6.0, 9.0, 12.0, 15.0])[which]
    sensors = np.column_stack((level, -level)) + rng.normal(0, 0.5, (5000, 2))
    regimes = fit_regimes(settings, sensors)
    assert regimes.n_regimes == 6
    assigned = regimes.assign(settings)
    # the partition is the true one, up to relabelling
    for k in range(6):
        assert len(set(assigned[which == k].tolist())) == 1


def test_exactly_repeated_setting_values_split_without_noise() -> None:
    load = np.repeat([60.0, 100.0], 500)
    settings = np.column_stack((load, np.zeros(1000)))
    sensors = (load / 10.0)[:, None] + np.random.default_rng(2).normal(0, 0.1, (1000, 1))
    assert fit_regimes(settings, sensors).n_regimes == 2


def test_normaliser_keeps_trending_sensors_and_drops_constant_and_noise() -> None:
    traj = degrading_fleet(20, seed=2)
    norm = fit_normaliser(traj, life_fraction(traj))
    assert norm.channel_names == ("s1", "s4", "hi")
    # the health index rises with wear: s1 rises (positive weight), s4 falls (negative)
    assert norm.hi_weights[0] > 0 > norm.hi_weights[1]


def test_normaliser_refuses_data_with_no_informative_sensor() -> None:
    traj = degrading_fleet(5, seed=3)
    flat = Trajectories(
        unit=traj.unit,
        cycle=traj.cycle,
        settings=traj.settings,
        sensors=np.ones_like(traj.sensors),
        sensor_names=traj.sensor_names,
    )
    with pytest.raises(InsufficientDataError, match="no sensor varies"):
        fit_normaliser(flat, life_fraction(flat))


def test_rul_targets_are_piecewise_linear() -> None:
    traj = degrading_fleet(2, seed=4)
    y = rul_targets(traj, cap=50.0)
    _, s = traj.unit_slices()[0]
    assert y[s][-1] == 0.0
    assert y[s][-2] == 1.0
    assert y[s][0] == 50.0


def test_standardise_rejects_wrong_sensor_count() -> None:
    traj = degrading_fleet(3, seed=5)
    norm = fit_normaliser(traj, life_fraction(traj))
    with pytest.raises(DataFormatError, match="expected 4 sensor columns"):
        norm.standardise(traj.settings, traj.sensors[:, :2])
