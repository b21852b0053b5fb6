from __future__ import annotations

import math

import numpy as np
import pytest

from insights.maintenance.errors import DataFormatError
from insights.maintenance.metrics import classification, nasa_score, rmse


def test_nasa_score_matches_hand_computed_values() -> None:
    # d = -13 (early): e^1 - 1; d = 0: 0; d = 10 (late): e^1 - 1; d = 20: e^2 - 1
    predicted = np.array([87.0, 50.0, 60.0, 40.0])
    true = np.array([100.0, 50.0, 50.0, 20.0])
    expected = 2 * (math.e - 1) + (math.e**2 - 1)
    assert nasa_score(predicted, true) == pytest.approx(expected)


def test_nasa_score_punishes_late_more_than_early() -> None:
    true = np.array([50.0])
    assert nasa_score(true + 10, true) > nasa_score(true - 10, true)


def test_rmse_of_hand_computed_errors() -> None:
    assert rmse(np.array([1.0, 3.0]), np.array([0.0, 0.0])) == pytest.approx(math.sqrt(5.0))


def test_metrics_refuse_mismatched_lengths() -> None:
    with pytest.raises(DataFormatError, match="predicted has 2"):
        rmse(np.array([1.0, 2.0]), np.array([1.0]))


def test_classification_counts_and_rates() -> None:
    c = classification(np.array([1, 1, 0, 0, 1], bool), np.array([1, 0, 1, 0, 1], bool))
    assert (c.true_positives, c.false_positives, c.false_negatives, c.true_negatives) == (
        2,
        1,
        1,
        1,
    )
    assert c.precision == pytest.approx(2 / 3)
    assert c.recall == pytest.approx(2 / 3)
    assert c.f1 == pytest.approx(2 / 3)


def test_classification_with_no_alerts_has_zero_precision_not_an_error() -> None:
    c = classification(np.zeros(3, bool), np.array([1, 0, 0], bool))
    assert c.precision == 0.0
    assert c.recall == 0.0
