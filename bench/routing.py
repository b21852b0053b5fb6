"""VRPTW benchmark: fieldmesh's planner against VROOM on Solomon-format instances.

    python -m bench.routing [--instances DIR] [--cpu-s N] [--quick] [--large DIR|none]

Every instance in DIR (Solomon / Gehring-Homberger text format, with bks.csv) is
solved by our planner under a CPU-time budget (10 CPU-s; 60 from 1,000 customers)
and, in the same run, by VROOM (pyvroom, single thread, exploration level 5, a
fixed cost per vehicle so that it minimises vehicles first, and the same budget as
its timeout: unbounded it takes about 8 CPU-minutes per 1,000-customer instance).
Both solutions are checked by routing.checker and their distances recomputed in
floating point before they count. The default run also reports the 1,000-customer
instances of the Gehring-Homberger folder, at 60 CPU-s each, as `large_*` totals.

Transfer protocol (#23): the solver's constants were set on the Gehring-Homberger
200-customer instances (the tuning set); the Solomon instances are the held-out
confirmation set. The default run solves the tuning set too and reports both, as
`transfer_tune_*` and `transfer_confirm_*` (gaps against the best known), and the
held-out gaps per Solomon class (`class_<C1|C2|R1|R2|RC1|RC2>_*`), so that a change
that only fits one set or one class shows. The large-plan choices (improvement by parts,
the elimination share from 300 visits) were set on the 400-customer instances at 24 CPU-s
(60 scaled by size), reported as `transfer_large_tune_*`, and confirmed on the
1,000-customer ones (`large_*`).

5,000 stops (`--huge N`, default 5000 with the default instances): a generated
Gehring-Homberger-like RC1 instance (`generated_instance`, seeded), ours and VROOM with
10 CPU-minutes each, against lower bounds on vehicles and distance, with a quality
estimate from how far rc1_10_1's best known is above the same bound (`large_5000_*`).
VROOM runs there in a child process stopped at 1.5 times its budget (its timeout does not
bound its construction: at 5,000 customers it had not returned after 18 minutes of a
10-minute limit); with no plan its `large_5000_vroom_*` figures are null.
The last line is one JSON object with the totals.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import queue as queue_mod
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
from rich.console import Console
from rich.table import Table

from routing.checker import check_plan, check_routes
from routing.matrix import EuclideanMatrix, GreatCircleMatrix, Matrices
from routing.model import Break, Location, Problem, Rep, TimeWindow, Visit
from routing.planner import plan as plan_problem
from routing.solomon import (
    BestKnown,
    Customer,
    SolomonInstance,
    instance_files,
    read_bks,
    read_instance,
)
from routing.solver import SolverOptions, solve

DEFAULT_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "vrptw" / "solomon"
LARGE_DIR = DEFAULT_DIR.parent / "homberger"
LARGE_N = 1000  # customers: "the 1,000-customer instances", 60 CPU-s each
TUNE_N = 200  # customers: the tuning set of the transfer protocol
LARGE_TUNE_N = 400  # customers: the tuning set of the large-plan choices
LARGE_CPU_S = 60.0
QUICK_INSTANCES = ("C101", "R101", "RC101")
VROOM_SCALE = 1000
HUGE_VROOM_GRACE = 1.5  # the generated instance: VROOM is stopped after this x its budget


@dataclass
class Result:
    vehicles: int
    distance: float
    cpu_s: float
    violations: list[str]


SEED: list[int | None] = [None]  # --seed: reproducible plans (work-priced budget)
ENGINE = ["pyvrp"]  # --engine: the planner's search (SolverOptions.engine)


def run_ours(problem: Problem, m: Matrices, cpu_s: float) -> Result:
    t0 = time.process_time()
    plan = solve(
        problem, m, SolverOptions(cpu_s=cpu_s, cost="distance", seed=SEED[0], engine=ENGINE[0])
    )
    # the solver's ILS runs in worker processes: their CPU time counts too
    cpu = time.process_time() - t0 + float(plan.stats.get("worker_cpu_s", 0.0))
    routes = {r.rep_id: r.visit_ids for r in plan.used_routes}
    violations, per = check_routes(problem, m, routes)
    return Result(len(routes), sum(c.distance_m for c in per.values()), cpu, violations)


def run_vroom(inst: SolomonInstance, problem: Problem, m: Matrices, budget_s: float) -> Result:
    import vroom  # the baseline only; imported where it is used

    # VROOM refuses costs that could overflow its 32-bit user costs: above 1,000 customers
    # durations in hundredths (still rounded up, so its plans stay feasible in floats)
    s = VROOM_SCALE if len(inst.customers) <= 1000 else VROOM_SCALE // 10
    durations = np.ceil(m.duration_s * s - 1e-6).astype(np.uint32)
    total = int(durations.sum())
    vi = vroom.Input()
    vi.set_durations_matrix(profile="car", matrix_input=durations)
    due = math.floor(inst.depot.due * s)
    vi.add_vehicle(
        [
            vroom.Vehicle(
                id=k,
                start=0,
                end=0,
                capacity=[inst.capacity],
                time_window=vroom.TimeWindow(math.ceil(inst.depot.ready * s), due),
                # the binding takes 32 bits; VROOM bounds the sum over the vehicles too
                costs=vroom.VehicleCosts(
                    fixed=min(total, 2**31 - 1, 2_000_000_000 // len(problem.reps))
                ),
            )
            for k in range(len(problem.reps))
        ]
    )
    for i, c in enumerate(inst.customers, start=1):
        vi.add_job(
            vroom.Job(
                id=c.number,
                location=i,
                default_service=round(c.service * s),
                delivery=[c.demand],
                time_windows=[vroom.TimeWindow(math.ceil(c.ready * s), math.floor(c.due * s))],
            )
        )
    t0 = time.process_time()
    # the same budget as ours (VROOM's limit is wall-clock; it runs alone here)
    sol = vi.solve(exploration_level=5, nb_threads=1, timeout=timedelta(seconds=budget_s))
    cpu = time.process_time() - t0
    frame = sol.routes
    routes: dict[str, list[str]] = {}
    for vehicle_id, job_id, step_type in zip(
        frame["vehicle_id"], frame["id"], frame["type"], strict=True
    ):
        if str(step_type) == "job":
            routes.setdefault(f"v{int(vehicle_id)}", []).append(str(int(job_id)))
    violations, per = check_routes(problem, m, routes)
    return Result(len(routes), sum(c.distance_m for c in per.values()), cpu, violations)


COLUMNS = (
    "instance",
    "n",
    "veh",
    "dist",
    "cpu_s",
    "vroom veh",
    "vroom dist",
    "vroom cpu",
    "bks veh",
    "bks dist",
    "gap veh",
    "gap dist",
    "ok",
)


def run_set(
    console: Console, directory: Path, files: list[Path], budget_of: Callable[[int], float]
) -> dict[str, float | int]:
    """Solve each instance with ours and VROOM (same CPU budget); print a row per
    instance and a table; return the totals."""
    bks = read_bks(directory / "bks.csv")
    table = Table(title=f"VRPTW: fieldmesh ({ENGINE[0]}) vs VROOM on {directory.name}")
    for col in COLUMNS:
        table.add_column(col, justify="right")
    tot: dict[str, float | int] = {
        "instances": 0,
        "infeasible": 0,
        "vehicles": 0,
        "vroom_vehicles": 0,
        "bks_vehicles": 0,
        "distance": 0.0,
        "vroom_distance": 0.0,
        "bks_distance": 0.0,
        "cpu_s": 0.0,
        "vroom_cpu_s": 0.0,
        "vroom_infeasible": 0,
    }
    by_class: dict[str, list[float]] = {}
    for path in files:
        inst = read_instance(path)
        n = len(inst.customers)
        budget = budget_of(n)
        problem = inst.to_problem()
        m = EuclideanMatrix().matrices(problem.locations)
        ours = run_ours(problem, m, budget)
        base = run_vroom(inst, problem, m, budget)
        best = bks.get(path.stem.upper(), BestKnown(0, 0.0))
        ok = not ours.violations
        tot["instances"] += 1
        tot["infeasible"] += 0 if ok else 1
        tot["vroom_infeasible"] += 0 if not base.violations else 1
        tot["vehicles"] += ours.vehicles
        tot["vroom_vehicles"] += base.vehicles
        tot["bks_vehicles"] += best.vehicles
        tot["distance"] += ours.distance
        tot["vroom_distance"] += base.distance
        tot["bks_distance"] += best.distance
        tot["cpu_s"] += ours.cpu_s
        tot["vroom_cpu_s"] += base.cpu_s
        cls = by_class.setdefault(_instance_class(path.stem), [0.0, 0.0, 0.0, 0.0])
        cls[0] += ours.vehicles
        cls[1] += best.vehicles
        cls[2] += ours.distance
        cls[3] += best.distance
        table.add_row(
            path.stem,
            str(n),
            str(ours.vehicles),
            f"{ours.distance:.2f}",
            f"{ours.cpu_s:.1f}",
            str(base.vehicles),
            f"{base.distance:.2f}",
            f"{base.cpu_s:.1f}",
            str(best.vehicles),
            f"{best.distance:.2f}",
            f"{ours.vehicles - best.vehicles:+d}",
            f"{(ours.distance / best.distance - 1) * 100:+.2f}%" if best.distance else "-",
            "yes" if ok else "NO",
        )
        console.print(
            f"{path.stem}: ours {ours.vehicles} veh {ours.distance:.2f} ({ours.cpu_s:.1f} CPU-s)"
            f" | vroom {base.vehicles} veh {base.distance:.2f} ({base.cpu_s:.1f} CPU-s)"
            f" | bks {best.vehicles} veh {best.distance:.2f}"
            + ("" if ok else f" | INFEASIBLE: {ours.violations[:3]}")
            + ("" if not base.violations else f" | vroom infeasible: {base.violations[:2]}")
        )
        sys.stdout.flush()
    console.print(table)
    out: dict[str, float | int] = {
        k: (round(v, 2) if isinstance(v, float) else v) for k, v in tot.items()
    }
    if tot["bks_vehicles"]:
        out["gap_vehicles_pct"] = round((tot["vehicles"] / tot["bks_vehicles"] - 1) * 100, 2)
        out["vroom_gap_vehicles_pct"] = round(
            (tot["vroom_vehicles"] / tot["bks_vehicles"] - 1) * 100, 2
        )
    if tot["bks_distance"]:
        out["gap_distance_pct"] = round((tot["distance"] / tot["bks_distance"] - 1) * 100, 2)
        out["vroom_gap_distance_pct"] = round(
            (tot["vroom_distance"] / tot["bks_distance"] - 1) * 100, 2
        )
    if len(by_class) > 1:
        for name, (veh, bveh, dist, bdist) in sorted(by_class.items()):
            if bveh and bdist:
                out[f"class_{name}_gap_vehicles_pct"] = round((veh / bveh - 1) * 100, 2)
                out[f"class_{name}_gap_distance_pct"] = round((dist / bdist - 1) * 100, 2)
    return out


def _instance_class(stem: str) -> str:
    """C1, C2, R1, R2, RC1 or RC2 from a Solomon (R101) or Homberger (r1_2_1) name."""
    name = stem.upper()
    letters = name.rstrip("0123456789_").split("_")[0]
    letters = "".join(ch for ch in letters if ch.isalpha())
    digit = name[len(letters)] if len(name) > len(letters) else ""
    return letters + digit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--instances", type=Path, default=DEFAULT_DIR)
    ap.add_argument(
        "--cpu-s",
        type=float,
        default=None,
        help="CPU seconds per instance (default 10; 60 for 1000+ customers)",
    )
    ap.add_argument("--quick", action="store_true", help="three instances, 5 CPU-s each")
    ap.add_argument("--only", nargs="*", default=None, help="instance names to run")
    ap.add_argument(
        "--large",
        type=Path,
        default=None,
        help="folder whose 1000+ customer instances are also reported, at 60 CPU-s each"
        f" (default with the default instances: {LARGE_DIR.name}; 'none' to skip)",
    )
    ap.add_argument(
        "--tune",
        type=Path,
        default=None,
        help="the transfer protocol's tuning set: its 200-customer instances are also solved"
        f" and reported as transfer_tune_* (default with the default instances:"
        f" {LARGE_DIR.name}; 'none' to skip)",
    )
    ap.add_argument("--seed", type=int, default=None, help="reproducible plans from this seed")
    ap.add_argument(
        "--engine",
        choices=("pyvrp", "ortools"),
        default="pyvrp",
        help="the planner's search: PyVRP where it can express the problem (default) or"
        " OR-Tools only (the planner before #23's second round)",
    )
    ap.add_argument(
        "--city",
        type=int,
        default=0,
        help="also plan a generated city day of this many work orders (e.g. 5000)",
    )
    ap.add_argument("--city-cpu-s", type=float, default=600.0, help="its CPU budget")
    ap.add_argument(
        "--huge",
        type=int,
        default=None,
        help="also plan a generated Gehring-Homberger-like instance of this many customers"
        " against VROOM (default with the default instances: 5000; 0 to skip)",
    )
    ap.add_argument("--huge-cpu-s", type=float, default=600.0, help="its CPU budget")
    args = ap.parse_args(argv)
    SEED[0] = args.seed
    ENGINE[0] = args.engine
    console = Console(width=170)
    directory: Path = args.instances.resolve()
    files = instance_files(directory)
    if args.only:
        wanted = {n.upper() for n in args.only}
        files = [f for f in files if f.stem.upper() in wanted]
    if args.quick:
        quick = [f for f in files if f.stem.upper() in QUICK_INSTANCES]
        files = quick or files[:3]

    def budget_of(n: int) -> float:
        if args.cpu_s is not None:
            return float(args.cpu_s)
        return 5.0 if args.quick else (60.0 if n >= LARGE_N else 10.0)

    ap_tune = args.tune
    out: dict[str, float | int | None] = dict(run_set(console, directory, files, budget_of))
    if ap_tune is None and args.instances == DEFAULT_DIR and not args.quick and not args.only:
        ap_tune = LARGE_DIR
    if ap_tune is not None and str(ap_tune) != "none" and ap_tune.resolve() != directory:
        tune = [f for f in instance_files(ap_tune.resolve()) if _customers(f) == TUNE_N]
        if tune:
            totals = run_set(console, ap_tune.resolve(), tune, budget_of)
            for key in ("gap_vehicles_pct", "gap_distance_pct", "infeasible", "vehicles"):
                if key in totals:
                    out[f"transfer_tune_{key}"] = totals[key]
                if key in out:
                    out[f"transfer_confirm_{key}"] = out[key]
            for key in ("vroom_vehicles", "vroom_gap_distance_pct", "bks_vehicles"):
                if key in totals:
                    out[f"transfer_tune_{key}"] = totals[key]
        # the large-plan choices (parts, elimination share from 300 visits) were set on the
        # 400-customer instances at the 1,000-customer budget scaled by size (24 CPU-s); the
        # 1,000-customer instances (large_*) are their confirmation
        big = [f for f in instance_files(ap_tune.resolve()) if _customers(f) == LARGE_TUNE_N]
        if big:
            totals = run_set(console, ap_tune.resolve(), big, lambda n: LARGE_CPU_S * n / LARGE_N)
            for key in (
                "gap_vehicles_pct",
                "gap_distance_pct",
                "vroom_gap_distance_pct",
                "infeasible",
                "vehicles",
                "vroom_vehicles",
                "bks_vehicles",
                "cpu_s",
            ):
                if key in totals:
                    out[f"transfer_large_tune_{key}"] = totals[key]
    large_dir = args.large
    if large_dir is None and args.instances == DEFAULT_DIR and not args.quick and not args.only:
        large_dir = LARGE_DIR
    if large_dir is not None and str(large_dir) != "none" and large_dir.resolve() != directory:
        large = [f for f in instance_files(large_dir.resolve()) if _customers(f) >= LARGE_N]
        if large:
            totals = run_set(console, large_dir.resolve(), large, lambda n: LARGE_CPU_S)
            out.update({f"large_{k}": v for k, v in totals.items()})
    huge = args.huge
    if huge is None and args.instances == DEFAULT_DIR and not args.quick and not args.only:
        huge = 5000
    if huge:
        out.update(run_huge(console, huge, args.huge_cpu_s, LARGE_DIR.resolve()))
    if args.city:
        out.update(run_city(console, args.city, args.city_cpu_s))
    print(json.dumps(out))
    bad = (
        out["infeasible"]
        or out.get("large_infeasible", 0)
        or out.get("transfer_tune_infeasible")
        or out.get("transfer_large_tune_infeasible")
        or any(
            v
            for k, v in out.items()
            if k.startswith("large_") and k.endswith("_infeasible") and "vroom" not in k
        )
    )
    return 1 if bad else 0


def city_problem(n: int, seed: int = 7) -> Problem:
    """A generated city day: `n` work orders around four depots in a 30 km x 30 km city
    (neighbourhood clusters and scattered addresses), 15-60 min of work each, a third with
    a two-hour window; reps 08:00-17:00 with a 30 min lunch between 11:30 and 14:00, about
    one rep per 11 work orders."""
    rng = np.random.default_rng(seed)
    lon0, lat0 = 4.85, 45.75  # a city's centre; 1 degree lat = 111 km
    dlat = 15.0 / 111.0
    dlon = dlat / math.cos(math.radians(lat0))
    centres = rng.uniform(-0.8, 0.8, size=(25, 2))
    locs = [
        Location(f"depot{k}", lon0 + dx * dlon * 0.5, lat0 + dy * dlat * 0.5)
        for k, (dx, dy) in enumerate(((-1, -1), (-1, 1), (1, 1), (1, -1)))
    ]
    visits = []
    for i in range(n):
        if rng.random() < 0.7:
            cx, cy = centres[rng.integers(len(centres))]
            x, y = cx + rng.normal(0, 0.08), cy + rng.normal(0, 0.08)
        else:
            x, y = rng.uniform(-1, 1, size=2)
        locs.append(Location(f"a{i}", lon0 + float(x) * dlon, lat0 + float(y) * dlat))
        windows: tuple[TimeWindow, ...] = ()
        if rng.random() < 1 / 3:
            start = 3600 * float(rng.integers(8, 15))
            windows = (TimeWindow(start, start + 7200),)
        visits.append(
            Visit(
                f"w{i}",
                f"a{i}",
                service_s=60.0 * float(rng.choice((15, 20, 30, 45, 60))),
                time_windows=windows,
                priority=int(rng.integers(1, 6)),
            )
        )
    lunch = Break(TimeWindow(11.5 * 3600, 14 * 3600), 1800)
    reps = tuple(
        Rep(
            f"rep{k}",
            f"depot{k % 4}",
            f"depot{k % 4}",
            TimeWindow(8 * 3600, 17 * 3600),
            lunch_break=lunch,
        )
        for k in range(math.ceil(n / 11))
    )
    return Problem(tuple(locs), tuple(visits), reps)


def run_city(console: Console, n: int, cpu_s: float) -> dict[str, float | int]:
    """The generated city day planned as the API plans (every work order droppable by
    priority): served, dropped, reps, km and CPU against the budget, and the reps a
    work-time bound needs (service plus each visit's nearest-neighbour travel over the
    working day net of lunch)."""
    problem = city_problem(n)
    m = GreatCircleMatrix().matrices(problem.locations)
    t0 = time.process_time()
    result = plan_problem(problem, m, SolverOptions(cpu_s=cpu_s, seed=SEED[0], engine=ENGINE[0]))
    cpu = time.process_time() - t0 + float(result.stats.get("worker_cpu_s", 0.0))
    violations = check_plan(problem, m, result)
    dur = m.duration_s[4:, 4:].copy()
    np.fill_diagonal(dur, np.inf)
    work_s = sum(v.service_s for v in problem.visits) + float(dur.min(axis=1).sum())
    bound = math.ceil(work_s / (9 * 3600 - 1800))
    out: dict[str, float | int] = {
        "city_visits": n,
        "city_served": n - len(result.dropped),
        "city_dropped": len(result.dropped),
        "city_infeasible": 1 if violations else 0,
        "city_reps": len(result.used_routes),
        "city_reps_bound": bound,
        "city_distance_km": round(result.distance_m / 1000, 1),
        "city_cpu_s": round(cpu, 1),
        "city_budget_s": cpu_s,
    }
    console.print(
        f"city {n}: served {out['city_served']} (dropped {out['city_dropped']}), "
        f"{out['city_reps']} reps (work-time bound {bound}), {out['city_distance_km']} km, "
        f"{cpu:.1f} CPU-s of {cpu_s}" + (f" | INFEASIBLE: {violations[:3]}" if violations else "")
    )
    return out


def generated_instance(n: int, seed: int = 23) -> SolomonInstance:
    """A Gehring-Homberger-like RC1 instance of `n` customers (the 1,000-customer ones
    scaled to the same density): a square of side 500 * sqrt(n / 1000) with the depot at
    its centre; half the customers around n / 25 cluster centres (normal, sigma side / 50,
    clipped to the square), half uniform; demand uniform 1-35 (rc1_10_1's mean is 17.8), capacity 200, service 10;
    horizon 1,821 * sqrt(n / 1000) (rc1_10_1's, scaled); every customer a 30-unit window
    whose start is uniform over the times it can be reached and left in (so each is
    feasible alone); n / 4 vehicles. Seeded: the same instance every run."""
    rng = np.random.default_rng(seed)
    side = 500.0 * math.sqrt(n / 1000)
    horizon = math.floor(1821.0 * math.sqrt(n / 1000))
    centre = side / 2
    depot = Customer(0, centre, centre, 0, 0.0, float(horizon), 0.0)
    heads = rng.uniform(0, side, size=(max(1, n // 25), 2))
    customers = []
    for i in range(1, n + 1):
        if i <= n // 2:
            cx, cy = heads[rng.integers(len(heads))]
            x, y = np.clip(rng.normal((cx, cy), side / 50), 0, side)
        else:
            x, y = rng.uniform(0, side, size=2)
        x, y = round(float(x)), round(float(y))
        d0 = math.ceil(math.hypot(x - centre, y - centre))
        latest = max(d0, horizon - d0 - 10 - 30)
        ready = float(rng.integers(d0, latest + 1))
        customers.append(Customer(i, x, y, int(rng.integers(1, 36)), ready, ready + 30.0, 10.0))
    return SolomonInstance(f"generated_rc1_{n}", n // 4, 200, depot, tuple(customers))


def distance_lower_bound(inst: SolomonInstance, m: Matrices) -> float:
    """A bound no plan beats: the larger of the radial bound (a route carries at most the
    capacity, so the plan travels at least twice the demand-weighted depot distance over
    the capacity; Haimovich and Rinnooy Kan) and half the sum, over the customers, of
    their two shortest links (each has one predecessor and one successor). On the
    1,000-customer instances the best known are 1.19 (c1), 1.55 (r1) and 1.32 (rc1)
    times it."""
    d0 = np.array(m.distance_m[0, 1:], dtype=float)
    demand = np.array([c.demand for c in inst.customers], dtype=float)
    radial = float(2 * (d0 * demand).sum() / inst.capacity)
    d = np.array(m.distance_m[1:, :], dtype=float)
    d[np.arange(len(d)), np.arange(1, len(d) + 1)] = np.inf
    two = np.partition(d, 1, axis=1)[:, :2]
    return max(radial, float(two.sum() / 2))


def run_huge(
    console: Console, n: int, cpu_s: float, large_dir: Path | None
) -> dict[str, float | None]:
    """The generated instance of `n` customers: ours and VROOM with the same budget, and
    how far each is from the lower bounds (vehicles by capacity, distance_lower_bound). For a quality estimate the same distance bound is
    taken on rc1_10_1 (its class), whose best known is that far above it:
    `est_gap_pct` is ours above the bound, net of that ratio."""
    inst = generated_instance(n)
    problem = inst.to_problem()
    m = EuclideanMatrix().matrices(problem.locations)
    ours = run_ours(problem, m, cpu_s)
    console.print(
        f"generated {n}: ours {ours.vehicles} veh {ours.distance:.2f}"
        f" ({ours.cpu_s:.1f} of {cpu_s:.0f} CPU-s)"
    )
    sys.stdout.flush()
    base = _vroom_bounded(n, cpu_s)
    if base.violations and not base.vehicles:
        console.print(f"generated {n}: VROOM: {base.violations[0]}")
    lb = distance_lower_bound(inst, m)
    lb_veh = math.ceil(sum(c.demand for c in inst.customers) / inst.capacity)
    p = f"large_{n}_"
    # no plan from VROOM (failed or stopped): its figures are null, the reason printed
    got = base.vehicles > 0
    out: dict[str, float | None] = {
        p + "infeasible": 1 if ours.violations else 0,
        p + "vehicles": ours.vehicles,
        p + "distance": round(ours.distance, 2),
        p + "cpu_s": round(ours.cpu_s, 1),
        p + "budget_s": cpu_s,
        p + "vroom_infeasible": 1 if base.violations else 0,
        p + "vroom_vehicles": base.vehicles if got else None,
        p + "vroom_distance": round(base.distance, 2) if got else None,
        p + "vroom_cpu_s": round(base.cpu_s, 1),
        p + "lb_vehicles": lb_veh,
        p + "lb_distance": round(lb, 2),
        p + "gap_lb_pct": round((ours.distance / lb - 1) * 100, 2),
        p + "vroom_gap_lb_pct": round((base.distance / lb - 1) * 100, 2) if got else None,
    }
    ref = None if large_dir is None else large_dir / "rc1_10_1.txt"
    if ref is not None and ref.exists():
        ref_inst = read_instance(ref)
        ref_problem = ref_inst.to_problem()
        ref_lb = distance_lower_bound(ref_inst, EuclideanMatrix().matrices(ref_problem.locations))
        ref_bks = read_bks(large_dir / "bks.csv").get("RC1_10_1") if large_dir else None
        if ref_bks and ref_bks.distance:
            ratio = ref_bks.distance / ref_lb
            out[p + "ref_bks_over_lb"] = round(ratio, 4)
            out[p + "est_gap_pct"] = round((ours.distance / lb / ratio - 1) * 100, 2)
            out[p + "vroom_est_gap_pct"] = (
                round((base.distance / lb / ratio - 1) * 100, 2) if got else None
            )
    console.print(
        f"generated {n}: ours {ours.vehicles} veh {ours.distance:.2f} ({ours.cpu_s:.1f} of"
        f" {cpu_s:.0f} CPU-s) | vroom {base.vehicles} veh {base.distance:.2f}"
        f" ({base.cpu_s:.1f} CPU-s) | bounds {lb_veh} veh {lb:.2f}"
        + (f" | INFEASIBLE: {ours.violations[:3]}" if ours.violations else "")
        + (f" | vroom infeasible: {base.violations[:2]}" if base.violations else "")
    )
    return out


def _vroom_huge(n: int, cpu_s: float, out: Any) -> None:
    """VROOM on generated_instance(n) (rebuilt here: it is seeded), its Result put on `out`."""
    inst = generated_instance(n)
    problem = inst.to_problem()
    m = EuclideanMatrix().matrices(problem.locations)
    try:
        out.put(run_vroom(inst, problem, m, cpu_s))
    except Exception as exc:  # the baseline failing must not lose our figures
        out.put(Result(0, 0.0, 0.0, [f"VROOM failed: {exc}"]))


def _vroom_bounded(n: int, cpu_s: float) -> Result:
    """VROOM on the generated instance in a child process, stopped if it is not done
    HUGE_VROOM_GRACE times its budget after it started (VROOM's timeout bounds its local
    search, not its construction heuristics: on 5,000 customers it ran past 14 minutes of
    a 10-minute limit). A stopped VROOM is reported as having no plan, with the reason."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_vroom_huge, args=(n, cpu_s, queue), daemon=True)
    proc.start()
    try:
        return cast(Result, queue.get(timeout=cpu_s * HUGE_VROOM_GRACE + 120))
    except queue_mod.Empty:
        return Result(
            0, 0.0, 0.0, [f"VROOM gave no plan within {HUGE_VROOM_GRACE:g}x its {cpu_s:g} s"]
        )
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()


def _customers(path: Path) -> int:
    return len(read_instance(path).customers)


if __name__ == "__main__":
    sys.exit(main())
