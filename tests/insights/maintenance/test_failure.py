from __future__ import annotations

import numpy as np
import pytest

from insights.maintenance.errors import InsufficientDataError
from insights.maintenance.failure import FailureConfig, failure_labels, fit_failure
from insights.maintenance.metrics import classification
from insights.maintenance.simfleet import simulate_fleet

FAST = FailureConfig(max_iter=80, learning_rate=0.1)


def test_labels_mark_rows_within_the_horizon_before_failure() -> None:
    dtf = np.array([10.0, 7.0, 3.5, 0.5, np.inf])
    assert failure_labels(dtf, 7.0).tolist() == [False, True, True, True, False]


def test_simulated_histories_end_before_the_injected_failure() -> None:
    fleet = simulate_fleet(20, 30, seed=1)
    assert fleet.traj.n_rows == fleet.days_to_failure.size
    assert np.all(fleet.days_to_failure > 0)
    failing = [a for a in fleet.assets if np.isfinite(a.failure_s)]
    assert 0 < len(failing) < len(fleet.assets)


def test_classifier_alerts_on_held_out_simulated_assets_before_failure() -> None:
    fleet = simulate_fleet(120, 45, seed=2)
    traj, dtf = fleet.traj, fleet.days_to_failure
    held_out = traj.unit > 90
    model = fit_failure(traj.select(~held_out), dtf[~held_out], FAST, source="test")
    result = classification(
        model.alerts(traj.select(held_out)), failure_labels(dtf[held_out], FAST.horizon)
    )
    assert result.true_positives > 0
    assert result.precision > 0.6
    assert result.recall > 0.6


def test_training_without_failures_is_refused_with_the_reason() -> None:
    fleet = simulate_fleet(30, 20, seed=3)
    never = np.full(fleet.traj.n_rows, np.inf)
    with pytest.raises(InsufficientDataError, match="units that fail in the data, got 0"):
        fit_failure(fleet.traj, never, FAST)
