"""Forecasting benchmark on the M4 Weekly (h=13) and Hourly (h=48) series.

Validation by the M4 protocol on the training series only: each series' last h points are
held out, forecast from the rest, and scored by sMAPE and MASE (seasonal naive scale, m=1
weekly, m=24 hourly), averaged over the series; OWA is the mean of their ratios to Naive2
measured in the same run. Theta (the M4 reference, weekly OWA 0.971) is measured too.
Then fieldmesh's forecaster (insights/forecast.py) forecasts the next h values of every
full training series -> bench/out/forecast_predictions.csv (`series,h,value`), scored
elsewhere.

    python -m bench.forecast [--quick] [--data DIR]

`--quick` validates on a fixed sample of the series but still forecasts every series.
Last line: JSON with weekly and hourly sMAPE, MASE and OWA and predictions_csv.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from bench._common import DATA, OUT_DIR, last_line
from insights import forecast as fc

FloatArray = fc.FloatArray


@dataclass(frozen=True, slots=True)
class Freq:
    name: str
    file: str
    h: int
    m: int  # the M4 scaling and Naive2 period
    season: int  # the period fieldmesh deseasonalises at (weekly data: the year)
    profile: int  # cycles in the season profile (0: smoothing methods instead)


FREQS = (
    Freq("Weekly", "Weekly-train.csv.gz", 13, 1, 52, 0),
    Freq("Hourly", "Hourly-train.csv", 48, 24, 24, 7),
)


def read_m4(path: Path) -> dict[str, FloatArray]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    out: dict[str, FloatArray] = {}
    with opener(path, "rt", newline="") as fh:
        rows = csv.reader(fh)
        next(rows)
        for row in rows:
            out[row[0]] = np.array([float(v) for v in row[1:] if v != ""], dtype=np.float64)
    return out


def ours(f: Freq) -> fc.Method:
    return fc.combine(fc.methods_for(f.season, f.profile))


def evaluate(
    series: dict[str, FloatArray], f: Freq, methods: dict[str, fc.Method]
) -> dict[str, tuple[float, float]]:
    """Mean sMAPE and MASE of every method on the last-h holdout of every series."""
    acc: dict[str, list[tuple[float, float]]] = {k: [] for k in methods}
    for y in series.values():
        train, true = y[: -f.h], y[-f.h :]
        for k, method in methods.items():
            pred = np.maximum(method(train, f.h), 0.0)
            acc[k].append((fc.smape(true, pred), fc.mase(train, true, pred, f.m)))
    return {
        k: (float(np.nanmean([a for a, _ in v])), float(np.nanmean([b for _, b in v])))
        for k, v in acc.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", type=Path, default=DATA / "forecast" / "m4")
    args = ap.parse_args()
    console = Console(stderr=True)
    result: dict[str, Any] = {}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / "forecast_predictions.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["series", "h", "value"])
        for f in FREQS:
            series = read_m4(args.data / f.file)
            cv_series = series
            if args.quick:
                keys = sorted(series)
                pick = np.random.default_rng(0).choice(
                    len(keys), size=min(40, len(keys)), replace=False
                )
                cv_series = {keys[i]: series[keys[i]] for i in sorted(pick)}
            t0 = time.perf_counter()
            scores = evaluate(
                cv_series,
                f,
                {
                    "fieldmesh": ours(f),
                    "Naive2": fc.deseasonalised(fc.naive, f.m),
                    "Theta": fc.deseasonalised(fc.theta, f.m),
                },
            )
            elapsed = time.perf_counter() - t0
            n_s, n_m = scores["Naive2"]
            table = Table(
                title=f"M4 {f.name}: last-{f.h} holdout of {len(cv_series)} training series"
            )
            for col in ("method", "sMAPE", "MASE", "OWA"):
                table.add_column(col, justify="right")
            for k, (s, m) in scores.items():
                table.add_row(k, f"{s:.3f}", f"{m:.3f}", f"{0.5 * (s / n_s + m / n_m):.3f}")
            console.print(table)
            console.print(f"  validated in {elapsed:.1f} s")
            s, m = scores["fieldmesh"]
            key = f.name.lower()
            result[f"{key}_smape"] = round(s, 4)
            result[f"{key}_mase"] = round(m, 4)
            result[f"{key}_owa"] = round(0.5 * (s / n_s + m / n_m), 4)
            ts, tm = scores["Theta"]
            result[f"{key}_theta_owa"] = round(0.5 * (ts / n_s + tm / n_m), 4)
            result[f"{key}_series_validated"] = len(cv_series)
            method = ours(f)
            for sid, y in series.items():
                # the point forecast only: the interval's backtest would double the cost
                point = np.maximum(method(y, f.h), 0.0)
                for i, v in enumerate(point.tolist(), start=1):
                    w.writerow([sid, i, f"{v:.4f}"])
    console.print(f"  forecasts -> {path}")
    last_line({**result, "quick": args.quick, "predictions_csv": str(path)})


if __name__ == "__main__":
    main()
