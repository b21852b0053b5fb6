"""Re-plan the rest of a day: visits already done and the one in progress stay fixed.

Pure. Given the current plan, what has happened (done / in progress) and the time now,
each rep restarts from where they are (the visit in progress, or the last visit done)
when they will be free; the remaining and new visits (e.g. an urgent work order) are
planned again, and the changes are reported per rep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from routing.matrix import Matrices, MatrixProvider
from routing.model import InputError, Plan, Problem, Route, Stop, TimeWindow
from routing.planner import plan as plan_problem
from routing.solver import SolverOptions


@dataclass(frozen=True, slots=True)
class RepChange:
    rep_id: str
    before: tuple[str, ...]  # remaining (not yet started) visits in the old plan, in order
    after: tuple[str, ...]  # remaining visits in the new plan, in order
    added: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True, slots=True)
class Replan:
    plan: Plan  # full day: fixed stops first, then the re-planned rest
    changes: tuple[RepChange, ...]
    fixed: Mapping[str, tuple[str, ...]]  # per rep: visits kept as they were (done, in progress)
    rest_problem: Problem  # what was re-planned: reps from where they will be free, visits left
    rest: Plan  # the plan for `rest_problem` alone
    # visits the running plan gave a rep (not yet started) that now go to another rep or
    # are dropped: how much the re-plan changed for the reps
    moved: tuple[str, ...] = ()


def replan(
    problem: Problem,
    current: Plan,
    now_s: float,
    done: Sequence[str] = (),
    in_progress: Mapping[str, str] | None = None,
    matrices: Matrices | MatrixProvider | None = None,
    options: SolverOptions | None = None,
) -> Replan:
    """Re-plan `problem` (which may hold new visits) from `now_s`.

    `in_progress` maps rep id -> the visit that rep is serving now.
    """
    in_progress = dict(in_progress or {})
    done_set = set(done)
    visits = {v.id: v for v in problem.visits}
    for vid in [*done_set, *in_progress.values()]:
        if vid not in visits:
            raise InputError(
                f"visit {vid} reported done or in progress is not in the problem", "visits"
            )
    routes = {r.rep_id: r for r in current.routes}
    fixed_stops: dict[str, list[Stop]] = {}
    new_reps = []
    for rep in problem.reps:
        route = routes.get(rep.id)
        stops = list(route.stops) if route else []
        fixed = [s for s in stops if s.visit_id in done_set]
        current_vid = in_progress.get(rep.id)
        if current_vid is not None:
            s = next((s for s in stops if s.visit_id == current_vid), None)
            if s is None:  # serving a visit the plan gave someone else: it is fixed to this rep now
                v = visits[current_vid]
                s = Stop(
                    current_vid,
                    v.location_id,
                    now_s,
                    now_s,
                    now_s + v.service_s,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                )
            fixed.append(s)
        fixed_stops[rep.id] = fixed
        start_loc, free_at = rep.start_location_id, max(now_s, rep.shift.start_s)
        if fixed:
            last = max(fixed, key=lambda s: s.service_end_s)
            start_loc = last.location_id
            free_at = max(free_at, last.service_end_s)
        lunch = rep.lunch_break
        if (
            lunch is not None
            and route is not None
            and route.lunch_break is not None
            and route.lunch_break.end_s <= now_s
        ):
            lunch = None  # already taken
        new_reps.append(
            replace(
                rep,
                start_location_id=start_loc,
                shift=TimeWindow(min(free_at, rep.shift.end_s), rep.shift.end_s),
                lunch_break=lunch,
            )
        )
    fixed_ids = {s.visit_id for f in fixed_stops.values() for s in f}
    # Each remaining visit remembers its rep in the running plan: the solver charges a
    # stability cost for giving it to another rep, so a small change stays small.
    old_rep = {s.visit_id: r.rep_id for r in current.routes for s in r.stops}
    remaining = tuple(
        replace(v, previous_rep_id=old_rep.get(v.id, v.previous_rep_id))
        for v in problem.visits
        if v.id not in fixed_ids and v.id not in done_set
    )
    sub = replace(problem, visits=remaining, reps=tuple(new_reps), now_s=now_s)
    result = plan_problem(sub, matrices, options)
    new_routes = {r.rep_id: r for r in result.routes}
    out_routes = []
    changes = []
    for rep in problem.reps:
        fixed = fixed_stops[rep.id]
        nr = new_routes.get(rep.id)
        tail = list(nr.stops) if nr else []
        old = routes.get(rep.id)
        before = tuple(
            s.visit_id
            for s in (old.stops if old else ())
            if s.visit_id not in fixed_ids and s.visit_id not in done_set
        )
        after = tuple(s.visit_id for s in tail)
        changes.append(
            RepChange(
                rep.id,
                before,
                after,
                added=tuple(v for v in after if v not in before),
                removed=tuple(v for v in before if v not in after),
            )
        )
        start_s = old.start_s if old and old.stops else (nr.start_s if nr else rep.shift.start_s)
        end_s = (
            nr.end_s
            if nr and nr.stops
            else (max((s.service_end_s for s in fixed), default=start_s))
        )
        out_routes.append(
            Route(
                rep.id,
                start_s,
                end_s,
                tuple(fixed + tail),
                nr.end_travel_s if nr else 0.0,
                nr.end_distance_m if nr else 0.0,
                (nr.lunch_break if nr and nr.lunch_break else (old.lunch_break if old else None)),
            )
        )
    new_rep = {s.visit_id: r.rep_id for r in result.routes for s in r.stops}
    moved = tuple(
        v.id
        for v in remaining
        if v.previous_rep_id is not None and new_rep.get(v.id) != v.previous_rep_id
    )
    stats = {**result.stats, "moved_visits": float(len(moved))}
    full = Plan(tuple(out_routes), result.dropped, result.issues, stats)
    fixed_ids_by_rep = {k: tuple(s.visit_id for s in v) for k, v in fixed_stops.items()}
    return Replan(full, tuple(changes), fixed_ids_by_rep, sub, result, moved)
