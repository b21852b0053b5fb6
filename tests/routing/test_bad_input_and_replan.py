"""Bad input gets a reason naming the visit or rep and a plan for the rest; re-planning
keeps what is done and in progress; outputs; a Solomon instance solved feasibly."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing.checker import check_plan, check_routes
from routing.geojson import plan_to_geojson
from routing.ical import rep_calendar
from routing.matrix import EuclideanMatrix, GreatCircleMatrix
from routing.model import DropReason, InputError, Location, Problem, Rep, TimeWindow, Visit
from routing.planner import plan
from routing.replan import replan
from routing.solomon import parse_solomon, read_instance
from routing.solver import SolverOptions

FAST = SolverOptions(cpu_s=1.0)
SOLOMON = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "vrptw" / "solomon"


def _locs(**pts: tuple[float, float]) -> tuple[Location, ...]:
    return tuple(Location(k, x, y) for k, (x, y) in pts.items())


def test_each_bad_visit_is_dropped_with_its_reason_and_the_rest_is_planned() -> None:
    locs = _locs(depot=(0, 0), a=(1, 0), b=(2, 0))
    visits = (
        Visit("ok", "a"),
        Visit("nowhere", "atlantis"),
        Visit("marathon", "b", service_s=500),
        Visit("yesterday", "b", time_windows=(TimeWindow(0, 5),)),
        Visit("welding", "b", skills=frozenset({"welding"})),
    )
    reps = (Rep("r1", "depot", "depot", TimeWindow(0, 100)),)
    p = Problem(locs, visits, reps, now_s=10.0)
    m = EuclideanMatrix().matrices(locs)
    result = plan(p, m, FAST)
    reasons = {d.visit_id: d.reason for d in result.dropped}
    assert reasons == {
        "nowhere": DropReason.UNKNOWN_LOCATION,
        "marathon": DropReason.LONGER_THAN_ANY_SHIFT,
        "yesterday": DropReason.WINDOW_IN_PAST,
        "welding": DropReason.NO_REP_WITH_SKILLS,
    }
    for d in result.dropped:
        assert d.visit_id in d.message
    assert [r.visit_ids for r in result.routes] == [["ok"]]
    assert result.routes[0].start_s >= 10.0  # nobody leaves in the past
    assert check_plan(p, m, result) == []


def test_an_empty_territory_answers_with_a_reason_for_every_visit() -> None:
    locs = _locs(depot=(0, 0), a=(1, 0))
    p = Problem(locs, (Visit("v1", "a"),), ())
    result = plan(p, EuclideanMatrix().matrices(locs), FAST)
    assert result.routes == ()
    assert [(d.visit_id, d.reason) for d in result.dropped] == [("v1", DropReason.NO_REP)]
    assert any(i.reason == DropReason.NO_REP for i in result.issues)


def test_a_rep_starting_at_an_unknown_place_is_named_and_the_others_plan() -> None:
    locs = _locs(depot=(0, 0), a=(1, 0))
    reps = (
        Rep("lost", "mars", "depot", TimeWindow(0, 100)),
        Rep("r2", "depot", "depot", TimeWindow(0, 100)),
    )
    p = Problem(locs, (Visit("v1", "a"),), reps)
    result = plan(p, EuclideanMatrix().matrices(locs), FAST)
    assert any(i.rep_id == "lost" and "mars" in i.message for i in result.issues)
    assert {r.rep_id: r.visit_ids for r in result.routes} == {"r2": ["v1"], "lost": []}


def test_duplicate_visit_ids_are_rejected_naming_them() -> None:
    locs = _locs(depot=(0, 0))
    p = Problem(locs, (Visit("x", "depot"), Visit("x", "depot")), ())
    with pytest.raises(InputError, match="duplicate visit ids"):
        plan(p, EuclideanMatrix().matrices(locs), FAST)


def test_replanning_keeps_done_and_in_progress_visits_and_fits_the_urgent_one() -> None:
    locs = _locs(depot=(0, 0), a=(1, 0), b=(2, 0), c=(3, 0), d=(0, 2), e=(0, 3), u=(1, 1))
    visits = tuple(Visit(k, k, service_s=2) for k in "abcde")
    reps = (
        Rep("r1", "depot", "depot", TimeWindow(0, 60)),
        Rep("r2", "depot", "depot", TimeWindow(0, 60)),
    )
    p = Problem(locs, visits, reps)
    m = EuclideanMatrix().matrices(locs)
    first = plan(p, m, FAST)
    assert check_plan(p, m, first) == []
    routes = {r.rep_id: r for r in first.routes}
    busy = max(routes.values(), key=lambda r: len(r.stops))
    done_stop, current_stop = busy.stops[0], busy.stops[1]
    now = current_stop.service_start_s + 1
    urgent = Visit(
        "urgent", "u", service_s=2, urgent=True, time_windows=(TimeWindow(now, now + 20),)
    )
    p2 = Problem(locs, (*visits, urgent), reps)
    result = replan(
        p2,
        first,
        now,
        done=[done_stop.visit_id],
        in_progress={busy.rep_id: current_stop.visit_id},
        matrices=m,
        options=FAST,
    )
    new_busy = next(r for r in result.plan.routes if r.rep_id == busy.rep_id)
    assert new_busy.stops[0] == done_stop
    assert new_busy.stops[1] == current_stop
    assert result.fixed[busy.rep_id] == (done_stop.visit_id, current_stop.visit_id)
    planned = [v for r in result.plan.routes for v in r.visit_ids]
    assert "urgent" in planned
    assert sorted(planned) == sorted([*"abcde", "urgent"])
    assert any("urgent" in c.added for c in result.changes)
    assert check_plan(result.rest_problem, m, result.rest) == []
    for r in result.rest.routes:
        assert all(s.service_start_s >= now for s in r.stops)


def test_great_circle_matrix_applies_road_factor_and_slower_short_trips() -> None:
    locs = (
        Location("paris", 2.3522, 48.8566),
        Location("london", -0.1276, 51.5072),
        Location("near", 2.36, 48.86),
    )
    m = GreatCircleMatrix(road_factor=1.3).matrices(locs)
    assert m.distance_m[0, 1] == pytest.approx(343_900 * 1.3, rel=0.01)
    assert m.distance_m[0, 1] == pytest.approx(m.distance_m[1, 0])
    assert m.distance_m[0, 0] == 0
    long_speed = m.distance_m[0, 1] / m.duration_s[0, 1]
    short_speed = m.distance_m[0, 2] / m.duration_s[0, 2]
    assert short_speed < long_speed


def test_geojson_and_ics_describe_the_plan() -> None:
    locs = (Location("home", 2.35, 48.85), Location("a", 2.30, 48.87), Location("b", 2.40, 48.83))
    visits = (
        Visit("a", "a", service_s=1800, title="Boiler, Dupont; check"),
        Visit("b", "b", service_s=1800),
    )
    reps = (Rep("r1", "home", "home", TimeWindow(8 * 3600, 17 * 3600)),)
    p = Problem(locs, visits, reps)
    result = plan(p, GreatCircleMatrix(), FAST)
    gj = plan_to_geojson(p, result)
    kinds = [f["properties"]["kind"] for f in gj["features"]]
    assert kinds.count("route") == 1 and kinds.count("stop") == 2
    line = next(f for f in gj["features"] if f["properties"]["kind"] == "route")
    assert line["geometry"]["coordinates"][0] == [2.35, 48.85]
    ics = rep_calendar(p, result, "r1", "plan-1")
    assert ics.startswith("BEGIN:VCALENDAR\r\n") and ics.endswith("END:VCALENDAR\r\n")
    assert ics.count("BEGIN:VEVENT") == 2
    assert "Boiler\\, Dupont\\; check" in ics
    assert all(len(line.encode()) <= 75 for line in ics.split("\r\n"))


def test_solomon_reader_parses_the_header_and_customers() -> None:
    text = "T1\n\nVEHICLE\nNUMBER     CAPACITY\n  3   50\n\nCUSTOMER\nCUST NO. X Y DEMAND READY DUE SERVICE\n\n 0 0 0 0 0 100 0\n 1 3 4 10 0 50 5\n"
    inst = parse_solomon(text, "T1")
    assert (inst.vehicles, inst.capacity, len(inst.customers)) == (3, 50, 1)
    p = inst.to_problem()
    assert len(p.reps) == 3 and p.visits[0].time_windows[0].end_s == 50
    with pytest.raises(InputError):
        parse_solomon("nothing here", "bad")


def test_a_solomon_instance_is_solved_feasibly_on_a_short_budget() -> None:
    inst = read_instance(SOLOMON / "R101.txt")
    p = inst.to_problem()
    m = EuclideanMatrix().matrices(p.locations)
    result = plan(p, m, SolverOptions(cpu_s=2.0, cost="distance"))
    assert result.dropped == ()
    violations, _per = check_routes(p, m, {r.rep_id: r.visit_ids for r in result.used_routes})
    assert violations == []
    assert check_plan(p, m, result) == []
    assert len(result.used_routes) <= inst.vehicles
