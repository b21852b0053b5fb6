"""Drift of live inputs and scores (pure): a shifted stream raises, a like one does not."""

from __future__ import annotations

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # pandas 3 has no stubs package yet

from insights.drift import ALERT_PSI, MIN_ROWS, SCORE, DriftReference, psi


def _frame(rng: np.random.Generator, n: int, mean: float, share_a: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": rng.normal(mean, 1.0, n),
            "source": np.where(rng.random(n) < share_a, "a", "b"),
        }
    )


def test_a_shifted_stream_drifts_and_a_like_one_does_not() -> None:
    rng = np.random.default_rng(0)
    train = _frame(rng, 2000, 0.0, 0.5)
    ref = DriftReference.of(train, ("amount",), rng.random(2000))
    same = ref.check(_frame(rng, 500, 0.0, 0.5), rng.random(500))
    assert max(same.values()) < 0.1
    shifted = ref.check(_frame(rng, 500, 1.5, 0.9), rng.random(500) ** 4)
    assert shifted["amount"] >= ALERT_PSI and shifted["source"] >= ALERT_PSI
    assert shifted[SCORE] >= ALERT_PSI


def test_unseen_levels_and_missing_numbers_count_as_their_own_bins() -> None:
    rng = np.random.default_rng(1)
    ref = DriftReference.of(_frame(rng, 1000, 0.0, 0.5), ("amount",), rng.random(1000))
    live = _frame(rng, 200, 0.0, 0.5)
    live["source"] = "never-seen"
    live.loc[:, "amount"] = np.nan
    figures = ref.check(live, rng.random(200))
    assert figures["source"] >= ALERT_PSI and figures["amount"] >= ALERT_PSI


def test_too_small_a_sample_is_not_judged() -> None:
    rng = np.random.default_rng(2)
    ref = DriftReference.of(_frame(rng, 500, 0.0, 0.5), ("amount",), rng.random(500))
    assert ref.check(_frame(rng, MIN_ROWS - 1, 5.0, 1.0), rng.random(MIN_ROWS - 1)) == {}
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0


def test_small_samples_alert_on_a_shift_and_seldom_by_chance() -> None:
    """80 live rows against 80 training rows in ten deciles: an unshifted sample's PSI is
    often above 0.25 by chance alone (the demo's open leads raised such an alert); the
    alert level allows for the samples' sizes and still finds a real shift."""
    rng = np.random.default_rng(3)
    ref = DriftReference.of(_frame(rng, 80, 0.0, 0.5), ("amount",), rng.random(80))
    chance = [ref.check(_frame(rng, 80, 0.0, 0.5), rng.random(80))["amount"] for _ in range(200)]
    level = ref.alert_level("amount", 80)
    bare = sum(v >= ALERT_PSI for v in chance)
    assert bare >= 60  # the bare threshold alerts on a third or more of like samples
    assert sum(v >= level for v in chance) <= 30  # the level on fewer than 15%
    found = [ref.check(_frame(rng, 80, 1.0, 0.5), rng.random(80))["amount"] for _ in range(50)]
    assert sum(v >= level for v in found) >= 45  # a one-sd shift: found nine times in ten
    big = DriftReference.of(_frame(rng, 5000, 0.0, 0.5), ("amount",), rng.random(5000))
    assert big.alert_level("amount", 100_000) - ALERT_PSI < 0.01  # large samples: as before
