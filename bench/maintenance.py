"""Predictive-maintenance benchmark: RUL on NASA C-MAPSS and failure alerts on the sim fleet.

Part 1 (C-MAPSS, FD001 by default): fieldmesh's RUL method (insights/maintenance/rul.py)
is cross-validated by engine on the training trajectories only — each validation engine
cut at several random points (fixed seed), the RUL predicted at each cut — and compared
with the reference method measured in the same run (a random forest on one row's raw
sensors). Then it is trained on the whole training set and predicts the RUL of every test
engine at its last cycle, written to bench/out/ as `unit,rul`. The test labels are not
read.

Part 2 (simulated fleet): run-to-failure histories of many simulated assets from the
simulator's physics (firmware_sim/physics.py), a failure-within-7-days classifier trained
on part of the assets, precision and recall of its daily alerts on held-out assets.

    python -m bench.maintenance [--quick] [--instances DIR] [--dataset FD001] [--seed N]

Last line: one JSON object with cv_rmse, nasa_score, sim_precision, sim_recall and
predictions_csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from insights.maintenance.cmapss import Trajectories, read_cmapss
from insights.maintenance.failure import FailureConfig, failure_labels, fit_failure
from insights.maintenance.metrics import Classification, classification
from insights.maintenance.rul import RulConfig, fit_raw_forest_baseline, fit_rul
from insights.maintenance.simfleet import simulate_fleet
from insights.maintenance.validation import CvResult, cross_validate

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pdm" / "cmapss"
OUT_DIR = ROOT / "bench" / "out"


def _cv(
    name: str, traj: Trajectories, fit: Any, cap: float, cuts: int, seed: int, console: Console
) -> tuple[CvResult, float]:
    t0 = time.perf_counter()
    res = cross_validate(traj, fit, cap=cap, folds=5, cuts_per_unit=cuts, seed=seed)
    elapsed = time.perf_counter() - t0
    console.print(f"  {name}: CV RMSE {res.rmse:.2f} in {elapsed:.1f} s")
    return res, elapsed


def run_cmapss(
    data_dir: Path, dataset: str, quick: bool, seed: int, console: Console
) -> dict[str, Any]:
    train = read_cmapss(data_dir / f"train_{dataset}.txt")
    test_path = data_dir / f"test_{dataset}.txt"
    cfg = RulConfig(seed=seed)
    cuts = 5
    forest_trees = 100
    if quick:
        cfg = replace(cfg, n_models=1, max_iter=150, learning_rate=0.1)
        cuts = 3
        forest_trees = 30
    console.print(
        f"[bold]C-MAPSS {dataset}[/]: {len(train.unit_slices())} training units, "
        f"{train.n_rows} rows; 5-fold CV by unit, {cuts} cuts per unit (seed {seed})"
    )
    ours, ours_s = _cv(
        "fieldmesh RUL",
        train,
        lambda t: fit_rul(t, cfg, source="cv-fold"),
        cfg.cap,
        cuts,
        seed,
        console,
    )
    base, base_s = _cv(
        "baseline RF on raw row",
        train,
        lambda t: fit_raw_forest_baseline(t, cap=cfg.cap, n_estimators=forest_trees, seed=seed),
        cfg.cap,
        cuts,
        seed,
        console,
    )
    table = Table(title=f"C-MAPSS {dataset}: cross-validated RUL at random cuts")
    for col in ("method", "RMSE (true clipped)", "RMSE (true raw)", "NASA score", "preds", "s"):
        table.add_column(col, justify="right")
    for name, r, s in (("fieldmesh", ours, ours_s), ("random forest, raw", base, base_s)):
        table.add_row(
            name,
            f"{r.rmse:.2f}",
            f"{r.rmse_raw:.2f}",
            f"{r.nasa_score:.1f}",
            str(r.n_predictions),
            f"{s:.1f}",
        )
    console.print(table)
    console.print(
        f"  RMSE ratio baseline/fieldmesh: {base.rmse / ours.rmse:.2f}x; "
        f"NASA score is per repetition (one cut per unit), true RUL clipped at {cfg.cap:g}"
    )

    model = fit_rul(train, cfg, name=f"rul-cmapss-{dataset.lower()}", source=str(data_dir))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    csv_path = OUT_DIR / f"maintenance_{dataset}_predictions.csv"
    if test_path.is_file():
        test = read_cmapss(test_path)
        units, rul = model.predict_last(test)
        with csv_path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["unit", "rul"])
            for u, r in zip(units.tolist(), rul.tolist(), strict=True):
                w.writerow([u, f"{r:.2f}"])
        console.print(f"  test predictions for {len(units)} units -> {csv_path}")
    card = model.card.with_metrics(
        cv_rmse=ours.rmse, cv_rmse_raw=ours.rmse_raw, nasa_score=ours.nasa_score
    )
    (OUT_DIR / f"maintenance_{dataset}_model_card.json").write_text(
        json.dumps(card.to_dict(), indent=2)
    )
    return {
        "cv_rmse": round(ours.rmse, 3),
        "cv_rmse_raw": round(ours.rmse_raw, 3),
        "nasa_score": round(ours.nasa_score, 2),
        "baseline_cv_rmse": round(base.rmse, 3),
        "rmse_ratio_vs_baseline": round(base.rmse / ours.rmse, 3),
        "predictions_csv": str(csv_path),
    }


# ------------------------------------------------------------------ simulated fleet

HORIZON_DAYS = 7.0


@dataclass(frozen=True, slots=True)
class FleetResult:
    model: Classification
    baseline: Classification
    assets_train: int
    assets_test: int
    failures_caught: int
    failures_test: int
    median_lead_days: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "sim_precision": round(self.model.precision, 4),
            "sim_recall": round(self.model.recall, 4),
            "sim_f1": round(self.model.f1, 4),
            "sim_baseline_precision": round(self.baseline.precision, 4),
            "sim_baseline_recall": round(self.baseline.recall, 4),
            "sim_failures_caught": f"{self.failures_caught}/{self.failures_test}",
        }


def run_fleet(*, quick: bool, seed: int, console: Console) -> FleetResult:
    n_assets, days = (160, 60) if quick else (400, 90)
    t0 = time.perf_counter()
    fleet = simulate_fleet(n_assets, days, seed)
    traj, dtf = fleet.traj, fleet.days_to_failure
    units = np.array([u for u, _ in traj.unit_slices()], dtype=np.int64)
    perm = np.random.default_rng(seed + 1).permutation(units)
    test_units = perm[: len(perm) * 3 // 10]
    test_rows = np.isin(traj.unit, test_units)
    train = traj.select(~test_rows)
    test = traj.select(test_rows)
    console.print(
        f"[bold]Simulated fleet[/]: {len(units)} assets x up to {days} days "
        f"({traj.n_rows} asset-days) in {time.perf_counter() - t0:.1f} s; "
        f"train on {len(units) - len(test_units)} assets, hold out {len(test_units)}"
    )
    cfg = FailureConfig(horizon=HORIZON_DAYS, seed=seed)
    model = fit_failure(train, dtf[~test_rows], cfg, source="firmware_sim.physics")
    truth = failure_labels(dtf[test_rows], HORIZON_DAYS)
    alerts = model.alerts(test)
    ours = classification(alerts, truth)

    # Baseline: a static threshold rule, any daily mean beyond 3 sd of the healthy rows of
    # its equipment model (fitted on the training assets' rows far from any failure).
    healthy = ~(np.isfinite(dtf[~test_rows]) & (dtf[~test_rows] <= 30.0))
    z_train = model.normaliser.standardise(train.settings[healthy], train.sensors[healthy])
    mean_cols = [i for i, n in enumerate(traj.sensor_names) if n.endswith(":mean")]
    mu = z_train[:, mean_cols].mean(axis=0)
    sd = z_train[:, mean_cols].std(axis=0) + 1e-9
    z_test = model.normaliser.standardise(test.settings, test.sensors)[:, mean_cols]
    base_alerts = (np.abs((z_test - mu) / sd) > 3.0).any(axis=1)
    base = classification(base_alerts, truth)

    caught = 0
    failing = 0
    leads: list[float] = []
    test_dtf = dtf[test_rows]
    for _, s in test.unit_slices():
        if not np.isfinite(test_dtf[s]).any():
            continue
        failing += 1
        window = truth[s]
        fired = alerts[s] & window
        if fired.any():
            caught += 1
            leads.append(float(test_dtf[s][fired].max()))
    result = FleetResult(
        model=ours,
        baseline=base,
        assets_train=len(units) - len(test_units),
        assets_test=len(test_units),
        failures_caught=caught,
        failures_test=failing,
        median_lead_days=float(np.median(leads)) if leads else 0.0,
    )
    table = Table(title=f"Failure within {HORIZON_DAYS:g} days, held-out assets (daily alerts)")
    for col in ("method", "precision", "recall", "F1", "TP", "FP", "FN"):
        table.add_column(col, justify="right")
    for name, c in (("fieldmesh classifier", ours), ("3-sigma threshold", base)):
        table.add_row(
            name,
            f"{c.precision:.3f}",
            f"{c.recall:.3f}",
            f"{c.f1:.3f}",
            str(c.true_positives),
            str(c.false_positives),
            str(c.false_negatives),
        )
    console.print(table)
    console.print(
        f"  failures with an alert in their last {HORIZON_DAYS:g} days: {caught}/{failing}; "
        f"median first-alert lead {result.median_lead_days:.1f} days"
    )
    return result


def resolve_dataset(instances: Path, dataset: str | None) -> tuple[Path, str]:
    """The data directory and data set name from --instances (a directory or a train file)."""
    if instances.is_file():
        name = instances.stem
        if not name.startswith("train_"):
            raise SystemExit(f"--instances {instances}: expected a train_<name>.txt file")
        return instances.parent, name.removeprefix("train_")
    if not instances.is_dir():
        raise SystemExit(f"--instances {instances}: no such directory")
    if dataset is not None:
        return instances, dataset
    found = sorted(p.stem.removeprefix("train_") for p in instances.glob("train_*.txt"))
    if not found:
        raise SystemExit(f"--instances {instances}: no train_*.txt file")
    return instances, "FD001" if "FD001" in found else found[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--instances", type=Path, default=DEFAULT_DATA, help="C-MAPSS directory")
    ap.add_argument(
        "--dataset",
        default=None,
        help="FD001..FD004 (default: FD001 if present, else the first train_*.txt found)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu-s", type=float, default=None, help="accepted for the Makefile")
    args = ap.parse_args(argv)
    console = Console()
    t0 = time.perf_counter()
    data_dir, dataset = resolve_dataset(args.instances, args.dataset)
    result = run_cmapss(data_dir, dataset, args.quick, args.seed, console)
    fleet = run_fleet(quick=args.quick, seed=args.seed, console=console)
    result.update(fleet.as_dict())
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
