"""Lead scoring: the probability that a lead converts, a 0-100 score, and its reasons.

Features are what is known before the contact's outcome: who the lead is (age, job,
marital status, education, credit flags), how and when they are contacted, the contact
history (attempts in this campaign, earlier campaigns and their outcome) and the market
context at the time (rates, confidence, employment). The outcome-revealing call length is
never a feature. The model is `insights.tabular`'s stacked model: gradient-boosted trees
(native categorical splits) on the lead's own columns, calibrated on time-ordered
out-of-fold log-odds by a logistic layer that also takes the market context. The context
(rates, confidence, employment) drifts: in the bank data the newest calls sit in an
employment range never seen in training and convert far more often. Trees would flatten
every such lead to the edge of the training range; the linear context term extrapolates
the base-rate trend instead. Validation is forward-chaining in time for the same reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]  # pandas 3 has no stubs package yet

from insights.tabular import BoolArray, FloatArray, TabularConfig, TabularModel, fit_tabular

IntArray = npt.NDArray[np.int64]

NUMERIC = (
    "age",
    "campaign",
    "pdays",
    "previous",
    "contacted_before",
)
# the conditions at the time of the contact (drifting; the linear context term)
CONTEXT = (
    "emp.var.rate",
    "cons.price.idx",
    "cons.conf.idx",
    "euribor3m",
    "nr.employed",
)
CATEGORICAL = (
    "job",
    "marital",
    "education",
    "default",
    "housing",
    "loan",
    "contact",
    "month",
    "day_of_week",
    "poutcome",
)


def lead_config(**overrides: Any) -> TabularConfig:
    # shallow, slow, large leaves: the forward-chaining CV on older calls preferred
    # strongly regularised trees (the lead mix drifts between periods too)
    base: dict[str, Any] = {
        "max_iter": 100,
        "learning_rate": 0.05,
        "min_samples_leaf": 200,
        "context": CONTEXT,
    }
    return TabularConfig(numeric=NUMERIC, categorical=CATEGORICAL, **{**base, **overrides})


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """Lead features from raw lead columns: `pdays` 999 (never contacted) becomes -1 with
    a `contacted_before` flag, so the number is a real day count and 999 no outlier."""
    out = df.copy()
    pdays = pd.to_numeric(out["pdays"], errors="coerce")
    out["contacted_before"] = (pdays != 999).astype(np.float64)
    out["pdays"] = pdays.where(pdays != 999, -1.0)
    return out


def fit_lead_model(
    df: pd.DataFrame, y: BoolArray, *, name: str = "lead-score", **kw: Any
) -> TabularModel:
    """A lead model on raw lead rows (refused with the reason on too little data)."""
    cfg = kw.pop("config", None) or lead_config()
    return fit_tabular(prepare(df), y, cfg, name=name, kind="lead-score", **kw)


def score(model: TabularModel, df: pd.DataFrame) -> FloatArray:
    """Conversion probability of every lead."""
    return model.predict_proba(prepare(df))


def score_0_100(p: FloatArray) -> IntArray:
    """The 0-100 score shown on a lead: the probability in percent, rounded."""
    return np.rint(np.clip(p, 0.0, 1.0) * 100).astype(np.int64)
