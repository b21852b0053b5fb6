"""An independent feasibility checker for plans and bare route lists.

It shares nothing with the solver but the model: it recomputes travel from the
float matrices and checks time windows, shifts, maximum working time, skills,
locked reps, breaks and capacity. Used by the tests and by the benchmark (which
checks both our routes and VROOM's before counting them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from routing.matrix import Matrices
from routing.model import Plan, Problem, Rep, Visit

TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class RouteCheck:
    violations: list[str]
    distance_m: float
    duration_s: float  # end - start of the earliest schedule


def _fits_window(visit: Visit, t: float, tol: float) -> bool:
    return not visit.time_windows or any(w.contains(t, tol) for w in visit.time_windows)


def _earliest_start(visit: Visit, arrival: float, tol: float) -> float | None:
    if not visit.time_windows:
        return arrival
    options = [max(arrival, w.start_s) for w in visit.time_windows if arrival <= w.end_s + tol]
    return min(options) if options else None


def _static_checks(problem: Problem, rep: Rep, visits: Sequence[Visit]) -> list[str]:
    out = []
    for v in visits:
        if not v.skills <= rep.skills:
            out.append(
                f"rep {rep.id} lacks skills {sorted(v.skills - rep.skills)} for visit {v.id}"
            )
        if v.rep_id is not None and v.rep_id != rep.id:
            out.append(f"visit {v.id} is locked to rep {v.rep_id} but planned for {rep.id}")
    load = sum(v.demand for v in visits)
    if rep.capacity is not None and load > rep.capacity:
        out.append(f"rep {rep.id} carries {load} > capacity {rep.capacity}")
    return out


def check_routes(
    problem: Problem,
    matrices: Matrices,
    routes: Mapping[str, Sequence[str]],
    tol: float = TOLERANCE,
) -> tuple[list[str], dict[str, RouteCheck]]:
    """Check bare visit orders per rep by building the earliest schedule.

    Returns (violations, per-rep results). Also reports visits served twice or
    never (a bare route list has no dropped list, so every visit must be served).
    """
    loc = problem.location_index()
    visits = {v.id: v for v in problem.visits}
    reps = {r.id: r for r in problem.reps}
    violations: list[str] = []
    seen: dict[str, str] = {}
    results: dict[str, RouteCheck] = {}
    for rep_id, order in routes.items():
        rep = reps.get(rep_id)
        if rep is None:
            violations.append(f"unknown rep {rep_id}")
            continue
        route_v: list[str] = []
        vs = []
        for vid in order:
            if vid not in visits:
                route_v.append(f"unknown visit {vid} in route of {rep_id}")
                continue
            if vid in seen:
                route_v.append(f"visit {vid} served by {seen[vid]} and {rep_id}")
            seen[vid] = rep_id
            vs.append(visits[vid])
        route_v += _static_checks(problem, rep, vs)
        if not vs:
            results[rep_id] = RouteCheck(route_v, 0.0, 0.0)
            violations += route_v
            continue
        positions = [None] if rep.lunch_break is None else list(range(len(vs) + 1))
        best: tuple[list[str], float, float] | None = None
        for pos in positions:
            viol, dist, span = _simulate(problem, matrices, loc, rep, vs, pos, tol)
            if best is None or len(viol) < len(best[0]):
                best = (viol, dist, span)
            if not viol:
                break
        assert best is not None
        route_v += best[0]
        results[rep_id] = RouteCheck(route_v, best[1], best[2])
        violations += route_v
    missing = [v.id for v in problem.visits if v.id not in seen]
    if missing:
        violations.append(f"{len(missing)} visits never served: {missing[:10]}")
    return violations, results


def _simulate(
    problem: Problem,
    matrices: Matrices,
    loc: dict[str, int],
    rep: Rep,
    vs: Sequence[Visit],
    break_pos: int | None,
    tol: float,
) -> tuple[list[str], float, float]:
    """Earliest schedule; with `break_pos` k the break is taken before leaving stop k-1 (0: at start)."""
    out: list[str] = []
    t = rep.shift.start_s
    here = loc[rep.start_location_id]
    dist = 0.0
    brk = rep.lunch_break
    for k, v in enumerate([*vs, None]):
        if brk is not None and break_pos == k:
            b0 = max(t, brk.window.start_s)
            if b0 + brk.duration_s > brk.window.end_s + tol:
                out.append(f"rep {rep.id}: break cannot be taken after stop {k} (at {t:.1f})")
            t = b0 + brk.duration_s
        nxt = loc[rep.end_location_id] if v is None else loc[v.location_id]
        dist += float(matrices.distance_m[here, nxt])
        arrival = t + float(matrices.duration_s[here, nxt])
        here = nxt
        if v is None:
            t = arrival
            break
        start = _earliest_start(v, arrival, tol)
        if start is None:
            out.append(f"visit {v.id}: arrival {arrival:.3f} after its time windows close")
            start = arrival
        t = start + v.service_s
    if t > rep.shift.end_s + tol:
        out.append(f"rep {rep.id}: back at {t:.3f} after shift end {rep.shift.end_s:.3f}")
    span = t - rep.shift.start_s
    if rep.max_working_s is not None and span > rep.max_working_s + tol:
        # the rep may leave later: the earliest schedule overstates the span when there is waiting
        out.append(
            f"rep {rep.id}: working {span:.1f} s > max {rep.max_working_s:.1f} s (leaving at shift start)"
        )
    return out, dist, span


def check_plan(
    problem: Problem, matrices: Matrices, plan: Plan, tol: float = TOLERANCE
) -> list[str]:
    """Check a plan's stated schedule: every stated time is consistent and within limits."""
    loc = problem.location_index()
    visits = {v.id: v for v in problem.visits}
    reps = {r.id: r for r in problem.reps}
    out: list[str] = []
    served: dict[str, str] = {}
    for route in plan.routes:
        rep = reps.get(route.rep_id)
        if rep is None:
            out.append(f"plan has a route for unknown rep {route.rep_id}")
            continue
        vs = []
        for stop in route.stops:
            if stop.visit_id not in visits:
                out.append(f"route {rep.id} serves unknown visit {stop.visit_id}")
                continue
            if stop.visit_id in served:
                out.append(f"visit {stop.visit_id} served by {served[stop.visit_id]} and {rep.id}")
            served[stop.visit_id] = rep.id
            vs.append(visits[stop.visit_id])
        out += _static_checks(problem, rep, vs)
        if not route.stops:
            continue
        if route.start_s < rep.shift.start_s - tol:
            out.append(
                f"rep {rep.id} starts at {route.start_s} before shift start {rep.shift.start_s}"
            )
        if route.end_s > rep.shift.end_s + tol:
            out.append(f"rep {rep.id} ends at {route.end_s} after shift end {rep.shift.end_s}")
        if rep.max_working_s is not None and route.end_s - route.start_s > rep.max_working_s + tol:
            out.append(
                f"rep {rep.id} works {route.end_s - route.start_s:.0f} s > max {rep.max_working_s:.0f} s"
            )
        brk = route.lunch_break
        if rep.lunch_break is not None:
            want = rep.lunch_break
            if brk is None:
                out.append(f"rep {rep.id} has no lunch break")
            else:
                if brk.end_s - brk.start_s < want.duration_s - tol:
                    out.append(
                        f"rep {rep.id} break lasts {brk.end_s - brk.start_s:.0f} s < {want.duration_s:.0f} s"
                    )
                if brk.start_s < want.window.start_s - tol or brk.end_s > want.window.end_s + tol:
                    out.append(
                        f"rep {rep.id} break {brk.start_s:.0f}-{brk.end_s:.0f} outside its window"
                    )
        prev_end = route.start_s
        here = loc[rep.start_location_id]
        legs: list[tuple[float, float, float]] = []  # (leg start, leg end, travel)
        for stop, v in zip(route.stops, vs, strict=False):
            travel = float(matrices.duration_s[here, loc[v.location_id]])
            if abs(stop.travel_s - travel) > 1e-3 + tol * travel:
                out.append(f"visit {v.id}: stated travel {stop.travel_s:.3f} != {travel:.3f}")
            if stop.service_start_s < prev_end + travel - tol:
                out.append(
                    f"visit {v.id}: service at {stop.service_start_s:.3f} before it can arrive ({prev_end + travel:.3f})"
                )
            if not _fits_window(v, stop.service_start_s, tol):
                out.append(
                    f"visit {v.id}: service at {stop.service_start_s:.3f} outside its time windows"
                )
            if abs(stop.service_end_s - stop.service_start_s - v.service_s) > tol:
                out.append(
                    f"visit {v.id}: service lasts {stop.service_end_s - stop.service_start_s} != {v.service_s}"
                )
            legs.append((prev_end, stop.service_start_s, travel))
            prev_end = stop.service_end_s
            here = loc[v.location_id]
        travel = float(matrices.duration_s[here, loc[rep.end_location_id]])
        if route.end_s < prev_end + travel - tol:
            out.append(
                f"rep {rep.id} back at {route.end_s:.3f} before it can arrive ({prev_end + travel:.3f})"
            )
        legs.append((prev_end, route.end_s, travel))
        if brk is not None:
            ok = any(
                brk.start_s >= a - tol
                and brk.end_s <= b + tol
                and (b - a) >= travel + (brk.end_s - brk.start_s) - tol
                for a, b, travel in legs
            )
            if not ok:
                out.append(
                    f"rep {rep.id}: break {brk.start_s:.0f}-{brk.end_s:.0f} overlaps a visit or leaves no time to travel"
                )
    dropped = {d.visit_id for d in plan.dropped}
    for vid in dropped & served.keys():
        out.append(f"visit {vid} both served and dropped")
    silent = [v.id for v in problem.visits if v.id not in served and v.id not in dropped]
    if silent:
        out.append(f"visits neither served nor reported dropped: {silent[:10]}")
    return out
