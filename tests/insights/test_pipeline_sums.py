"""The pipeline forecast's simulation over a large pipeline (insights.pipeline.period_sums):
bounded memory, and the same figures as one draw of every simulated outcome."""

from __future__ import annotations

import tracemalloc

import numpy as np

from insights.pipeline import SIMULATIONS, period_sums


def _one_draw(seed: int, prob: np.ndarray, amount: np.ndarray, period: np.ndarray) -> np.ndarray:
    wins = np.random.default_rng(seed).random((SIMULATIONS, len(prob))) < prob
    return np.stack([(wins[:, period == k] * amount[period == k]).sum(axis=1) for k in range(3)])


def test_a_forecast_over_twenty_thousand_open_deals_stays_within_a_hundred_megabytes() -> None:
    """Any reader's GET /insights/forecast/pipeline?group_by=all over 20,000 open deals drew
    4,000 x 20,000 random numbers at once: 640 MB for one request (and 2.5 CPU-seconds on
    the API worker's event loop), so a few requests at once exhausted the worker. The
    draw now goes in blocks: the peak stays under 100 MB."""
    n = 20_000
    prob = np.linspace(0.05, 0.95, n)
    amount = np.linspace(100.0, 10_000.0, n)
    period = np.arange(n) % 4  # the fourth period lies beyond the three forecast
    tracemalloc.start()
    try:
        sums = period_sums(np.random.default_rng(7), prob, amount, period, 3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sums.shape == (3, SIMULATIONS)
    assert peak < 100e6, f"{peak / 1e6:.0f} MB"
    expected = (prob * amount)[period == 0].sum()
    assert abs(sums[0].mean() - expected) < 0.02 * expected


def test_blocks_give_the_figures_of_one_draw() -> None:
    for n in (0, 1, 300, 2_500):  # one block, and several (1,000,000 numbers a block)
        prob = np.linspace(0.1, 0.9, n)
        amount = np.linspace(50.0, 5_000.0, n)
        period = np.arange(n) % 3
        got = period_sums(np.random.default_rng(11), prob, amount, period, 3)
        assert np.array_equal(got, _one_draw(11, prob, amount, period)), n
