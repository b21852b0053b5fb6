"""Lead-scoring benchmark on UCI Bank Marketing (Moro et al. 2014), time-ordered.

Trains only on train.csv (the older 80% of the calls). Two validations, both in time
order (the market columns drift, so a shuffled CV would flatter):
- the test's own design on the training part: one model fitted on the older 80% of
  train.csv scores its newest 20% (`holdout_auc`);
- forward-chaining: the oldest 40% is always training, the rest is cut into 4 blocks, each
  scored by a model fitted on every older call (`cv_auc` pools the 4 blocks' scores).
fieldmesh's lead model (insights/leads.py: a regularised logistic regression on one-hot
categories, bands, the day's call volume and the market context) and a baseline logistic regression on the raw
columns are validated in the same run; then the lead model is fitted on all of train.csv
and scores every row of test.csv (labels withheld, scored elsewhere) -> bench/out/.

    python -m bench.leads [--quick] [--data DIR]

Scores are written at full float precision (a tie loses the tied calls' ranking).

Why the figures on train.csv sit far below the published 0.80 (see README): train.csv
holds four market regimes (employment levels), three of them in 2008 at 3-6% conversion;
within one regime the calls' own columns separate little (AUC 0.5-0.7 for every method
tried). The test part spans seven newer regimes converting much more, so its AUC comes
mostly from ranking the regimes (the context's extrapolation), which no split of
train.csv can show: in its older folds the trend even runs the other way (5191 employed
converted less than 5228).

Last line: JSON with cv_auc, holdout_auc, their baselines, the card metrics and
predictions_csv.
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
from insights import leads
from insights.cards import auc
from insights.tabular import BoolArray, FloatArray, time_ordered_cv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", type=Path, default=DATA / "leads" / "bank-marketing")
    args = ap.parse_args()
    console = Console(stderr=True)
    train = pd.read_csv(args.data / "train.csv").sort_values("row").reset_index(drop=True)
    test = pd.read_csv(args.data / "test.csv")
    y: BoolArray = (train["y"] == "yes").to_numpy()
    # each call's day volume counted over every call in time order (a day may straddle the
    # train/test cut); from the calls' columns only, never their outcomes
    both = pd.concat([train.drop(columns="y"), test]).sort_values("row")
    calls = pd.Series(leads.day_calls(both.reset_index(drop=True)).to_numpy(), index=both["row"])
    train["day_calls"] = calls.loc[train["row"]].to_numpy()
    test["day_calls"] = calls.loc[test["row"]].to_numpy()
    # the logistic model fits in seconds: --quick runs the same model (the flag is kept
    # for the common bench interface)
    cfg = leads.lead_config()
    console.print(
        f"[bold]bank marketing[/]: {len(train)} training calls ({y.mean():.1%} subscribed), "
        f"{len(test)} test calls; forward-chaining CV, 4 blocks"
    )

    def ours(df: pd.DataFrame, yy: BoolArray):  # type: ignore[no-untyped-def]
        m = leads.fit_lead_model(df, yy, config=cfg)
        return lambda d: leads.score(m, d)

    raw_num = ["age", "campaign", "pdays", "previous", "emp.var.rate", "cons.price.idx",
               "cons.conf.idx", "euribor3m", "nr.employed"]  # fmt: skip
    raw_cat = list(leads.RAW_CATEGORICAL)
    t0 = time.perf_counter()
    cv = time_ordered_cv(train, y, ours)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = time_ordered_cv(train, y, baseline_fit(raw_num, raw_cat))
    t_base = time.perf_counter() - t0
    report(
        console,
        "bank marketing: forward-chaining CV on train.csv",
        [("fieldmesh lead model", cv, t_ours), ("baseline logistic regression", base, t_base)],
    )
    cut = int(len(train) * 0.8)
    holdout = {}
    for label, fit in (
        ("fieldmesh lead model", ours),
        ("baseline", baseline_fit(raw_num, raw_cat)),
    ):
        p_new = fit(train.iloc[:cut], y[:cut])(train.iloc[cut:])
        holdout[label] = auc(p_new, y[cut:])
    console.print(
        f"  newest 20% of train.csv (rows {cut}-{len(train) - 1}) scored by one model fitted "
        f"on the older 80%, as the test is made: fieldmesh AUC "
        f"{holdout['fieldmesh lead model']:.4f}, baseline {holdout['baseline']:.4f}"
    )

    model = leads.fit_lead_model(
        train,
        y,
        config=cfg,
        data={"source": "leads/bank-marketing/train.csv", "window": "rows 0-32949"},
    )
    model.card = model.card.with_metrics(**{f"cv_{k}": v for k, v in cv.metrics.items()})
    p: FloatArray = leads.score(model, test)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / "leads_predictions.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "score"])
        for r, s in zip(test["row"].tolist(), p.tolist(), strict=True):
            w.writerow([r, repr(float(s))])
    example = model.reasons(test.iloc[:1].pipe(leads.prepare))[0]
    console.print(f"  reasons of test row {test['row'].iloc[0]}: {example}")
    console.print(f"  {len(test)} test scores (mean {np.mean(p):.3f}) -> {path}")
    last_line(
        {
            "cv_auc": round(cv.metrics["auc"], 4),
            "cv_fold_auc": [round(a, 4) for a in cv.fold_auc],
            "cv_fold_auc_mean": round(float(np.mean(cv.fold_auc)), 4),
            "baseline_cv_auc": round(base.metrics["auc"], 4),
            "holdout_auc": round(holdout["fieldmesh lead model"], 4),
            "baseline_holdout_auc": round(holdout["baseline"], 4),
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
