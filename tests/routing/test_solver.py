"""Hand-checked routing problems: every plan is re-checked by the independent checker."""

from __future__ import annotations

from dataclasses import replace

import pytest

from routing.checker import check_plan
from routing.matrix import EuclideanMatrix, Matrices
from routing.model import Break, Location, Plan, Problem, Rep, Stop, TimeWindow, Visit
from routing.planner import plan
from routing.solver import SolverOptions

FAST = SolverOptions(cpu_s=1.0)
DAY = TimeWindow(0, 100)


def _problem(
    points: dict[str, tuple[float, float]], visits: list[Visit], reps: list[Rep], **kw: object
) -> Problem:
    locs = tuple(Location(k, x, y) for k, (x, y) in points.items())
    return Problem(locs, tuple(visits), tuple(reps), **kw)  # type: ignore[arg-type]


def _solve(p: Problem, options: SolverOptions = FAST) -> tuple[Plan, Matrices]:
    m = EuclideanMatrix().matrices(p.locations)
    result = plan(p, m, options)
    assert check_plan(p, m, result) == []
    return result, m


def _rep(rid: str = "r1", **kw: object) -> Rep:
    return Rep(rid, "depot", "depot", kw.pop("shift", DAY), **kw)  # type: ignore[arg-type]


def _order(result: Plan, rep_id: str) -> list[str]:
    return next(r.visit_ids for r in result.routes if r.rep_id == rep_id)


def test_visits_on_a_line_are_served_at_the_optimal_distance() -> None:
    p = _problem(
        {"depot": (0, 0), "a": (1, 0), "b": (2, 0), "c": (3, 0)},
        [Visit("a", "a"), Visit("c", "c"), Visit("b", "b")],
        [_rep()],
    )
    result, _ = _solve(p)
    assert sorted(_order(result, "r1")) == ["a", "b", "c"]
    assert result.distance_m == pytest.approx(6.0)
    assert result.dropped == ()


def test_time_windows_decide_the_order() -> None:
    # Going right first would be as short, but "left" closes at t=2.
    p = _problem(
        {"depot": (0, 0), "left": (-1, 0), "right": (1, 0)},
        [
            Visit("right", "right", time_windows=(TimeWindow(5, 10),)),
            Visit("left", "left", time_windows=(TimeWindow(0, 2),)),
        ],
        [_rep()],
    )
    result, _ = _solve(p)
    assert _order(result, "r1") == ["left", "right"]
    stops = result.routes[0].stops
    assert 1.0 - 1e-6 <= stops[0].service_start_s <= 2.0 + 1e-6
    assert stops[1].arrival_s == pytest.approx(stops[0].service_end_s + 2.0)
    assert stops[1].service_start_s >= 5.0 - 1e-6
    assert stops[1].wait_s == pytest.approx(stops[1].service_start_s - stops[1].arrival_s)
    assert result.distance_m == pytest.approx(4.0)


def test_minimising_reps_uses_the_fewest_reps_capacity_allows() -> None:
    points = {"depot": (0, 0), **{f"p{i}": (float(i % 3) - 1, float(i // 3) + 1) for i in range(6)}}
    visits = [Visit(f"v{i}", f"p{i}", demand=1) for i in range(6)]
    reps = [_rep(f"r{k}", capacity=3) for k in range(4)]
    p = _problem(points, visits, reps, minimise_reps=True)
    result, _ = _solve(p, SolverOptions(cpu_s=2.0))
    assert len(result.used_routes) == 2
    assert all(len(r.stops) == 3 for r in result.used_routes)


@pytest.mark.parametrize(
    ("engine", "ils"),
    [("pyvrp", False), ("ortools", True), ("ortools", False)],
    ids=["pyvrp", "ortools-ils-worker", "ortools-guided-local-search"],
)
def test_four_clusters_of_ten_need_four_reps(engine: str, ils: bool) -> None:
    # 40 visits in four far-apart clusters, capacity 10: four reps, one per cluster, is
    # the only plan on four reps; eight reps are offered.
    corners = [(-50.0, -50.0), (-50.0, 50.0), (50.0, 50.0), (50.0, -50.0)]
    points = {"depot": (0.0, 0.0)}
    visits = []
    for k, (cx, cy) in enumerate(corners):
        for i in range(10):
            points[f"c{k}_{i}"] = (cx + i % 5, cy + i // 5)
            visits.append(Visit(f"c{k}_{i}", f"c{k}_{i}", demand=1))
    reps = [_rep(f"r{k}", capacity=10, shift=TimeWindow(0, 1000)) for k in range(8)]
    p = _problem(points, visits, reps, minimise_reps=True)
    options = SolverOptions(cpu_s=2.0, ils_max_visits=100 if ils else 0, engine=engine)
    result, _ = _solve(p, options)
    assert not result.dropped
    assert len(result.used_routes) == 4
    assert all(len({v.split("_")[0] for v in r.visit_ids}) == 1 for r in result.used_routes)
    # the ILS runs in a worker process whose CPU time is counted against the budget
    assert (result.stats["worker_cpu_s"] > 0) is ils
    # PyVRP plans what it can express (no lunch breaks here), in this process
    assert result.stats.get("engine_pyvrp", 0.0) == (1.0 if engine == "pyvrp" else 0.0)


def test_fewest_reps_with_homes_apart_and_lunch_breaks_serves_everything() -> None:
    # Reps start from their own homes: a model for one of them must not route through
    # the other's home, and a lunch break must not stall the construction.
    day = TimeWindow(8 * 3600, 17 * 3600)
    lunch = Break(TimeWindow(11.5 * 3600, 14 * 3600), 1800)
    points = {"home_a": (0.0, 0.0), "home_b": (2_000.0, 0.0)}
    visits = []
    for i in range(4):
        points[f"p{i}"] = (500.0 * i, 300.0)
        visits.append(Visit(f"v{i}", f"p{i}", service_s=1800))
    reps = [
        Rep(rid, home, home, day, lunch_break=lunch)
        for rid, home in (("a", "home_a"), ("b", "home_b"))
    ]
    p = _problem(points, visits, reps, minimise_reps=True)
    result, _ = _solve(p, SolverOptions(cpu_s=1.0))
    assert not result.dropped
    assert len(result.used_routes) == 1
    assert sorted(result.used_routes[0].visit_ids) == ["v0", "v1", "v2", "v3"]
    assert result.used_routes[0].lunch_break is not None


def test_a_visit_needing_a_skill_goes_to_the_rep_who_has_it() -> None:
    p = _problem(
        {"depot": (0, 0), "a": (1, 0), "b": (0, 1)},
        [Visit("gas", "a", skills=frozenset({"gas"})), Visit("plain", "b")],
        [_rep("r1"), _rep("r2", skills=frozenset({"gas", "electric"}))],
    )
    result, _ = _solve(p)
    assert "gas" in _order(result, "r2")


def test_lunch_break_is_planned_inside_its_window_between_visits() -> None:
    p = _problem(
        {"depot": (0, 0), "a": (1, 0), "b": (2, 0)},
        [
            Visit("a", "a", service_s=10),
            Visit("b", "b", service_s=10, time_windows=(TimeWindow(20, 40),)),
        ],
        [_rep(lunch_break=Break(TimeWindow(10, 25), 5))],
    )
    result, _ = _solve(p)
    brk = result.routes[0].lunch_break
    assert brk is not None
    assert brk.start_s >= 10 - 1e-6 and brk.end_s <= 25 + 1e-6
    assert brk.end_s - brk.start_s == pytest.approx(5)


def test_capacity_splits_the_visits_between_reps() -> None:
    p = _problem(
        {"depot": (0, 0), "a": (1, 0), "b": (2, 0)},
        [Visit("a", "a", demand=3), Visit("b", "b", demand=3)],
        [_rep("r1", capacity=4), _rep("r2", capacity=4)],
    )
    result, _ = _solve(p)
    assert sorted(len(r.stops) for r in result.routes) == [1, 1]


def test_when_not_everything_fits_the_low_priority_visit_is_dropped_with_a_reason() -> None:
    p = _problem(
        {"depot": (0, 0), "near": (1, 0), "other": (-1, 0)},
        [
            Visit("low", "near", service_s=6, priority=1),
            Visit("high", "other", service_s=6, priority=5),
        ],
        [_rep(shift=TimeWindow(0, 10))],
    )
    result, _ = _solve(p)
    assert _order(result, "r1") == ["high"]
    assert [d.visit_id for d in result.dropped] == ["low"]
    assert "low" in result.dropped[0].message


def test_an_urgent_visit_is_never_dropped_for_others() -> None:
    p = _problem(
        {"depot": (0, 0), "a": (1, 0), "b": (-1, 0), "c": (0, 1)},
        [
            Visit("a", "a", service_s=4, priority=5),
            Visit("b", "b", service_s=4, priority=5),
            Visit("urgent", "c", service_s=4, priority=1, urgent=True),
        ],
        [_rep(shift=TimeWindow(0, 12))],
    )
    result, _ = _solve(p)
    # Only two of the three fit (11.4 of 12 time units); the urgent one is among them.
    assert "urgent" in _order(result, "r1")
    assert len(result.dropped) == 1 and result.dropped[0].visit_id != "urgent"


def test_an_urgent_visit_that_cannot_fit_is_reported_and_the_rest_is_planned() -> None:
    p = _problem(
        {"depot": (0, 0), "a": (1, 0), "far": (0, 30)},
        [Visit("a", "a"), Visit("urgent", "far", urgent=True, time_windows=(TimeWindow(0, 40),))],
        [_rep(shift=TimeWindow(0, 50))],
    )
    result, _ = _solve(p)
    assert _order(result, "r1") == ["a"]
    assert [d.visit_id for d in result.dropped] == ["urgent"]


def test_checker_rejects_a_plan_that_starts_service_outside_the_time_window() -> None:
    p = _problem(
        {"depot": (0, 0), "a": (1, 0)},
        [Visit("a", "a", time_windows=(TimeWindow(5, 6),))],
        [_rep()],
    )
    result, m = _solve(p)
    route = result.routes[0]
    bad_stop = replace(route.stops[0], service_start_s=8.0, service_end_s=8.0)
    bad = replace(result, routes=(replace(route, stops=(bad_stop,)),))
    assert any("outside its time windows" in v for v in check_plan(p, m, bad))
    silent = replace(result, routes=(replace(route, stops=()),))
    assert any("neither served nor reported" in v for v in check_plan(p, m, silent))


def test_checker_rejects_a_rep_without_the_skill() -> None:
    p = _problem(
        {"depot": (0, 0), "a": (1, 0)}, [Visit("a", "a", skills=frozenset({"x"}))], [_rep()]
    )
    m = EuclideanMatrix().matrices(p.locations)
    stop = Stop("a", "a", 1, 1, 1, 0, 0, 1, 1)
    from routing.model import Route

    forged = Plan((Route("r1", 0, 2, (stop,), 1, 1),), ())
    assert any("lacks skills" in v for v in check_plan(p, m, forged))


def test_pyvrp_plans_lunch_breaks_skills_and_locked_stops() -> None:
    day = TimeWindow(8 * 3600, 17 * 3600)
    lunch = Break(TimeWindow(12 * 3600, 13 * 3600), 1800)
    points = {"depot": (0.0, 0.0), **{f"p{i}": (600.0 * i, 400.0) for i in range(6)}}
    visits = [Visit(f"v{i}", f"p{i}", service_s=3600) for i in range(6)]
    visits[0] = replace(visits[0], skills=frozenset({"gas"}))
    visits[5] = replace(visits[5], rep_id="plain")
    reps = [
        Rep("plain", "depot", "depot", day, lunch_break=lunch),
        Rep("gasman", "depot", "depot", day, skills=frozenset({"gas"}), lunch_break=lunch),
    ]
    result, _ = _solve(_problem(points, visits, reps), SolverOptions(cpu_s=1.0))
    assert result.stats["engine_pyvrp"] == 1.0
    assert not result.dropped
    assert "v0" in _order(result, "gasman")
    assert "v5" in _order(result, "plain")
    for route in result.used_routes:
        assert route.lunch_break is not None
        assert 12 * 3600 <= route.lunch_break.start_s <= route.lunch_break.end_s <= 13 * 3600


def test_visits_with_several_windows_are_planned_by_ortools() -> None:
    p = _problem(
        {"depot": (0, 0), "a": (1, 0), "b": (2, 0)},
        [
            Visit("a", "a", time_windows=(TimeWindow(0, 5), TimeWindow(50, 60))),
            Visit("b", "b", time_windows=(TimeWindow(40, 45),)),
        ],
        [_rep()],
    )
    result, _ = _solve(p)
    assert "engine_pyvrp" not in result.stats
    assert not result.dropped


def test_a_visit_that_leaves_no_room_for_lunch_is_dropped_not_the_whole_day_replanned() -> None:
    # lunch exactly 12:00-12:30; "noon" must start 12:00-12:05 and lasts an hour: with it,
    # the break fits nowhere, so the low-priority "noon" is dropped and "other" is served
    day = TimeWindow(8 * 3600, 17 * 3600)
    lunch = Break(TimeWindow(12 * 3600, 12.5 * 3600), 1800)
    p = _problem(
        {"depot": (0.0, 0.0), "a": (100.0, 0.0), "b": (0.0, 100.0)},
        [
            Visit(
                "noon",
                "a",
                service_s=3600,
                priority=1,
                time_windows=(TimeWindow(12 * 3600, 12 * 3600 + 300),),
            ),
            Visit("other", "b", service_s=3600, priority=5),
        ],
        [Rep("r1", "depot", "depot", day, lunch_break=lunch)],
    )
    result, _ = _solve(p, SolverOptions(cpu_s=0.5))
    assert result.stats["engine_pyvrp"] == 1.0
    assert [d.visit_id for d in result.dropped] == ["noon"]
    assert _order(result, "r1") == ["other"]
    assert result.routes[0].lunch_break is not None
