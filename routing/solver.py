"""The OR-Tools solver: the only module that imports ortools.

A Problem plus location Matrices compile into an OR-Tools routing model: time
dimension (travel + service, registered as a transit *matrix*), time windows,
shifts, breaks, maximum working time, capacity, skills (allowed vehicles), and
visits droppable at a penalty by priority (urgent visits are not droppable).

The search runs under a CPU-time budget (`time.process_time`): a custom search
limit stops OR-Tools when the process has used its CPU budget (OR-Tools' own time
limit is wall-clock, which on a shared machine measures the neighbours).

With `minimise_reps`, the objective is hierarchical: reps first, then travel.
1. construct: parallel cheapest insertion, short guided local search;
2. eliminate routes: drop a route (smallest first), re-solve with one rep fewer
   from the remaining routes (warm start) with all visits optional at a large
   penalty; accept as soon as every visit is served again; repeat until the
   demand lower bound or the budget share is reached;
3. improve travel with guided local search on the final rep count.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2
from ortools.util import optional_boolean_pb2

from routing.matrix import Matrices
from routing.model import (
    BreakSlot,
    Dropped,
    DropReason,
    Plan,
    Problem,
    Rep,
    Route,
    SolverError,
    Stop,
    Visit,
)

log = logging.getLogger(__name__)

PRIORITY_WEIGHT = {1: 1, 2: 4, 3: 16, 4: 64, 5: 256}
URGENT_WEIGHT = 4096


@dataclass(frozen=True, slots=True)
class Progress:
    phase: str
    reps: int
    dropped: int
    cost: float
    cpu_s: float


@dataclass(frozen=True, slots=True)
class SolverOptions:
    cpu_s: float = 10.0
    scale: int = 1000  # integer solver units per second / metre
    minimise_reps: bool | None = None  # None: follow Problem.minimise_reps
    cost: str = "duration"  # arc cost: "duration" (travel time) or "distance"
    construct_share: float = 0.15
    eliminate_share: float = 0.6
    progress: Callable[[Progress], None] | None = field(default=None, compare=False)


class _CpuClock:
    def __init__(self, budget_s: float) -> None:
        self.t0 = time.process_time()
        self.budget_s = budget_s

    def used(self) -> float:
        return time.process_time() - self.t0

    def left(self) -> float:
        return self.budget_s - self.used()


@dataclass
class _Compiled:
    """Node-level data: visits are nodes 0..n-1, then one node per distinct depot location."""

    problem: Problem
    visits: list[Visit]
    reps: list[Rep]
    node_loc: list[int]
    depot_node: dict[int, int]  # location index -> node
    time_t: list[list[int]]
    cost_t: list[list[int]]
    service_t: list[int]
    demand: list[int]
    distance_m: np.ndarray
    duration_s: np.ndarray
    scale: int
    horizon_t: int
    max_arc_t: int


def _compile(problem: Problem, matrices: Matrices, visits: list[Visit], scale: int, cost: str) -> _Compiled:
    loc_index = problem.location_index()
    node_loc = [loc_index[v.location_id] for v in visits]
    depot_node: dict[int, int] = {}
    for rep in problem.reps:
        for loc_id in (rep.start_location_id, rep.end_location_id):
            li = loc_index[loc_id]
            if li not in depot_node:
                depot_node[li] = len(node_loc)
                node_loc.append(li)
    idx = np.array(node_loc, dtype=np.int64)
    dur = matrices.duration_s[np.ix_(idx, idx)]
    dist = matrices.distance_m[np.ix_(idx, idx)]
    service = np.zeros(len(node_loc))
    service[: len(visits)] = [v.service_s for v in visits]
    # Conservative integers: ceil travel so a plan feasible in integers is feasible in floats.
    travel_t = np.ceil(dur * scale - 1e-6).astype(np.int64)
    service_t = np.rint(service * scale).astype(np.int64)
    time_t = travel_t + service_t[:, None]
    base = dist if cost == "distance" else dur
    cost_t = np.rint(base * scale).astype(np.int64)
    horizon = max(r.shift.end_s for r in problem.reps) if problem.reps else 0.0
    return _Compiled(
        problem=problem,
        visits=visits,
        reps=list(problem.reps),
        node_loc=node_loc,
        depot_node=depot_node,
        time_t=time_t.tolist(),
        cost_t=cost_t.tolist(),
        service_t=service_t.tolist(),
        demand=[v.demand for v in visits] + [0] * (len(node_loc) - len(visits)),
        distance_m=dist,
        duration_s=dur,
        scale=scale,
        horizon_t=math.ceil(horizon * scale) + 1,
        max_arc_t=int(cost_t.max()) if cost_t.size else 1,
    )


@dataclass
class _Model:
    manager: pywrapcp.RoutingIndexManager
    routing: pywrapcp.RoutingModel
    time_dim: pywrapcp.RoutingDimension
    rep_ids: list[int]  # model vehicle -> index into compiled.reps
    breaks: dict[int, pywrapcp.IntervalVar]


def _build(
    c: _Compiled, rep_ids: list[int], penalty: Callable[[Visit], int | None], vehicle_fixed_cost: int = 0
) -> _Model:
    reps = [c.reps[i] for i in rep_ids]
    loc_index = c.problem.location_index()
    starts = [c.depot_node[loc_index[r.start_location_id]] for r in reps]
    ends = [c.depot_node[loc_index[r.end_location_id]] for r in reps]
    manager = pywrapcp.RoutingIndexManager(len(c.node_loc), len(reps), starts, ends)
    routing = pywrapcp.RoutingModel(manager)
    cost_cb = routing.RegisterTransitMatrix(c.cost_t)
    routing.SetArcCostEvaluatorOfAllVehicles(cost_cb)
    if vehicle_fixed_cost:
        routing.SetFixedCostOfAllVehicles(vehicle_fixed_cost)
    time_cb = routing.RegisterTransitMatrix(c.time_t)
    routing.AddDimension(time_cb, c.horizon_t, c.horizon_t, False, "time")
    time_dim = routing.GetDimensionOrDie("time")
    s = c.scale
    for v, rep in enumerate(reps):
        lo, hi = math.ceil(rep.shift.start_s * s), math.floor(rep.shift.end_s * s)
        time_dim.CumulVar(routing.Start(v)).SetRange(lo, hi)
        time_dim.CumulVar(routing.End(v)).SetRange(lo, hi)
        if rep.max_working_s is not None:
            time_dim.SetSpanUpperBoundForVehicle(math.floor(rep.max_working_s * s), v)
        routing.AddVariableMaximizedByFinalizer(time_dim.CumulVar(routing.Start(v)))
        routing.AddVariableMinimizedByFinalizer(time_dim.CumulVar(routing.End(v)))
    if any(r.capacity is not None for r in reps) and any(c.demand):
        total = sum(c.demand)
        demand_cb = routing.RegisterUnaryTransitVector(c.demand)
        routing.AddDimensionWithVehicleCapacity(
            demand_cb, 0, [r.capacity if r.capacity is not None else total for r in reps], True, "load"
        )
    for node, visit in enumerate(c.visits):
        index = manager.NodeToIndex(node)
        cumul = time_dim.CumulVar(index)
        if visit.time_windows:
            wins = sorted(visit.time_windows, key=lambda w: w.start_s)
            cumul.SetRange(math.ceil(wins[0].start_s * s), math.floor(max(w.end_s for w in wins) * s))
            for a, b in zip(wins, wins[1:], strict=False):
                gap_lo, gap_hi = math.floor(a.end_s * s) + 1, math.ceil(b.start_s * s) - 1
                if gap_lo <= gap_hi:
                    cumul.RemoveInterval(gap_lo, gap_hi)
        allowed = [
            v
            for v, rep in enumerate(reps)
            if visit.skills <= rep.skills and (visit.rep_id is None or visit.rep_id == rep.id)
        ]
        if len(allowed) < len(reps):
            if allowed:
                routing.SetAllowedVehiclesForIndex(allowed, index)
            else:
                routing.VehicleVar(index).SetValues([-1])
        p = penalty(visit)
        if p is not None:
            routing.AddDisjunction([index], p)
    breaks: dict[int, pywrapcp.IntervalVar] = {}
    solver = routing.solver()
    node_visit_transit = [0] * routing.Size()
    for index in range(routing.Size()):
        node_visit_transit[index] = c.service_t[manager.IndexToNode(index)]
    for v, rep in enumerate(reps):
        if rep.lunch_break is None:
            continue
        b = rep.lunch_break
        dur = math.ceil(b.duration_s * s)
        lo, hi = math.ceil(b.window.start_s * s), math.floor(b.window.end_s * s) - dur
        interval = solver.FixedDurationIntervalVar(lo, max(lo, hi), dur, False, f"break {rep.id}")
        time_dim.SetBreakIntervalsOfVehicle([interval], v, node_visit_transit)
        breaks[v] = interval
    return _Model(manager, routing, time_dim, rep_ids, breaks)


def _params(
    clock: _CpuClock, slice_s: float, first: bool, metaheuristic: str = "GUIDED_LOCAL_SEARCH"
) -> pywrapcp.DefaultRoutingSearchParameters:
    params = pywrapcp.DefaultRoutingSearchParameters()
    if first:
        params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    params.local_search_metaheuristic = getattr(routing_enums_pb2.LocalSearchMetaheuristic, metaheuristic)
    # A wall-clock backstop only; the CPU-time limit is the custom search limit.
    params.time_limit.FromMilliseconds(int(max(0.05, slice_s) * 1000 * 20) + 1000)
    ops = params.local_search_operators
    true = optional_boolean_pb2.BOOL_TRUE
    ops.use_relocate_and_make_active = true
    ops.use_exchange_and_make_active = true
    ops.use_inactive_lns = true
    return params


def _run(
    model: _Model,
    params: pywrapcp.DefaultRoutingSearchParameters,
    deadline_cpu: float,
    initial: list[list[int]] | None,
    stop_below_cost: int | None = None,
) -> pywrapcp.Assignment | None:
    """Solve until the process CPU time reaches `deadline_cpu` (or a cost target is met)."""
    routing = model.routing
    state = {"hit": False}

    def on_solution() -> None:
        if stop_below_cost is not None and routing.CostVar().Value() < stop_below_cost:
            state["hit"] = True

    def limiter() -> bool:
        return state["hit"] or time.process_time() >= deadline_cpu

    routing.AddAtSolutionCallback(on_solution)
    routing.CloseModelWithParameters(params)
    routing.AddSearchMonitor(routing.solver().CustomLimit(limiter))
    if initial is None:
        return routing.SolveWithParameters(params)
    start = routing.ReadAssignmentFromRoutes(
        [[model.manager.NodeToIndex(n) for n in r] for r in initial], True
    )
    if start is None:
        return None
    return routing.SolveFromAssignmentWithParameters(start, params) or start


def _routes(model: _Model, a: pywrapcp.Assignment) -> list[list[int]]:
    """Visit nodes per model vehicle."""
    routing, manager = model.routing, model.manager
    out = []
    for v in range(routing.vehicles()):
        nodes = []
        index = a.Value(routing.NextVar(routing.Start(v)))
        while not routing.IsEnd(index):
            nodes.append(manager.IndexToNode(index))
            index = a.Value(routing.NextVar(index))
        out.append(nodes)
    return out


def _penalty_fn(c: _Compiled, minimise_reps: bool) -> Callable[[Visit], int | None]:
    base = 2 * c.max_arc_t + 1

    def penalty(visit: Visit) -> int | None:
        if visit.urgent:
            return None
        return base * PRIORITY_WEIGHT.get(visit.priority, 16)

    return penalty


def _big_penalty(c: _Compiled) -> int:
    """Larger than any possible travel total: dropping one visit costs more than all arcs."""
    return (len(c.node_loc) + 2) * (c.max_arc_t + 1) * 2


def _report(options: SolverOptions, clock: _CpuClock, phase: str, routes: Sequence[Sequence[int]], dropped: int, cost: float) -> None:
    if options.progress is not None:
        options.progress(Progress(phase, sum(1 for r in routes if r), dropped, cost, clock.used()))


def solve(problem: Problem, matrices: Matrices, options: SolverOptions | None = None, visits: Sequence[Visit] | None = None) -> Plan:
    """Plan `visits` (default: all of the problem's) for the problem's reps.

    Input should have been validated (routing.validate.plan does both); visits
    the solver could not serve are returned as dropped with a reason.
    """
    options = options or SolverOptions()
    clock = _CpuClock(options.cpu_s)
    vs = list(problem.visits if visits is None else visits)
    if not problem.reps or not vs:
        return Plan(
            routes=tuple(_empty_route(r) for r in problem.reps),
            dropped=tuple(Dropped(v.id, DropReason.NO_REP, "no rep available") for v in vs),
        )
    c = _compile(problem, matrices, vs, options.scale, options.cost)
    minimise = problem.minimise_reps if options.minimise_reps is None else options.minimise_reps
    all_reps = list(range(len(c.reps)))
    n = len(vs)
    big = _big_penalty(c)

    # 1. construct
    share = options.construct_share if minimise else 1.0
    model = _build(c, all_reps, _penalty_fn(c, minimise) if not minimise else (lambda v: big * (4 if v.urgent else 1)))
    deadline = clock.t0 + max(options.cpu_s * share, min(options.cpu_s, 0.2))
    a = _run(model, _params(clock, clock.left(), first=True), deadline, None)
    if a is None:
        raise SolverError("no initial solution found within the CPU budget")
    best_routes_v = _routes(model, a)
    best_reps = [all_reps[v] for v in range(len(all_reps))]
    served = {x for r in best_routes_v for x in r}
    _report(options, clock, "construct", best_routes_v, n - len(served), a.ObjectiveValue())

    if minimise:
        # 2. route elimination: keep only used reps; try with one fewer.
        used = [(best_reps[v], r) for v, r in enumerate(best_routes_v) if r]
        lower = _lower_bound(c)
        elim_deadline = clock.t0 + options.cpu_s * (options.construct_share + options.eliminate_share)
        if len(served) == n:
            failures: set[tuple[int, ...]] = set()
            while len(used) > lower and time.process_time() < elim_deadline:
                order = sorted(range(len(used)), key=lambda k: (len(used[k][1]), k))
                progressed = False
                for k in order:
                    key = tuple(sorted(used[k][1]))
                    if key in failures:
                        continue
                    if time.process_time() >= elim_deadline:
                        break
                    rest = [u for j, u in enumerate(used) if j != k]
                    m = _build(c, [r for r, _ in rest], lambda v: big)
                    left = elim_deadline - time.process_time()
                    slice_s = max(0.2, min(left, options.cpu_s * 0.15))
                    res = _run(
                        m,
                        _params(clock, slice_s, first=False),
                        time.process_time() + slice_s,
                        [r for _, r in rest],
                        stop_below_cost=big,
                    )
                    if res is not None:
                        rr = _routes(m, res)
                        got = sum(len(r) for r in rr)
                        _report(options, clock, "eliminate", rr, n - got, res.ObjectiveValue())
                        if got == n:
                            used = [(m.rep_ids[v], r) for v, r in enumerate(rr) if r]
                            progressed = True
                            break
                    failures.add(key)
                if not progressed:
                    break
        # 3. improve travel on the final rep count (every visit mandatory when all fit).
        all_served = sum(len(r) for _, r in used) == n
        m = _build(c, [r for r, _ in used], (lambda v: None) if all_served else _penalty_fn(c, True))
        res = _run(m, _params(clock, clock.left(), first=False), clock.t0 + options.cpu_s, [r for _, r in used])
        if res is None:
            raise SolverError("lost the solution while improving travel")
        model, a = m, res
    else:
        pass
    plan = _to_plan(c, model, a, clock)
    _report(options, clock, "done", [list(r.visit_ids) for r in plan.routes], len(plan.dropped), a.ObjectiveValue())
    return plan


def _lower_bound(c: _Compiled) -> int:
    caps = [r.capacity for r in c.reps if r.capacity is not None]
    if not caps or len(caps) < len(c.reps) or max(caps) <= 0:
        return 1
    return max(1, math.ceil(sum(c.demand) / max(caps)))


def _empty_route(rep: Rep) -> Route:
    return Route(rep.id, rep.shift.start_s, rep.shift.start_s, (), 0.0, 0.0)


def _to_plan(c: _Compiled, model: _Model, a: pywrapcp.Assignment, clock: _CpuClock) -> Plan:
    s = float(c.scale)
    routing, manager, time_dim = model.routing, model.manager, model.time_dim
    routes_by_rep: dict[int, Route] = {}
    served: set[int] = set()
    for v in range(routing.vehicles()):
        rep = c.reps[model.rep_ids[v]]
        brk: BreakSlot | None = None
        if v in model.breaks and a.Contains(model.breaks[v]):
            bv = model.breaks[v]
            if a.PerformedValue(bv):
                brk = BreakSlot(a.StartValue(bv) / s, a.EndValue(bv) / s)
        index = routing.Start(v)
        start_t = a.Value(time_dim.CumulVar(index)) / s
        prev_node = manager.IndexToNode(index)
        prev_end = start_t
        stops: list[Stop] = []
        nodes: list[int] = []
        while True:
            index = a.Value(routing.NextVar(index))
            node = manager.IndexToNode(index)
            at_t = a.Value(time_dim.CumulVar(index)) / s
            travel = float(c.duration_s[prev_node, node])
            dist = float(c.distance_m[prev_node, node])
            arrival = prev_end + travel
            if brk is not None and brk.start_s >= prev_end - 1e-6 and brk.end_s <= at_t + 1e-6:
                arrival += brk.end_s - brk.start_s  # the break is taken on this leg
            if routing.IsEnd(index):
                if stops:
                    route = Route(rep.id, start_t, max(at_t, arrival), tuple(stops), travel, dist, brk)
                else:
                    route = Route(rep.id, start_t, start_t, (), 0.0, 0.0, None)
                routes_by_rep[model.rep_ids[v]] = _with_slack(route, rep, c, nodes)
                break
            visit = c.visits[node]
            served.add(node)
            nodes.append(node)
            stops.append(
                Stop(
                    visit_id=visit.id,
                    location_id=visit.location_id,
                    arrival_s=arrival,
                    service_start_s=at_t,
                    service_end_s=at_t + visit.service_s,
                    wait_s=max(0.0, at_t - arrival),
                    slack_s=0.0,
                    travel_s=travel,
                    distance_m=dist,
                )
            )
            prev_end = at_t + visit.service_s
            prev_node = node
    routes = tuple(routes_by_rep.get(i, _empty_route(r)) for i, r in enumerate(c.reps))
    dropped = tuple(
        Dropped(v.id, DropReason.NOT_ENOUGH_TIME, f"visit {v.id} does not fit any rep's day with the other visits")
        for node, v in enumerate(c.visits)
        if node not in served
    )
    return Plan(routes=routes, dropped=dropped, stats={"cpu_s": clock.used(), "objective": float(a.ObjectiveValue())})


def _with_slack(route: Route, rep: Rep, c: _Compiled, nodes: list[int]) -> Route:
    """Slack per stop: how much later its service could start, keeping the rest of the route feasible."""
    if not route.stops:
        return route
    latest_next = rep.shift.end_s - route.end_travel_s
    brk = route.lunch_break
    out: list[Stop] = []
    for k in range(len(route.stops) - 1, -1, -1):
        stop, visit = route.stops[k], c.visits[nodes[k]]
        latest = latest_next - visit.service_s
        if brk is not None and brk.start_s >= stop.service_end_s - 1e-6:
            latest -= brk.end_s - brk.start_s
            brk = None
        if visit.time_windows:
            ends = [w.end_s for w in visit.time_windows if w.start_s <= stop.service_start_s + 1e-6]
            latest = min(latest, max(ends) if ends else stop.service_start_s)
        latest = max(latest, stop.service_start_s)
        out.append(
            Stop(
                stop.visit_id, stop.location_id, stop.arrival_s, stop.service_start_s, stop.service_end_s,
                stop.wait_s, latest - stop.service_start_s, stop.travel_s, stop.distance_m,
            )
        )
        latest_next = latest - stop.travel_s
    out.reverse()
    return Route(route.rep_id, route.start_s, route.end_s, tuple(out), route.end_travel_s, route.end_distance_m, route.lunch_break)
