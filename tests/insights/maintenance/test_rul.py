from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from insights.maintenance.cmapss import Trajectories
from insights.maintenance.errors import DataFormatError, InsufficientDataError
from insights.maintenance.features import WindowSpec
from insights.maintenance.rul import RulConfig, fit_rul
from insights.maintenance.validation import cross_validate, sample_cuts

from .synthetic import degrading_fleet

SMALL = RulConfig(
    cap=100.0,
    n_models=1,
    max_iter=60,
    learning_rate=0.15,
    spec=WindowSpec(
        mean_windows=(5, 15), std_windows=(10,), slope_windows=(10,), ewm_alphas=(0.2,)
    ),
)


def test_model_trained_on_a_small_slice_learns_the_monotone_degradation() -> None:
    train = degrading_fleet(12, seed=10)
    test = degrading_fleet(4, seed=11)
    model = fit_rul(train, SMALL, source="synthetic")
    pred = model.predict_rows(test)
    true = np.minimum(
        np.concatenate([test.cycle[s][-1] - test.cycle[s] for _, s in test.unit_slices()]), 100
    )
    late = true < 60  # where the wear shows
    assert np.corrcoef(pred[late], true[late])[0, 1] > 0.8
    assert np.sqrt(np.mean((pred - true) ** 2)) < 20.0
    # predictions fall as a unit wears out
    for _, s in test.unit_slices():
        p = pred[s]
        assert p[-40:-30].mean() > p[-10:].mean() + 10.0


def test_predict_last_gives_one_rul_per_unit_from_its_last_row() -> None:
    train = degrading_fleet(8, seed=12)
    model = fit_rul(train, SMALL)
    test = degrading_fleet(3, seed=13)
    units, rul = model.predict_last(test)
    assert units.tolist() == [1, 2, 3]
    rows = model.predict_rows(test)
    np.testing.assert_allclose(rul, rows[[s.stop - 1 for _, s in test.unit_slices()]])
    assert np.all((rul >= 0) & (rul <= SMALL.cap))


def test_model_card_records_version_params_and_data_seen() -> None:
    train = degrading_fleet(6, seed=14)
    model = fit_rul(train, SMALL, name="pump-rul", source="synthetic")
    card = model.card.with_metrics(cv_rmse=12.5)
    assert card.name == "pump-rul"
    assert card.kind == "rul"
    assert card.version.endswith(card.data["sha256"][:8])
    assert card.data["units"] == 6
    assert card.data["rows"] == train.n_rows
    assert card.params["channels"] == ["s1", "s4", "hi"]
    assert card.metrics == {"cv_rmse": 12.5}


def test_training_on_too_few_units_is_refused_with_the_reason() -> None:
    with pytest.raises(InsufficientDataError, match="at least 5 units, got 3"):
        fit_rul(degrading_fleet(3, seed=15), SMALL)


def test_training_on_units_too_short_is_refused_with_the_reason() -> None:
    short = degrading_fleet(8, seed=16, life_range=(4, 8))
    with pytest.raises(InsufficientDataError, match="10\\+ rows"):
        fit_rul(short, SMALL)


def test_prediction_on_data_with_other_sensors_is_refused() -> None:
    model = fit_rul(degrading_fleet(6, seed=17), SMALL)
    other = degrading_fleet(2, seed=18)
    narrow = other.select(np.arange(other.n_rows))
    with pytest.raises(DataFormatError, match="trained on 4 sensors"):
        model.predict_rows(
            type(narrow)(
                unit=narrow.unit,
                cycle=narrow.cycle,
                settings=narrow.settings,
                sensors=narrow.sensors[:, :3],
                sensor_names=narrow.sensor_names[:3],
            )
        )


def test_bad_config_is_rejected() -> None:
    with pytest.raises(DataFormatError, match="max_features"):
        replace(SMALL, max_features=0.0)


def test_cut_points_leave_history_and_are_reproducible() -> None:
    lifetimes = {1: 200, 2: 40, 3: 20}
    a = sample_cuts(lifetimes, cuts_per_unit=4, max_eval_rul=150, min_history=30, seed=3)
    b = sample_cuts(lifetimes, cuts_per_unit=4, max_eval_rul=150, min_history=30, seed=3)
    assert all(np.array_equal(a[u], b[u]) for u in lifetimes)
    assert np.all((a[1] >= 1) & (a[1] <= 150))
    assert np.all(a[2] <= 10)  # at least 30 of 40 cycles observed
    assert a[3].size == 0  # too short to cut


def test_cross_validation_scores_cuts_of_held_out_units() -> None:
    fleet = degrading_fleet(10, seed=19)
    res = cross_validate(
        fleet, lambda t: fit_rul(t, SMALL), cap=SMALL.cap, folds=5, cuts_per_unit=2, seed=0
    )
    assert res.n_predictions == 20
    assert len(res.fold_rmse) == 5
    assert res.rmse < 25.0
    assert res.nasa_score > 0.0


def _six_conditions(traj: Trajectories, seed: int) -> Trajectories:
    """The same fleet flown at six operating conditions that shift and scale every sensor."""
    rng = np.random.default_rng(seed)
    centres = np.array(
        [[0, 0, 100], [10, 0.25, 100], [20, 0.7, 100], [25, 0.62, 60], [35, 0.84, 100],
         [42, 0.84, 100]]
    )  # fmt: skip
    k = rng.integers(0, 6, traj.n_rows)
    gain = np.linspace(0.7, 1.3, 6)[:, None] * np.ones((1, traj.sensors.shape[1]))
    offset = np.arange(6)[:, None] * 40.0 * np.ones((1, traj.sensors.shape[1]))
    return Trajectories(
        unit=traj.unit,
        cycle=traj.cycle,
        settings=centres[k] + rng.normal(0, 0.002, (traj.n_rows, 3)),
        sensors=traj.sensors * gain[k] + offset[k],
        sensor_names=traj.sensor_names,
    )


def test_model_learns_the_degradation_under_several_operating_conditions() -> None:
    train = _six_conditions(degrading_fleet(12, seed=20), seed=1)
    test = _six_conditions(degrading_fleet(4, seed=21), seed=2)
    model = fit_rul(train, SMALL)
    assert model.card.params["regimes"] == 6
    assert model.card.params["channels"] == ["s1", "s4", "hi"]
    pred = model.predict_rows(test)
    true = np.minimum(
        np.concatenate([test.cycle[s][-1] - test.cycle[s] for _, s in test.unit_slices()]), 100
    )
    assert np.sqrt(np.mean((pred - true) ** 2)) < 20.0
