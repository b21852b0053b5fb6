"""Helpers shared by the insights benchmarks (leads, churn)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # pandas 3 has no stubs package yet
from rich.console import Console
from rich.table import Table
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from insights.tabular import BoolArray, CvFigures, FloatArray

ROOT = Path(__file__).resolve().parent.parent
# ../shared/data beside the checkout (a worktree sits one level deeper)
DATA = next(
    (
        d
        for d in (ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data")
        if d.is_dir()
    ),
    ROOT.parent / "shared" / "data",
)
OUT_DIR = ROOT / "bench" / "out"


def baseline_fit(numeric: list[str], categorical: list[str]) -> Any:
    """The reference measured in the same run: one logistic regression on the raw columns
    (one-hot categories, standardised numbers), as in most published baselines."""

    def fit(df: pd.DataFrame, y: BoolArray) -> Any:
        prep = ColumnTransformer(
            [
                (
                    "num",
                    make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                    numeric,
                ),
                ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        )
        x = df[numeric + categorical].copy()
        for c in numeric:
            x[c] = pd.to_numeric(x[c], errors="coerce")
        model = make_pipeline(prep, LogisticRegression(max_iter=2000)).fit(x, y)

        def predict(d: pd.DataFrame) -> FloatArray:
            z = d[numeric + categorical].copy()
            for c in numeric:
                z[c] = pd.to_numeric(z[c], errors="coerce")
            return np.asarray(model.predict_proba(z)[:, 1], dtype=np.float64)

        return predict

    return fit


def report(console: Console, title: str, rows: list[tuple[str, CvFigures, float]]) -> None:
    table = Table(title=title)
    for col in (
        "method",
        "AUC",
        "fold AUCs",
        "P@thr",
        "R@thr",
        "F1",
        "Brier",
        "ECE",
        "lift@10%",
        "s",
    ):
        table.add_column(col, justify="right")
    for name, cv, s in rows:
        m = cv.metrics
        table.add_row(
            name,
            f"{m['auc']:.4f}",
            " ".join(f"{a:.3f}" for a in cv.fold_auc),
            f"{m['precision']:.3f}",
            f"{m['recall']:.3f}",
            f"{m['f1']:.3f}",
            f"{m['brier']:.4f}",
            f"{m['ece']:.4f}",
            f"{m['lift_top10']:.2f}",
            f"{s:.1f}",
        )
    console.print(table)


def last_line(result: dict[str, Any]) -> None:
    print(json.dumps(result))
