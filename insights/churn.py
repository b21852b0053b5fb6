"""Churn risk: the probability that a customer leaves, with the reasons.

Features are the account's contract and billing (contract type, payment method, paperless
billing, monthly and total charges), its tenure, the services it takes and who the
customer is. Derived features carry what the raw columns hide: the average monthly charge
over the whole tenure and how far today's charge is above it (a recent price rise), the
number of services taken, and whether the customer has any support or security add-on.
The model is `insights.tabular`'s blend of boosted trees and a logistic regression.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # pandas 3 has no stubs package yet

from insights.tabular import BoolArray, FloatArray, TabularConfig, TabularModel, fit_tabular

SERVICES = (
    "PhoneService",
    "MultipleLines",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
)
NUMERIC = (
    "tenure",
    "MonthlyCharges",
    "TotalCharges",
    "avg_charge",
    "charge_rise",
    "n_services",
    "SeniorCitizen",
)
CATEGORICAL = (
    "gender",
    "Partner",
    "Dependents",
    "MultipleLines",
    "InternetService",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
    "Contract",
    "PaperlessBilling",
    "PaymentMethod",
)


def churn_config(**overrides: Any) -> TabularConfig:
    base: dict[str, Any] = {"tree_weight": 0.4, "learning_rate": 0.03, "min_samples_leaf": 60}
    return TabularConfig(numeric=NUMERIC, categorical=CATEGORICAL, **{**base, **overrides})


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    tenure = pd.to_numeric(out["tenure"], errors="coerce").astype(np.float64)
    monthly = pd.to_numeric(out["MonthlyCharges"], errors="coerce").astype(np.float64)
    # a blank total is a customer in their first month: nothing billed yet
    total = pd.to_numeric(out["TotalCharges"], errors="coerce").astype(np.float64).fillna(0.0)
    avg = (total / tenure.where(tenure > 0)).fillna(monthly)
    out["TotalCharges"] = total
    out["avg_charge"] = avg
    out["charge_rise"] = monthly - avg
    out["n_services"] = sum(
        (out[c].astype(str) == "Yes").astype(np.float64) for c in SERVICES if c in out
    )
    return out


def fit_churn_model(
    df: pd.DataFrame, y: BoolArray, *, name: str = "churn-risk", **kw: Any
) -> TabularModel:
    cfg = kw.pop("config", None) or churn_config()
    return fit_tabular(prepare(df), y, cfg, name=name, kind="churn-risk", **kw)


def score(model: TabularModel, df: pd.DataFrame) -> FloatArray:
    """Churn probability of every customer."""
    return model.predict_proba(prepare(df))
