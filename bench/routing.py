"""VRPTW benchmark: fieldmesh's planner against VROOM on Solomon-format instances.

    python -m bench.routing [--instances DIR] [--cpu-s N] [--quick]

Every instance in DIR (Solomon / Gehring-Homberger text format, with bks.csv) is
solved by our planner under a CPU-time budget and, in the same run, by VROOM
(pyvroom, single thread, exploration level 5, a fixed cost per vehicle so that it
minimises vehicles first). Both solutions are checked by routing.checker and
their distances recomputed in floating point before they count. The last line
is one JSON object with the totals.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from routing.checker import check_routes
from routing.matrix import EuclideanMatrix, Matrices
from routing.model import Problem
from routing.solomon import BestKnown, SolomonInstance, instance_files, read_bks, read_instance
from routing.solver import SolverOptions, solve

DEFAULT_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "vrptw" / "solomon"
QUICK_INSTANCES = ("C101", "R101", "RC101")
VROOM_SCALE = 1000


@dataclass
class Result:
    vehicles: int
    distance: float
    cpu_s: float
    violations: list[str]


def run_ours(problem: Problem, m: Matrices, cpu_s: float) -> Result:
    t0 = time.process_time()
    plan = solve(problem, m, SolverOptions(cpu_s=cpu_s, cost="distance"))
    # the solver's ILS runs in worker processes: their CPU time counts too
    cpu = time.process_time() - t0 + float(plan.stats.get("worker_cpu_s", 0.0))
    routes = {r.rep_id: r.visit_ids for r in plan.used_routes}
    violations, per = check_routes(problem, m, routes)
    return Result(len(routes), sum(c.distance_m for c in per.values()), cpu, violations)


def run_vroom(inst: SolomonInstance, problem: Problem, m: Matrices) -> Result:
    import vroom  # the baseline only; imported where it is used

    s = VROOM_SCALE
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
                costs=vroom.VehicleCosts(fixed=min(total, 2**31 - 1)),  # the binding takes 32 bits
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
    sol = vi.solve(exploration_level=5, nb_threads=1)
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
    args = ap.parse_args(argv)
    console = Console(width=170)
    directory: Path = args.instances.resolve()
    files = instance_files(directory)
    if args.only:
        wanted = {n.upper() for n in args.only}
        files = [f for f in files if f.stem.upper() in wanted]
    if args.quick:
        quick = [f for f in files if f.stem.upper() in QUICK_INSTANCES]
        files = quick or files[:3]
    bks = read_bks(directory / "bks.csv")
    table = Table(title=f"VRPTW: fieldmesh (OR-Tools) vs VROOM on {directory.name}")
    for col in (
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
    ):
        table.add_column(col, justify="right")
    tot = {
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
    for path in files:
        inst = read_instance(path)
        n = len(inst.customers)
        budget = (
            args.cpu_s
            if args.cpu_s is not None
            else (5.0 if args.quick else (60.0 if n >= 1000 else 10.0))
        )
        problem = inst.to_problem()
        m = EuclideanMatrix().matrices(problem.locations)
        ours = run_ours(problem, m, budget)
        base = run_vroom(inst, problem, m)
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
    print(json.dumps(out))
    return 0 if tot["infeasible"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
