"""Lead, churn and forecast models on small generated data: refusals, reasons, intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # pandas 3 has no stubs package yet
import pytest

from insights import churn, forecast, leads
from insights.cards import auc, binary_metrics
from insights.maintenance.errors import InsufficientDataError
from insights.maintenance.registry import ModelStore


def _leads(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "job": rng.choice(["admin.", "student", "retired", "services"], n),
            "marital": rng.choice(["married", "single"], n),
            "education": rng.choice(["basic.4y", "university.degree"], n),
            "default": "no",
            "housing": rng.choice(["yes", "no"], n),
            "loan": "no",
            "contact": rng.choice(["cellular", "telephone"], n),
            "month": rng.choice(["may", "jun"], n),
            "day_of_week": rng.choice(["mon", "tue"], n),
            "campaign": rng.integers(1, 6, n),
            "pdays": np.where(rng.random(n) < 0.2, rng.integers(1, 20, n), 999),
            "previous": rng.integers(0, 3, n),
            "poutcome": rng.choice(["nonexistent", "failure", "success"], n),
            "emp.var.rate": rng.normal(0, 1, n),
            "cons.price.idx": 93.0,
            "cons.conf.idx": -40.0,
            "euribor3m": rng.normal(3, 1, n),
            "nr.employed": 5100.0,
        }
    )
    # conversion driven by earlier success and a cellular contact, nothing else
    z = -2.5 + 3.0 * (df["poutcome"] == "success") + 1.5 * (df["contact"] == "cellular")
    y = rng.random(n) < 1 / (1 + np.exp(-z.to_numpy()))
    return df, y


def test_lead_model_ranks_and_gives_reasons(tmp_path: object) -> None:
    df, y = _leads(1500)
    model = leads.fit_lead_model(df.iloc[:1000], y[:1000])
    p = leads.score(model, df.iloc[1000:])
    assert auc(p, y[1000:]) > 0.75
    score = leads.score_0_100(p)
    assert score.min() >= 0 and score.max() <= 100
    hot = df.iloc[1000:][(df.iloc[1000:]["poutcome"] == "success").to_numpy()].iloc[:1]
    reasons = model.reasons(leads.prepare(hot))[0]
    assert len(reasons) == 3
    assert reasons[0].feature == "poutcome" and reasons[0].value == "success"
    assert reasons[0].contribution > 0
    assert model.card.kind == "lead-score" and model.card.data["rows"] == 1000


def test_lead_model_refuses_too_little_data() -> None:
    df, y = _leads(100)
    with pytest.raises(InsufficientDataError, match="100 labelled rows, at least 200"):
        leads.fit_lead_model(df, y)
    df, y = _leads(600)
    with pytest.raises(InsufficientDataError, match="0 positive"):
        leads.fit_lead_model(df, np.zeros(600, dtype=bool))


def test_lead_model_saved_and_loaded_through_the_registry(tmp_path: pytest.TempPathFactory) -> None:
    df, y = _leads(600)
    model = leads.fit_lead_model(df, y)
    store = ModelStore(tmp_path)  # type: ignore[arg-type]
    store.save(model)
    assert store.versions("lead-score") == [model.card.version]
    loaded = store.load("lead-score")
    np.testing.assert_allclose(leads.score(loaded, df.iloc[:5]), leads.score(model, df.iloc[:5]))
    assert store.card("lead-score", model.card.version).params["numeric"][0] == "age"


def test_churn_model_reasons_name_the_contract() -> None:
    rng = np.random.default_rng(1)
    n = 800

    def yes_no() -> np.ndarray:
        return rng.choice(["Yes", "No"], n)

    df = pd.DataFrame(
        {
            "customerID": [f"C{i}" for i in range(n)],
            "gender": rng.choice(["Male", "Female"], n),
            "SeniorCitizen": rng.integers(0, 2, n),
            "Partner": yes_no(),
            "Dependents": yes_no(),
            "tenure": rng.integers(0, 72, n),
            "PhoneService": yes_no(),
            "MultipleLines": yes_no(),
            "InternetService": rng.choice(["DSL", "Fiber optic", "No"], n),
            "OnlineSecurity": yes_no(),
            "OnlineBackup": yes_no(),
            "DeviceProtection": yes_no(),
            "TechSupport": yes_no(),
            "StreamingTV": yes_no(),
            "StreamingMovies": yes_no(),
            "Contract": rng.choice(["Month-to-month", "One year", "Two year"], n),
            "PaperlessBilling": yes_no(),
            "PaymentMethod": rng.choice(["Electronic check", "Mailed check"], n),
            "MonthlyCharges": rng.uniform(20, 110, n).round(2),
        }
    )
    df["TotalCharges"] = (df["MonthlyCharges"] * df["tenure"]).round(2).astype(str)
    df.loc[df["tenure"] == 0, "TotalCharges"] = " "  # blank, as in the source data
    y = rng.random(n) < np.where(df["Contract"] == "Month-to-month", 0.6, 0.05)
    model = churn.fit_churn_model(df, y)
    p = churn.score(model, df)
    assert auc(p, y) > 0.7
    risky = df[(df["Contract"] == "Month-to-month").to_numpy()].iloc[:1]
    assert model.reasons(churn.prepare(risky))[0][0].feature == "Contract"


def test_binary_metrics_on_known_scores() -> None:
    s = np.array([0.9, 0.8, 0.3, 0.2])
    y = np.array([True, False, True, False])
    m = binary_metrics(s, y, threshold=0.5)
    assert m["auc"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert m["brier"] == pytest.approx((0.01 + 0.64 + 0.49 + 0.04) / 4)


def test_forecast_has_intervals_and_finds_the_season() -> None:
    t = np.arange(24 * 7 * 6, dtype=np.float64)
    rng = np.random.default_rng(2)
    y = 100 + 0.05 * t + 20 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 2, t.size)
    f = forecast.forecast(y, 48, 24, forecast.methods_for(24, 7))
    assert f.point.shape == f.lower.shape == f.upper.shape == (48,)
    assert np.all(f.lower <= f.point) and np.all(f.point <= f.upper)
    assert f.seasonal and f.trend > 0
    truth = (
        100
        + 0.05 * (t.size + np.arange(48))
        + 20 * np.sin(2 * np.pi * (t.size + np.arange(48)) / 24)
    )
    assert np.mean((truth >= f.lower) & (truth <= f.upper)) > 0.8
    flat = forecast.naive(y, 48)  # ignores the daily cycle
    assert forecast.smape(truth, f.point) < forecast.smape(truth, flat) / 2


def test_forecast_refuses_a_short_series() -> None:
    with pytest.raises(InsufficientDataError, match="10 observations; at least 26"):
        forecast.forecast(np.ones(10), 13, 24)


def test_weekly_forecast_follows_a_trend() -> None:
    y = 50 + 2.0 * np.arange(120) + np.random.default_rng(3).normal(0, 1, 120)
    f = forecast.forecast(y, 13)
    assert not f.seasonal
    assert f.point[-1] > y[-1]  # the trend goes on, where naive would stay flat


def test_hourly_selection_follows_a_weekly_shape_the_day_profile_misses() -> None:
    rng = np.random.default_rng(4)
    hours = np.arange(24 * 7 * 8)
    weekday = (hours // 24) % 7
    # weekdays busy by the hour, weekends quiet: a week shape, not a day shape
    y = 100 + np.where(weekday < 5, 50 * np.sin(np.pi * (hours % 24) / 24), 5.0)
    y = y + rng.normal(0, 1, y.size)
    train, true = y[:-48], y[-48:]
    chosen = forecast.select_by_backtest(forecast.profile_candidates(24, 7), 24, min_train=14 * 24)
    day_only = forecast.cycle_profile(24, 7)
    err_chosen = forecast.mase(train, true, chosen(train, 48), 24)
    err_day = forecast.mase(train, true, day_only(train, 48), 24)
    assert err_chosen < 0.5 * err_day
    # too short for a backtest: the first candidate (the day profile) answers
    short = y[: 24 * 10]
    np.testing.assert_allclose(chosen(short, 24), day_only(short, 24))


def test_pooled_forecaster_learns_a_shared_day_shape_and_refuses_short_series() -> None:
    from insights import pooled

    rng = np.random.default_rng(3)
    hours = np.arange(24 * 30)
    shape = 1.0 + 0.6 * np.sin(2 * np.pi * hours / 24)
    series = [
        float(rng.uniform(50, 500)) * shape * (1 + 0.02 * rng.standard_normal(hours.size))
        for _ in range(12)
    ]
    cfg = pooled.hourly_config(origins_per_series=60, max_iter=80)
    train = [y[:-48] for y in series]
    model = pooled.fit_pooled(train, cfg)
    pred = model.predict(train)
    assert pred.shape == (12, 48)
    err = np.mean([forecast.smape(y[-48:], p) for y, p in zip(series, pred, strict=True)])
    flat = np.mean([forecast.smape(y[-48:], np.full(48, y[-49])) for y in series])
    assert err < flat / 3  # the day's shape, not a flat line, at every series' own level
    both = pooled.combined(pred, train, forecast.naive, 48)
    assert both.shape == (12, 48) and np.all(both >= 0)
    with pytest.raises(InsufficientDataError, match="training windows"):
        pooled.fit_pooled([y[:60] for y in series[:2]], cfg)
    rec = pooled.fit_recursive(train, pooled.hourly_recursive(origins_per_series=80, max_iter=80))
    steps = rec.predict(train, 48)
    assert steps.shape == (12, 48)
    rerr = np.mean([forecast.smape(y[-48:], p) for y, p in zip(series, steps, strict=True)])
    assert rerr < flat / 3
    med = pooled.median_of(pred, steps, np.zeros_like(pred))
    assert np.all(med >= 0) and np.all(med <= np.maximum(pred, steps) + 1e-9)


def test_pooled_linear_model_extrapolates_shared_growth_and_refuses_short_series() -> None:
    from insights import pooled

    rng = np.random.default_rng(3)
    t = np.arange(300, dtype=np.float64)
    # every series grows 0.5% a week from its own level, with noise
    series = [
        lvl * np.exp(0.005 * t) * np.exp(rng.normal(0, 0.01, t.size))
        for lvl in rng.uniform(50, 500, 12)
    ]
    train = [y[:-13] for y in series]
    model = pooled.fit_linear(train, pooled.weekly_linear())
    pred = model.predict(train)
    assert pred.shape == (12, 13)
    truth = np.stack([y[-13:] for y in series])
    naive = np.stack([np.full(13, y[-1]) for y in train])
    # the growth is learned: far closer than the naive forecast, rising over the horizon
    assert np.mean(np.abs(pred - truth)) < 0.5 * np.mean(np.abs(naive - truth))
    assert np.all(pred[:, -1] > pred[:, 0])
    with pytest.raises(InsufficientDataError, match="training windows"):
        pooled.fit_linear([y[:40] for y in series[:2]], pooled.weekly_linear())


def test_pooled_mlp_learns_a_shared_cycle_at_each_level_and_phase() -> None:
    """Every series rises and falls over 26 weeks, each at its own level and phase: the
    pooled MLP continues each one's cycle (the naive forecast holds the last value), and
    refuses series too short for a training window."""
    from insights import pooled

    rng = np.random.default_rng(4)
    t = np.arange(260, dtype=np.float64)
    series = [
        lvl * (1 + 0.3 * np.sin(2 * np.pi * t / 26 + phase)) * np.exp(rng.normal(0, 0.01, t.size))
        for lvl, phase in zip(rng.uniform(50, 500, 16), rng.uniform(0, 2 * np.pi, 16), strict=True)
    ]
    train = [y[:-13] for y in series]
    cfg = pooled.weekly_mlp(origins_per_series=150, seeds=2, max_iter=120)
    pred = pooled.fit_mlp(train, cfg).predict(train)
    assert pred.shape == (16, 13) and np.all(np.isfinite(pred)) and np.all(pred > 0)
    truth = np.stack([y[-13:] for y in series])
    naive = np.stack([np.full(13, y[-1]) for y in train])
    assert np.mean(np.abs(pred - truth)) < 0.3 * np.mean(np.abs(naive - truth))
    with pytest.raises(InsufficientDataError, match="training windows"):
        pooled.fit_mlp([y[:40] for y in series[:2]], cfg)


def test_segments_are_chosen_by_silhouette_and_named_by_profile() -> None:
    from insights import segments

    rng = np.random.default_rng(5)
    rich = pd.DataFrame(
        {
            "log_revenue": rng.normal(10, 0.2, 40),
            "won_365": rng.integers(3, 6, 40),
            "activities_90": rng.integers(5, 9, 40),
            "days_since_won": rng.normal(30, 5, 40),
            "churn": rng.uniform(0.05, 0.2, 40),
        }
    )
    lapsed = pd.DataFrame(
        {
            "log_revenue": np.zeros(40),
            "won_365": np.zeros(40),
            "activities_90": np.zeros(40),
            "days_since_won": rng.normal(400, 20, 40),
            "churn": rng.uniform(0.7, 0.9, 40),
        }
    )
    seg = segments.segment(pd.concat([rich, lapsed], ignore_index=True))
    assert seg.k == 2 and seg.silhouette is not None and seg.silhouette > 0.5
    assert set(seg.labels[:40]) == {"high-revenue, engaged, loyal"}
    assert set(seg.labels[40:]) == {"low-revenue, quiet, at risk"}
    assert segments.segment(rich.iloc[:5]).labels == ["all customers"] * 5
    # CLV: m r / (1 + d - r); no retention, no value; higher retention, more value
    assert segments.clv(1000.0, 0.0) == 0.0
    assert abs(segments.clv(1000.0, 0.8) - 1000 * 0.8 / 0.3) < 1e-9
    assert segments.clv(1000.0, 0.9) > segments.clv(1000.0, 0.8)
