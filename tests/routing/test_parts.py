"""Large plans improved by parts (routing.pyvrp_search.improve): routes grouped by angle,
each group searched on its own with its reps; the plan stays whole and never worsens."""

from __future__ import annotations

import math
import random

import pytest

from routing import pyvrp_search
from routing.checker import check_routes
from routing.compiled import Compiled, compile_problem
from routing.matrix import EuclideanMatrix
from routing.model import Location, Problem, Rep, TimeWindow, Visit


def _ring(seed: int, n: int = 60, reps: int = 12, minimise: bool = True) -> Problem:
    """Visits scattered around one depot, a third with a window; capacity 8 a rep."""
    rng = random.Random(seed)
    locs = [Location("depot", 0.0, 0.0)]
    visits = []
    for i in range(n):
        a, d = rng.uniform(0, 2 * math.pi), rng.uniform(5, 40)
        locs.append(Location(f"v{i}", d * math.cos(a), d * math.sin(a)))
        start = rng.uniform(0, 250)
        windows = (TimeWindow(start, start + 120),) if i % 3 == 0 else ()
        visits.append(Visit(f"v{i}", f"v{i}", service_s=3, time_windows=windows, demand=1))
    team = tuple(
        Rep(f"r{k}", "depot", "depot", TimeWindow(0, 480), capacity=8) for k in range(reps)
    )
    return Problem(tuple(locs), tuple(visits), team, minimise_reps=minimise)


def _first_plan(
    c: Compiled, minimise: bool, prize: list[int | None]
) -> list[tuple[int, list[int]]]:
    res = pyvrp_search.search(c, 0.1, minimise_reps=minimise, prize=prize, seed=1)
    assert res.feasible
    return res.routes


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pyvrp_search, "PART_VISITS", 16)


@pytest.mark.usefixtures("small_parts")
def test_parts_keep_every_visit_and_rep_and_never_worsen_the_plan() -> None:
    p = _ring(3)
    m = EuclideanMatrix().matrices(p.locations)
    c = compile_problem(p, m, list(p.visits), 1000, "distance")
    start = _first_plan(c, True, [None] * len(p.visits))
    res = pyvrp_search.improve(
        c, start, 1.5, prize=[None] * len(p.visits), seed=None, minimise_reps=True
    )
    assert res.feasible
    served = sorted(x for _, xs in res.routes for x in xs)
    assert served == list(range(len(p.visits)))
    # fewest reps: the parts use only the reps the plan had, one route each
    reps = [r for r, xs in res.routes if xs]
    assert len(reps) == len(set(reps))
    assert set(reps) <= {r for r, _ in start}
    assert pyvrp_search.travel_cost(c, res.routes) <= pyvrp_search.travel_cost(c, start)
    routes = {p.reps[r].id: [p.visits[x].id for x in xs] for r, xs in res.routes}
    violations, _ = check_routes(p, m, routes)
    assert violations == []


@pytest.mark.usefixtures("small_parts")
def test_parts_insert_optional_visits_the_plan_left_out_using_idle_reps() -> None:
    p = _ring(4, minimise=False)
    m = EuclideanMatrix().matrices(p.locations)
    c = compile_problem(p, m, list(p.visits), 1000, "distance")
    big = 10 * int(c.cost_a.max())
    # a plan's first three routes only: the others' visits unserved, their reps idle
    start = _first_plan(c, False, [big] * len(p.visits))[:3]
    assert sum(len(xs) for _, xs in start) < len(p.visits)
    res = pyvrp_search.improve(
        c, start, 1.5, prize=[big] * len(p.visits), seed=None, minimise_reps=False
    )
    served = [x for _, xs in res.routes for x in xs]
    assert len(served) == len(set(served))
    assert len(served) == len(p.visits)
    routes = {p.reps[r].id: [p.visits[x].id for x in xs] for r, xs in res.routes}
    violations, _ = check_routes(p, m, routes)
    assert violations == []
