"""Reproducible plans (same seed and CPU budget, same plan), re-plans that move few
visits, and default plans (without minimise_reps) on the travel ILS."""

from __future__ import annotations

import math
import random

from routing.checker import check_plan
from routing.matrix import EuclideanMatrix
from routing.model import Location, Plan, Problem, Rep, TimeWindow, Visit
from routing.planner import plan
from routing.replan import replan
from routing.solver import Progress, SolverOptions


def _clusters(seed: int, per: int = 12, minimise: bool = False) -> Problem:
    """Three clusters of visits around one depot, some with time windows."""
    rng = random.Random(seed)
    locs = [Location("depot", 0.0, 0.0)]
    visits = []
    for k in range(3):
        cx, cy = 30 * math.cos(2 * math.pi * k / 3), 30 * math.sin(2 * math.pi * k / 3)
        for i in range(per):
            vid = f"c{k}v{i}"
            locs.append(Location(vid, cx + rng.uniform(-6, 6), cy + rng.uniform(-6, 6)))
            start = rng.uniform(0, 300)
            windows = (TimeWindow(start, start + 150),) if i % 3 == 0 else ()
            visits.append(Visit(vid, vid, service_s=5, time_windows=windows, demand=1))
    reps = tuple(Rep(f"r{k}", "depot", "depot", TimeWindow(0, 480), capacity=per) for k in range(3))
    return Problem(tuple(locs), tuple(visits), reps, minimise_reps=minimise)


def _routes(p: Plan) -> dict[str, list[str]]:
    return {r.rep_id: r.visit_ids for r in p.routes}


def test_the_same_seed_and_budget_give_the_same_plan() -> None:
    p = _clusters(1, minimise=True)
    m = EuclideanMatrix().matrices(p.locations)
    options = SolverOptions(cpu_s=2.0, seed=11)
    first = plan(p, m, options)
    second = plan(p, m, options)
    assert check_plan(p, m, first) == []
    assert first.dropped == ()
    # the work bought by the budget ended every phase, not the CPU cap
    assert first.stats["reproducible"] == 1.0
    assert second.stats["reproducible"] == 1.0
    assert _routes(first) == _routes(second)
    assert first.distance_m == second.distance_m
    # and the budget is honoured (the work is priced below the CPU it usually takes)
    assert first.stats["cpu_s"] <= 2.0 * 1.05


def test_without_a_seed_the_plan_reports_it_is_not_reproducible() -> None:
    p = _clusters(2, per=4)
    m = EuclideanMatrix().matrices(p.locations)
    result = plan(p, m, SolverOptions(cpu_s=0.5))
    assert result.stats["reproducible"] == 0.0
    assert check_plan(p, m, result) == []


def test_a_default_plan_is_searched_by_pyvrp_in_this_process() -> None:
    p = _clusters(3)
    m = EuclideanMatrix().matrices(p.locations)
    result = plan(p, m, SolverOptions(cpu_s=1.5))
    assert check_plan(p, m, result) == []
    assert result.dropped == ()
    assert result.stats["engine_pyvrp"] == 1.0
    assert result.stats["worker_cpu_s"] == 0.0
    assert result.stats["cpu_s"] <= 1.5 * 1.05


def test_an_ortools_default_plan_runs_the_travel_ils_in_a_worker() -> None:
    p = _clusters(3)
    m = EuclideanMatrix().matrices(p.locations)
    result = plan(p, m, SolverOptions(cpu_s=1.5, engine="ortools"))
    assert check_plan(p, m, result) == []
    assert result.dropped == ()
    assert result.stats["worker_cpu_s"] > 0  # the ILS ran, in its own process


def test_a_small_change_to_a_running_plan_moves_few_visits() -> None:
    # 30 visits spread evenly, three identical reps: many plans cost about the same, and
    # re-planned from scratch with two new work orders, 29 of the 30 visits changed rep
    # (measured without the stability cost); with it none do.
    rng = random.Random(1)
    locs = [Location("depot", 0.0, 0.0)]
    locs += [Location(f"v{i}", rng.uniform(-40, 40), rng.uniform(-40, 40)) for i in range(30)]
    reps = tuple(Rep(f"r{k}", "depot", "depot", TimeWindow(0, 480)) for k in range(3))
    p = Problem(tuple(locs), tuple(Visit(x.id, x.id, service_s=10) for x in locs[1:]), reps)
    m = EuclideanMatrix().matrices(p.locations)
    options = SolverOptions(cpu_s=1.0, seed=1)
    first = plan(p, m, options)
    assert first.dropped == ()
    before = {v: r.rep_id for r in first.routes for v in r.visit_ids}
    new = [Location(f"n{k}", rng.uniform(-40, 40), rng.uniform(-40, 40)) for k in range(2)]
    p2 = Problem(
        (*p.locations, *new), (*p.visits, *(Visit(x.id, x.id, service_s=10) for x in new)), reps
    )
    m2 = EuclideanMatrix().matrices(p2.locations)
    result = replan(p2, first, 0.0, matrices=m2, options=options)
    assert check_plan(result.rest_problem, m2, result.rest) == []
    after = {v: r.rep_id for r in result.plan.routes for v in r.visit_ids}
    assert {"n0", "n1"} <= after.keys()
    # moved = visits of the running plan now with another rep (or dropped), counted right
    expected = sorted(v for v, rep in before.items() if after.get(v) != rep)
    assert sorted(result.moved) == expected
    assert result.plan.stats["moved_visits"] == len(expected)
    assert len(result.moved) <= 2


def test_a_large_ortools_plan_is_solved_by_sectors_then_joined() -> None:
    # (sectors of 12 visits here; 200 in production, above 600 visits)
    p = _clusters(5, per=12, minimise=True)
    m = EuclideanMatrix().matrices(p.locations)
    phases: list[str] = []
    options = SolverOptions(
        cpu_s=3.0,
        ils_max_visits=20,
        sector_visits=12,
        engine="ortools",
        progress=lambda x: phases.append(x.phase),
    )
    result = plan(p, m, options)
    assert check_plan(p, m, result) == []
    assert result.dropped == ()
    assert [x for x in phases if x.startswith("sector")] == [
        "sector 1/3",
        "sector 2/3",
        "sector 3/3",
    ]
    # three clusters of 12 with capacity 12: three reps
    assert len(result.used_routes) == 3


def test_a_large_pyvrp_plan_is_solved_by_sectors_and_joined() -> None:
    # (sectors of 12 visits here; 1,000 in production, above 1,500 visits)
    p = _clusters(5, per=12, minimise=True)
    m = EuclideanMatrix().matrices(p.locations)
    phases: list[str] = []
    costs: dict[str, float] = {}

    def progress(x: Progress) -> None:
        phases.append(x.phase)
        costs[x.phase] = x.cost

    options = SolverOptions(
        cpu_s=3.0,
        pyvrp_max_visits=20,
        pyvrp_sector_visits=12,
        progress=progress,
    )
    result = plan(p, m, options)
    assert check_plan(p, m, result) == []
    assert result.dropped == ()
    assert [x for x in phases if x.startswith("sector")] == [
        "sector 1/3",
        "sector 2/3",
        "sector 3/3",
    ]
    assert result.stats["engine_pyvrp"] == 1.0
    assert len(result.used_routes) == 3
    assert result.stats["cpu_s"] <= 3.0 * 1.05
    # the joined plan is then improved by parts, never worsened
    assert phases[-2:] == ["joined", "parts"]
    assert costs["parts"] <= costs["joined"]
