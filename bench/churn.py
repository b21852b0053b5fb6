"""Churn benchmark on IBM's Telco customer churn sample.

Trains only on train.csv. fieldmesh's churn model (insights/churn.py) and a baseline
logistic regression on the raw columns are cross-validated in the same run (5 folds,
stratified by outcome, fixed seed; 3 folds and fewer trees with --quick); then the churn model is fitted on all of train.csv
and scores every customer of test.csv (labels withheld, scored elsewhere) -> bench/out/.

    python -m bench.churn [--quick] [--data DIR]

Last line: JSON with cv_auc, baseline_cv_auc, the card metrics and predictions_csv.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # pandas 3 has no stubs package yet
from rich.console import Console

from bench._common import DATA, OUT_DIR, baseline_fit, last_line, report
from insights import churn
from insights.tabular import BoolArray, FloatArray, stratified_cv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", type=Path, default=DATA / "churn" / "telco")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    console = Console(stderr=True)
    train = pd.read_csv(args.data / "train.csv")
    test = pd.read_csv(args.data / "test.csv")
    y: BoolArray = (train["Churn"] == "Yes").to_numpy()
    cfg = churn.churn_config()  # a logistic regression: --quick only runs fewer folds
    console.print(
        f"[bold]telco churn[/]: {len(train)} training customers ({y.mean():.1%} churned), "
        f"{len(test)} test customers; stratified CV (5 folds, 3 with --quick; seed {args.seed})"
    )

    def ours(df: pd.DataFrame, yy: BoolArray):  # type: ignore[no-untyped-def]
        m = churn.fit_churn_model(df, yy, config=cfg)
        return lambda d: churn.score(m, d)

    raw_num = ["tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"]
    raw_cat = [*churn.RAW_CATEGORICAL, "PhoneService"]
    t0 = time.perf_counter()
    folds = 3 if args.quick else 5
    cv = stratified_cv(train, y, ours, folds=folds, seed=args.seed)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = stratified_cv(train, y, baseline_fit(raw_num, raw_cat), folds=folds, seed=args.seed)
    t_base = time.perf_counter() - t0
    report(
        console,
        f"telco churn: {folds}-fold CV on train.csv",
        [("fieldmesh churn model", cv, t_ours), ("baseline logistic regression", base, t_base)],
    )
    model = churn.fit_churn_model(
        train, y, config=cfg, data={"source": "churn/telco/train.csv", "window": "snapshot"}
    )
    model.card = model.card.with_metrics(**{f"cv_{k}": v for k, v in cv.metrics.items()})
    p: FloatArray = churn.score(model, test)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / "churn_predictions.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["customerID", "score"])
        for r, s in zip(test["customerID"].tolist(), p.tolist(), strict=True):
            w.writerow([r, repr(float(s))])
    example = model.reasons(churn.prepare(test.iloc[:1]))[0]
    console.print(f"  reasons of {test['customerID'].iloc[0]}: {example}")
    console.print(f"  {len(test)} test scores (mean {np.mean(p):.3f}) -> {path}")
    last_line(
        {
            "cv_auc": round(cv.metrics["auc"], 4),
            "cv_fold_auc": [round(a, 4) for a in cv.fold_auc],
            "baseline_cv_auc": round(base.metrics["auc"], 4),
            "cv_f1": round(cv.metrics["f1"], 4),
            "cv_precision": round(cv.metrics["precision"], 4),
            "cv_recall": round(cv.metrics["recall"], 4),
            "cv_brier": round(cv.metrics["brier"], 5),
            "cv_ece": round(cv.metrics["ece"], 5),
            "cv_lift_top10": round(cv.metrics["lift_top10"], 3),
            "model_version": model.card.version,
            "quick": args.quick,
            "predictions_csv": str(path),
        }
    )


if __name__ == "__main__":
    main()
