"""The solver: PyVRP where it can express the problem, OR-Tools (the only module that
imports ortools) for the rest.

With `SolverOptions.engine == "pyvrp"` (the default) every problem that
`routing.pyvrp_search.supports` accepts is planned by PyVRP's iterated local search on the
whole budget (above 1,500 visits: sectors of about 1,000 planned on their own, then the
joined plan improved by parts, `pyvrp_search.improve`); OR-Tools plans visits with
several time windows, days whose lunch breaks fit nowhere in PyVRP's routes, and plans
where PyVRP left an urgent visit out. The rest of this docstring is the OR-Tools search.

A Problem plus location Matrices compile into an OR-Tools routing model: time
dimension (travel + service, registered as a transit *matrix*), time windows,
shifts, breaks, maximum working time, capacity, skills (allowed vehicles), and
visits droppable at a penalty by priority (urgent visits are not droppable).

The search runs under a CPU-time budget (`time.process_time`): a custom search
limit stops OR-Tools when the process has used its CPU budget (OR-Tools' own time
limit is wall-clock, which on a shared machine measures the neighbours).

With `minimise_reps`, the objective is hierarchical: reps first, then travel.
1. construct: parallel cheapest insertion, then a short guided local search;
2. eliminate routes: among the smallest routes, the one whose visits re-insert most
   cheaply elsewhere is removed; its visits are inserted allowing lateness
   (routing.insertion), and guided local search with *soft* time windows and shift
   ends (lateness at a cost) squeezes the lateness out, warm-started from those
   routes; it stops as soon as nothing is late. If no attempt reaches zero, the
   least-late one is squeezed again, alternating a higher lateness cost with a
   ruin-and-recreate perturbation, until its share of the budget is used; repeat
   down to the demand lower bound;
3. one rep fewer by iterated local search (SISR ruin and recreate, simulated-annealing
   acceptance): the ILS starts from the plan without its smallest route, whose visits
   are optional at a cost above any detour, and stops at the first plan that serves
   them all; repeated while it succeeds and time is left beyond the travel share;
4. travel: the same ILS on the final reps, from the best plan, with a fixed cost per
   rep; then a last guided local search reads the plan back in with every visit
   mandatory.
Above `ils_max_visits` visits the ILS re-runs local search over the whole plan after
each ruin-and-recreate step, which at 1,000 visits leaves too few steps: the visits are
swept by angle around the reps' homes into sectors of about 200, each sector is planned
as above with its share of the reps and of the budget, and a guided local search over
the joined plan polishes the seams (1,000 customers at 60 CPU-s, r1_10_1: +12.7%
distance, 109 reps, against +29% and 104 reps for elimination + guided local search on
the whole). Without `minimise_reps` (the API default) the plan is constructed and then
improved by the same travel ILS, visits droppable by priority.

With a seed (`SolverOptions.seed`) the budget is priced in search work (limit checks,
ILS iterations) at fixed rates, so the same seed and budget give the same plan; the CPU
budget is then only a hard cap. The ILS's annealing cools with its iteration count
instead of the wall clock, so a busy machine does not shorten it.

OR-Tools' ILS loop honours neither custom search limits nor a callback's request to
stop, and its own limit is wall-clock: each ILS runs in a forkserver worker process
that reports every new best plan over a pipe and exits from its solution callback
when its CPU budget is spent (or at the first complete plan in step 3). Its
wall-clock limit equals that budget, since it also drives the annealing schedule: on
a busy machine the worker gets less CPU than its budget, never more. The ILS cannot
start from an assignment, so a warm start is a first-solution evaluator that makes
only the given arcs cheap, which rebuilds exactly the given routes.
"""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from ortools.constraint_solver import pywrapcp, routing_enums_pb2, routing_ils_pb2
from ortools.util import optional_boolean_pb2

from routing import pyvrp_search
from routing.compiled import Compiled, compile_problem, lower_bound
from routing.insertion import SQUEEZE_ALPHA, insert_all, node_windows, perturb, route_cost
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
ELIMINATE_TRIES = 2  # routes tried per elimination target before squeezing the best attempt
ELIMINATE_SLICE_SHARE = 0.15  # of the CPU budget per squeeze
ELIMINATE_CANDIDATES = 5  # smallest routes considered for removal
# of the budget left after the last ILS, to read its plan back in (the ILS used to take
# it all, and the read-back then ran past the budget)
READ_BACK_SHARE = 0.02
# CPU-s kept after PyVRP's search to write the plan out (times, slack)
PLAN_OUT_S = 0.02
# of the budget kept from PyVRP when reps have lunch breaks: OR-Tools plans the day with it
# if a break fits nowhere in PyVRP's routes
BREAK_FALLBACK_SHARE = 0.25
# visits a PyVRP route may leave out so that its lunch break fits (else OR-Tools re-plans)
BREAK_REPAIR_DROPS = 2


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
    construct_share: float = 0.1
    eliminate_share: float = 0.15
    travel_share: float = 0.4  # kept for the last ILS (travel on the final rep count)
    # Above this many visits the ILS's local search after each ruin-and-recreate step
    # costs too much: elimination gets `eliminate_share_large` and guided local search
    # the rest (1,000 customers in 60 CPU-s: ILS +39% distance, GLS +29%, same reps).
    ils_max_visits: int = 600
    eliminate_share_large: float = 0.65
    # A seed makes the plan reproducible: every phase stops after an amount of search
    # *work* (search-limit checks, ILS iterations) that the CPU budget buys at a fixed
    # rate, instead of at a CPU time; the CPU budget stays a hard cap.
    seed: int | None = None
    # Plans without minimise_reps: construct, then the travel ILS from that plan with the
    # visits droppable by priority (False: guided local search for the whole budget).
    travel_ils: bool = True
    # Fewest reps above ils_max_visits: sweep the visits by angle around the reps' homes
    # into sectors of about `sector_visits`, plan each sector with its share of the reps
    # and of the budget (the <=600-visit search), then polish the whole plan by guided
    # local search for `polish_share` of the budget.
    decompose: bool = True
    sector_visits: int = 200
    polish_share: float = 0.15
    # "pyvrp": PyVRP's iterated local search plans every problem it can express
    # (routing.pyvrp_search.supports), OR-Tools the rest; "ortools": OR-Tools only.
    engine: str = "pyvrp"
    # PyVRP above this many visits: sectors of about `pyvrp_sector_visits` (a 5,000-visit
    # search's first local search alone takes minutes), joined as they are
    pyvrp_max_visits: int = 1500
    pyvrp_sector_visits: int = 1000
    # ... then the joined plan improved by parts (pyvrp_search.improve) for this share
    pyvrp_polish_share: float = 0.4
    progress: Callable[[Progress], None] | None = field(default=None, compare=False)


# Work bought by one CPU-second in reproducible mode: measured on this 2-core machine
# under load (GLS about 220k-300k checks/s; the ILS on 100-200 visits about 50
# iterations per second over a 4 s run, but 200-customer runs at 40 hit the CPU cap),
# rounded down so that the work usually ends before the cap: the same plan every run.
GLS_CHECKS_PER_S = 150_000
ILS_SOLUTIONS_PER_S = 32.0


class _CpuClock:
    """The budget: CPU time of this process plus that of the ILS workers it waited for.

    Reproducible mode (a seed): phases are charged the work they did at the fixed rates
    above (`virtual_s`), so every decision taken on `used()`/`left()` is the same on every
    run; the real CPU time (`real_used`) is only a hard cap (`capped` records if it bit).
    """

    def __init__(self, budget_s: float, reproducible: bool = False) -> None:
        self.t0 = time.process_time()
        self.budget_s = budget_s
        self.workers_s = 0.0
        self.reproducible = reproducible
        self.virtual_s = 0.0
        self.capped = False

    def real_used(self) -> float:
        return time.process_time() - self.t0 + self.workers_s

    def used(self) -> float:
        return self.virtual_s if self.reproducible else self.real_used()

    def left(self) -> float:
        return self.budget_s - self.used()

    def real_left(self) -> float:
        return self.budget_s - self.real_used()

    def cap(self) -> float:
        """The process_time() at which the real budget is spent (workers' time included)."""
        return time.process_time() + self.real_left()


@dataclass
class _Model:
    manager: pywrapcp.RoutingIndexManager
    routing: pywrapcp.RoutingModel
    time_dim: pywrapcp.RoutingDimension
    rep_ids: list[int]  # model vehicle -> index into compiled.reps
    breaks: dict[int, pywrapcp.IntervalVar]
    soft_bounds: list[tuple[int, int]] = field(default_factory=list)  # (index, soft upper bound)

    def soft_cost(self, cost_t: list[list[int]]) -> int:
        """Objective minus arc costs at a solution callback: the lateness penalty paid."""
        routing = self.routing
        arcs = 0
        for v in range(routing.vehicles()):
            index = routing.Start(v)
            while not routing.IsEnd(index):
                nxt = routing.NextVar(index).Value()
                # the model's own arc cost (re-plans add a stability cost per vehicle)
                arcs += routing.GetArcCostForVehicle(index, nxt, v)
                index = nxt
        return int(routing.CostVar().Value()) - arcs


def _build(
    c: Compiled,
    rep_ids: list[int],
    penalty: Callable[[Visit], int | None],
    vehicle_fixed_cost: int = 0,
    soft_late_coeff: int | None = None,
) -> _Model:
    """The OR-Tools model for the given reps.

    With `soft_late_coeff`, time windows' ends and shift ends become soft: lateness
    costs that much per solver time unit (the squeeze phase of route elimination).
    """
    reps = [c.reps[i] for i in rep_ids]
    loc_index = c.problem.location_index()
    starts = [c.depot_node[loc_index[r.start_location_id]] for r in reps]
    ends = [c.depot_node[loc_index[r.end_location_id]] for r in reps]
    manager = pywrapcp.RoutingIndexManager(len(c.node_loc), len(reps), starts, ends)
    routing = pywrapcp.RoutingModel(manager)
    sticky = [v.previous_rep_id for v in c.visits]
    if any(r is not None for r in sticky):
        # Re-plan stability: arriving at a visit with another rep than the running plan's
        # costs one average leg more, so a visit moves only when that saves more travel.
        stick = _stability_cost(c)
        for v, rep in enumerate(reps):
            extra = [stick if r is not None and r != rep.id else 0 for r in sticky]
            extra += [0] * (len(c.node_loc) - len(extra))
            matrix = [[a + extra[j] for j, a in enumerate(row)] for row in c.cost_t]
            routing.SetArcCostEvaluatorOfVehicle(routing.RegisterTransitMatrix(matrix), v)
    else:
        routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitMatrix(c.cost_t))
    if vehicle_fixed_cost:
        routing.SetFixedCostOfAllVehicles(vehicle_fixed_cost)
    time_cb = routing.RegisterTransitMatrix(c.time_t)
    late_t = c.horizon_t * 4 if soft_late_coeff else c.horizon_t
    routing.AddDimension(time_cb, late_t, late_t, False, "time")
    time_dim = routing.GetDimensionOrDie("time")
    soft: list[tuple[int, int]] = []
    s = c.scale
    for v, rep in enumerate(reps):
        lo, hi = math.ceil(rep.shift.start_s * s), math.floor(rep.shift.end_s * s)
        time_dim.CumulVar(routing.Start(v)).SetRange(lo, hi)
        if soft_late_coeff:
            time_dim.CumulVar(routing.End(v)).SetRange(lo, late_t)
            time_dim.SetCumulVarSoftUpperBound(routing.End(v), hi, soft_late_coeff)
            soft.append((routing.End(v), hi))
        else:
            time_dim.CumulVar(routing.End(v)).SetRange(lo, hi)
        if rep.max_working_s is not None:
            time_dim.SetSpanUpperBoundForVehicle(math.floor(rep.max_working_s * s), v)
        # No finalizer maximising the start: with a lunch break its search goes value by
        # value (seconds for a four-visit day, and the construction ran out of time).
        # _to_plan moves the departure as late as the first visit allows instead.
    if any(r.capacity is not None for r in reps) and any(c.demand):
        total = sum(c.demand)
        demand_cb = routing.RegisterUnaryTransitVector(c.demand)
        routing.AddDimensionWithVehicleCapacity(
            demand_cb,
            0,
            [r.capacity if r.capacity is not None else total for r in reps],
            True,
            "load",
        )
    for node, visit in enumerate(c.visits):
        index = manager.NodeToIndex(node)
        cumul = time_dim.CumulVar(index)
        if visit.time_windows:
            wins = sorted(visit.time_windows, key=lambda w: w.start_s)
            last_t = math.floor(max(w.end_s for w in wins) * s)
            cumul.SetRange(math.ceil(wins[0].start_s * s), late_t if soft_late_coeff else last_t)
            if soft_late_coeff:
                time_dim.SetCumulVarSoftUpperBound(index, last_t, soft_late_coeff)
                soft.append((index, last_t))
            for a, b in itertools.pairwise(wins):
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
                # (SetAllowedVehiclesForIndex rejects Python lists in this binding.)
                routing.VehicleVar(index).SetValues([-1, *allowed])
            else:
                routing.VehicleVar(index).SetValues([-1])
        p = penalty(visit)
        if p is not None:
            routing.AddDisjunction([index], p)
    # The homes of reps not in this model are nodes too: never visited (a model for some
    # of the reps would otherwise route through the others' homes as if they were visits).
    for node in set(c.depot_node.values()) - set(starts) - set(ends):
        index = manager.NodeToIndex(node)
        routing.AddDisjunction([index], 0)
        routing.ActiveVar(index).SetValue(0)
    breaks: dict[int, pywrapcp.IntervalVar] = {}
    solver = routing.solver()
    node_visit_transit = [0] * routing.Size()
    for index in range(routing.Size()):
        node_visit_transit[index] = c.service_t[manager.IndexToNode(index)]
    for v, rep in enumerate(reps):
        if rep.lunch_break is None:
            continue
        lunch = rep.lunch_break
        dur = math.ceil(lunch.duration_s * s)
        lo, hi = math.ceil(lunch.window.start_s * s), math.floor(lunch.window.end_s * s) - dur
        interval = solver.FixedDurationIntervalVar(lo, max(lo, hi), dur, False, f"break {rep.id}")
        time_dim.SetBreakIntervalsOfVehicle([interval], v, node_visit_transit)
        routing.AddIntervalToAssignment(interval)
        # A lunch break is part of the working day, not before it starts or after it ends.
        solver.Add(interval.StartExpr() >= time_dim.CumulVar(routing.Start(v)))
        solver.Add(interval.EndExpr() <= time_dim.CumulVar(routing.End(v)))
        breaks[v] = interval
    return _Model(manager, routing, time_dim, rep_ids, breaks, soft)


def _params(
    clock: _CpuClock, slice_s: float, first: bool, metaheuristic: str = "GUIDED_LOCAL_SEARCH"
) -> pywrapcp.DefaultRoutingSearchParameters:
    params = pywrapcp.DefaultRoutingSearchParameters()
    if first:
        params.first_solution_strategy = (
            routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
        )
    params.local_search_metaheuristic = getattr(
        routing_enums_pb2.LocalSearchMetaheuristic, metaheuristic
    )
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
    clock: _CpuClock,
    slice_s: float,
    initial: list[list[int]] | None,
    stop_when_all_served: int | None = None,
    stop_when_on_time: list[list[int]] | None = None,
    must_find: bool = False,
    min_s: float = 0.0,
) -> pywrapcp.Assignment | None:
    """Solve for `slice_s` of the budget (or until a cost target is met).

    With `must_find`, the slice only counts once a first solution exists (a construction
    cut short leaves everything unassigned): then only the whole budget stops it. `min_s`
    is CPU time it may take beyond the budget (to read a plan back in at the end).
    """
    routing = model.routing
    state = {"hit": False, "found": not must_find}
    checks = [0]
    work_limit = max(1, int(slice_s * GLS_CHECKS_PER_S))
    deadline_cpu = time.process_time() + slice_s
    hard_deadline_cpu = max(clock.cap(), time.process_time() + min_s)
    if clock.reproducible:
        # the solver's own wall-clock limits must not decide anything
        params.time_limit.FromSeconds(int(clock.budget_s * 50) + 60)
        params.lns_time_limit.FromSeconds(int(clock.budget_s * 10) + 10)
    visit_indices = [i for i in range(routing.Size()) if not routing.IsStart(i)]

    def on_solution() -> None:
        state["found"] = True
        if stop_when_all_served is not None:
            served = sum(routing.ActiveVar(i).Value() for i in visit_indices)
            if served >= stop_when_all_served:
                state["hit"] = True
        if stop_when_on_time is not None and model.soft_cost(stop_when_on_time) <= 0:
            state["hit"] = True

    def limiter() -> bool:
        checks[0] += 1
        now = time.process_time()
        if now >= hard_deadline_cpu:
            clock.capped = True
            return True
        if state["hit"]:
            return True
        if not state["found"]:
            return False
        return checks[0] >= work_limit if clock.reproducible else now >= deadline_cpu

    routing.AddAtSolutionCallback(on_solution)
    routing.CloseModelWithParameters(params)
    routing.AddSearchMonitor(routing.solver().CustomLimit(limiter))
    try:
        if initial is None:
            return routing.SolveWithParameters(params)
        start = routing.ReadAssignmentFromRoutes(
            [[model.manager.NodeToIndex(n) for n in r] for r in initial], True
        )
        if start is None:
            return None
        return routing.SolveFromAssignmentWithParameters(start, params) or start
    finally:
        clock.virtual_s += checks[0] / GLS_CHECKS_PER_S


def _ils_params(wall_s: float) -> pywrapcp.DefaultRoutingSearchParameters:
    """Iterated local search: SISR ruin (string removals), cheapest re-insertion, local
    search, simulated-annealing acceptance (Christiaens & Vanden Berghe 2020)."""
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = (
        routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    )
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GREEDY_DESCENT
    params.time_limit.FromMilliseconds(max(1, int(wall_s * 1000)))
    params.use_iterated_local_search = True
    ils = params.iterated_local_search_parameters
    ils.perturbation_strategy = routing_ils_pb2.PerturbationStrategy.RUIN_AND_RECREATE
    rr = ils.ruin_recreate_parameters
    del rr.ruin_strategies[:]
    sisr = rr.ruin_strategies.add().sisr
    # the paper's suggested values: strings of up to 10 visits, 10 removed on average
    sisr.max_removed_sequence_size = 10
    sisr.avg_num_removed_visits = 10
    sisr.bypass_factor = 0.01
    rr.recreate_strategy.heuristic = (
        routing_enums_pb2.FirstSolutionStrategy.LOCAL_CHEAPEST_INSERTION
    )
    ils.improve_perturbed_solution = True
    sa = ils.reference_solution_acceptance_strategy.simulated_annealing
    sa.cooling_schedule_strategy = routing_ils_pb2.CoolingScheduleStrategy.EXPONENTIAL
    sa.automatic_temperatures = True
    ils.best_solution_acceptance_strategy.greedy_descent.SetInParent()
    return params


_WORKERS = multiprocessing.get_context("forkserver")
_WORKERS.set_forkserver_preload(["routing.solver"])


@dataclass(frozen=True)
class _IlsJob:
    compiled: Compiled
    rep_ids: list[int]
    cpu_s: float
    rep_cost: int  # fixed cost per rep used (0: any number of the given reps)
    stop_when_served: bool  # stop at the first plan that serves every visit
    start: list[list[int]] | None  # routes per rep to start from (visits left out: unserved)
    solution_limit: int = 0  # reproducible mode: stop after this many solutions (0: by CPU)
    cpu_cap_s: float = 0.0  # reproducible mode: CPU time it may take at most
    by_priority: bool = False  # visits droppable by priority (urgent ones not) as in _build


def _ils_search(
    job: _IlsJob,
    emit: Callable[[tuple[Any, ...]], None],
    finish: Callable[[int, bool], None],
    wall_s: float,
) -> None:
    """ILS, emitting ("best", served, arc cost, routes, cpu, solutions) for each new best
    plan and calling `finish(solutions, capped)` once the budget is spent (or at the first
    complete plan if asked); `capped`: the CPU cap stopped a reproducible search."""
    t0 = time.process_time()
    c = job.compiled
    m = _build(
        c,
        job.rep_ids,
        _penalty_fn(c, False) if job.by_priority else (lambda v: _big_penalty(c) * 4),
        vehicle_fixed_cost=job.rep_cost,
    )
    routing = m.routing
    params = _ils_params(wall_s)
    cpu_limit = job.cpu_s
    if job.solution_limit:
        # The annealing schedule cools with the progress towards the solution limit when
        # the wall-clock limit is far away: the same iterations, the same plan.
        params.solution_limit = job.solution_limit
        params.time_limit.FromSeconds(int(job.cpu_cap_s * 50) + 60)
        params.lns_time_limit.FromSeconds(int(job.cpu_cap_s * 10) + 10)
        cpu_limit = job.cpu_cap_s
    solutions = [0]
    if job.start is not None:
        # The ILS cannot start from an assignment; a first-solution evaluator that makes
        # only the given arcs cheap rebuilds exactly these routes (path-cheapest-arc).
        follow: dict[int, int] = {}
        for v, nodes in enumerate(job.start):
            path = [routing.Start(v), *(m.manager.NodeToIndex(x) for x in nodes), routing.End(v)]
            follow.update(itertools.pairwise(path))
        routing.SetFirstSolutionEvaluator(lambda i, j: 0 if follow.get(i) == j else 1 << 40)
        params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.EVALUATOR_STRATEGY
    n = len(c.visits)
    best: list[int] = []

    def on_solution() -> None:
        solutions[0] += 1
        obj = int(routing.CostVar().Value())
        if not best or obj < best[0]:
            best[:] = [obj]
            routes = []
            for v in range(routing.vehicles()):
                nodes, index = [], routing.NextVar(routing.Start(v)).Value()
                while not routing.IsEnd(index):
                    nodes.append(m.manager.IndexToNode(index))
                    index = routing.NextVar(index).Value()
                routes.append((m.rep_ids[v], nodes))
            served = sum(len(r) for _, r in routes) == n
            emit(
                (
                    "best",
                    served,
                    _arc_cost(c, routes),
                    routes,
                    time.process_time() - t0,
                    solutions[0],
                )
            )
            if served and job.stop_when_served:
                finish(solutions[0], False)
        if time.process_time() - t0 >= cpu_limit:
            finish(solutions[0], bool(job.solution_limit))

    routing.AddAtSolutionCallback(on_solution)
    routing.CloseModelWithParameters(params)
    routing.SolveWithIteratedLocalSearch(params)
    finish(solutions[0], False)


def _ils_worker(conn: Connection, job: _IlsJob) -> None:
    """The ILS in a process of its own: OR-Tools' ILS loop can be stopped neither by a
    search limit nor by a callback, and its own limit is wall-clock; a worker that exits
    from the solution callback gets a CPU-time budget and an early stop."""
    t0 = time.process_time()

    def finish(solutions: int, capped: bool) -> None:
        conn.send(("end", time.process_time() - t0, solutions, capped))
        conn.close()
        os._exit(0)

    # The wall-clock limit also sets the annealing schedule (it cools with the progress
    # towards it), so it is the CPU budget: on a busy machine the search gets less CPU.
    # (In reproducible mode the solution limit sets both.)
    _ils_search(job, conn.send, finish, wall_s=job.cpu_s * 1.02 + 0.05)


def _ils(
    c: Compiled,
    rep_ids: list[int],
    cpu_s: float,
    clock: _CpuClock,
    rep_cost: int = 0,
    stop_when_served: bool = False,
    start: list[list[int]] | None = None,
    by_priority: bool = False,
) -> tuple[bool, int, list[tuple[int, list[int]]]]:
    """ILS with these reps (from `start`, one route per rep, if given), in a worker
    process; visits droppable at a cost above any detour. Returns the best plan found:
    (every visit served, arc cost, routes)."""
    solution_limit = max(1, int(cpu_s * ILS_SOLUTIONS_PER_S)) if clock.reproducible else 0
    job = _IlsJob(
        c,
        rep_ids,
        cpu_s,
        rep_cost,
        stop_when_served,
        start,
        solution_limit,
        max(0.05, clock.real_left() - clock.budget_s * READ_BACK_SHARE),
        by_priority,
    )
    result: tuple[bool, int, list[tuple[int, list[int]]]] = (False, 2**62, [])
    receiver, sender = _WORKERS.Pipe(duplex=False)
    worker = _WORKERS.Process(target=_ils_worker, args=(sender, job), daemon=True)
    try:
        worker.start()
    except (AssertionError, OSError) as e:  # e.g. inside a daemonic process: no children
        log.info("ILS in this process, bounded by wall-clock time: %s", e)
        found: list[tuple[Any, ...]] = []
        ended: list[int] = []

        def done(solutions: int, capped: bool) -> None:
            ended.append(solutions)

        _ils_search(job, found.append, done, wall_s=max(0.01, cpu_s))
        clock.virtual_s += (ended[0] if ended else 0) / ILS_SOLUTIONS_PER_S
        return (found[-1][1], found[-1][2], found[-1][3]) if found else result
    finally:
        sender.close()
    worker_cpu = 0.0
    solutions = solution_limit
    give_up = time.monotonic() + cpu_s * 10 + 30  # a worker that hangs is not waited for
    try:
        while receiver.poll(max(0.0, give_up - time.monotonic())):
            msg = receiver.recv()
            if msg[0] == "best":
                result, worker_cpu, solutions = (msg[1], msg[2], msg[3]), msg[4], msg[5]
            else:
                worker_cpu, solutions = msg[1], msg[2]
                clock.capped = clock.capped or msg[3]
                break
    except EOFError:
        pass
    finally:
        receiver.close()
        worker.join(timeout=5)
        if worker.is_alive():
            worker.kill()
            worker.join()
    clock.workers_s += worker_cpu
    clock.virtual_s += solutions / ILS_SOLUTIONS_PER_S
    return result


def _arc_cost(c: Compiled, routes: Sequence[tuple[int, Sequence[int]]]) -> int:
    loc_index = c.problem.location_index()
    total = 0
    for r, nodes in routes:
        if not nodes:
            continue
        rep = c.reps[r]
        here = c.depot_node[loc_index[rep.start_location_id]]
        for node in nodes:
            total += c.cost_t[here][node]
            here = node
        total += c.cost_t[here][c.depot_node[loc_index[rep.end_location_id]]]
    return total


def _improve(
    c: Compiled,
    used: list[tuple[int, list[int]]],
    lower: int,
    clock: _CpuClock,
    options: SolverOptions,
) -> list[tuple[int, list[int]]]:
    """After route elimination: ILS without the route with the fewest visits, as long as
    it re-inserts them all (keeping `travel_share` of the budget), then ILS for travel on
    the fewest reps that served everything, both starting from the best plan so far."""
    best = [(r, nodes) for r, nodes in used if nodes]
    best_cost = _arc_cost(c, best)
    reserve = options.cpu_s * options.travel_share
    while len(best) > lower and clock.left() - reserve > 0.2:
        # without the route with the fewest visits: ILS re-inserts them if it can
        kept = sorted(best, key=lambda x: (-len(x[1]), x[0]))[:-1]
        ok, cost, routes = _ils(
            c,
            [r for r, _ in kept],
            clock.left() - reserve,
            clock,
            stop_when_served=True,
            start=[nodes for _, nodes in kept],
        )
        _report(options, clock, "fewer", [r for _, r in routes], 0 if ok else 1, cost / c.scale)
        if not ok:
            break
        best, best_cost = [(r, n) for r, n in routes if n], cost
    if clock.left() - options.cpu_s * READ_BACK_SHARE > 0.1:
        # a fixed cost per rep: a plan on even fewer reps is taken if ILS finds one
        ok, cost, routes = _ils(
            c,
            [r for r, _ in best],
            clock.left() - options.cpu_s * READ_BACK_SHARE,
            clock,
            rep_cost=_big_penalty(c),
            start=[nodes for _, nodes in best],
        )
        routes = [(r, n) for r, n in routes if n]
        _report(options, clock, "travel", [r for _, r in routes], 0 if ok else 1, cost / c.scale)
        if ok and (len(routes), cost) < (len(best), best_cost):
            best = routes
    return best


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


def _penalty_fn(c: Compiled, minimise_reps: bool) -> Callable[[Visit], int | None]:
    base = 2 * c.max_arc_t + 1

    def penalty(visit: Visit) -> int | None:
        if visit.urgent:
            return None
        return base * PRIORITY_WEIGHT.get(visit.priority, 16)

    return penalty


def _stability_cost(c: Compiled) -> int:
    """The mean leg between visits: what moving a visit to another rep must save."""
    n = len(c.visits)
    if n < 2:
        return max(1, c.max_arc_t)
    total = sum(sum(row[:n]) for row in c.cost_t[:n])
    return max(1, total // (n * (n - 1)))


def _big_penalty(c: Compiled) -> int:
    """Dropping a visit costs more than any detour to serve it."""
    return 4 * (c.max_arc_t + 1)


def _report(
    options: SolverOptions,
    clock: _CpuClock,
    phase: str,
    routes: Sequence[Sequence[int]],
    dropped: int,
    cost: float,
) -> None:
    if options.progress is not None:
        options.progress(Progress(phase, sum(1 for r in routes if r), dropped, cost, clock.used()))


def solve(
    problem: Problem,
    matrices: Matrices,
    options: SolverOptions | None = None,
    visits: Sequence[Visit] | None = None,
) -> Plan:
    """Plan `visits` (default: all of the problem's) for the problem's reps.

    Input should have been validated (routing.validate.plan does both); visits
    the solver could not serve are returned as dropped with a reason.
    """
    options = options or SolverOptions()
    clock = _CpuClock(options.cpu_s, reproducible=options.seed is not None)
    vs = list(problem.visits if visits is None else visits)
    if not problem.reps or not vs:
        return Plan(
            routes=tuple(_empty_route(r) for r in problem.reps),
            dropped=tuple(Dropped(v.id, DropReason.NO_REP, "no rep available") for v in vs),
        )
    c = compile_problem(problem, matrices, vs, options.scale, options.cost)
    minimise = problem.minimise_reps if options.minimise_reps is None else options.minimise_reps
    all_reps = list(range(len(c.reps)))
    n = len(vs)
    big = _big_penalty(c)

    if (
        options.engine == "pyvrp"
        and options.decompose
        and n > options.pyvrp_max_visits
        and len(c.reps) > 1
        and pyvrp_search.supports(c) is None
    ):
        return _solve_by_sectors(problem, matrices, c, vs, clock, options, minimise)

    if options.engine == "pyvrp":
        why = pyvrp_search.supports(c)
        if why is None:
            plan = _solve_pyvrp(c, clock, options, minimise)
            if plan is not None:
                return plan
        else:
            log.debug("OR-Tools plans this problem: PyVRP cannot express %s", why)

    if (
        minimise
        and options.decompose
        and n > max(options.ils_max_visits, options.sector_visits)
        and len(c.reps) > 1
    ):
        return _solve_by_sectors(problem, matrices, c, vs, clock, options, True)

    # 1. construct
    travel_ils = not minimise and options.travel_ils and n <= options.ils_max_visits
    share = options.construct_share if minimise or travel_ils else 1.0
    model = _build(
        c,
        all_reps,
        _penalty_fn(c, minimise) if not minimise else (lambda v: big * (4 if v.urgent else 1)),
    )
    a = _run(
        model,
        _params(clock, clock.left(), first=True),
        clock,
        max(options.cpu_s * share, min(options.cpu_s, 0.2)),
        None,
        must_find=True,
    )
    fallback = a is None and not minimise and any(v.urgent for v in vs)
    if fallback:
        # Some urgent visit cannot be served at all: plan with urgent visits droppable at
        # a very high penalty, so the others are still served and the rest is reported.
        log.warning("urgent visits do not all fit; planning with urgent visits droppable")
        base = 2 * c.max_arc_t + 1
        model = _build(
            c,
            all_reps,
            lambda v: base * (URGENT_WEIGHT if v.urgent else PRIORITY_WEIGHT.get(v.priority, 16)),
        )
        a = _run(model, _params(clock, clock.left(), first=True), clock, clock.left(), None)
    if a is None:
        raise SolverError("no initial solution found within the CPU budget")
    best_routes_v = _routes(model, a)
    best_reps = [all_reps[v] for v in range(len(all_reps))]
    if travel_ils and not fallback and clock.left() > 0.1:
        a_ils, m_ils = _travel_ils(c, all_reps, best_routes_v, clock, options)
        if a_ils is not None and a_ils.ObjectiveValue() <= a.ObjectiveValue():
            model, a = m_ils, a_ils
            best_routes_v = _routes(model, a)
    served = {x for r in best_routes_v for x in r}
    _report(options, clock, "construct", best_routes_v, n - len(served), a.ObjectiveValue())

    if minimise:
        # 2. route elimination: keep only used reps; try with one fewer.
        used = [(best_reps[v], r) for v, r in enumerate(best_routes_v) if r]
        lower = lower_bound(c)
        use_ils = n <= options.ils_max_visits
        elim_deadline = options.cpu_s * (
            options.construct_share
            + (options.eliminate_share if use_ils else options.eliminate_share_large)
        )
        if len(served) == n and used:
            used = _eliminate(c, used, lower, elim_deadline, clock, options)
            # 3. ILS: one rep fewer, then travel on the final rep count.
            if use_ils:
                used = _improve(c, used, lower, clock, options)
            m = _build(c, [r for r, _ in used], lambda v: None)
            initial = [r for _, r in used]
        else:
            # Not everything fits even with every rep: keep them all, drop by priority.
            m = _build(c, all_reps, _penalty_fn(c, True))
            initial = best_routes_v
        # (the ILS may have used the whole budget: the hard deadline lets this read the
        # routes back in and stop at once)
        res = _run(
            m,
            _params(clock, clock.left(), first=False),
            clock,
            clock.left(),
            initial,
            must_find=True,
            min_s=0.1,
        )
        if res is None:
            raise SolverError("lost the solution while improving travel")
        model, a = m, res
    plan = _to_plan(c, model, a, clock)
    _report(
        options,
        clock,
        "done",
        [[1] * len(r.stops) for r in plan.routes],
        len(plan.dropped),
        a.ObjectiveValue(),
    )
    return plan


def _solve_pyvrp(
    c: Compiled, clock: _CpuClock, options: SolverOptions, minimise: bool
) -> Plan | None:
    """PyVRP's search on the whole budget; None if it left an urgent visit unserved (the
    OR-Tools path then reports what cannot be served, with the rest of the budget)."""
    penalty = _penalty_fn(c, minimise)
    if minimise:
        prize: list[int | None] = [None] * len(c.visits)
    else:
        prize = [penalty(v) for v in c.visits]
    # with lunch breaks, keep a share for OR-Tools in case a break fits nowhere
    reserve = options.cpu_s * BREAK_FALLBACK_SHARE if any(r.lunch_break for r in c.reps) else 0.0
    res = pyvrp_search.search(
        c,
        max(0.05, clock.left() - PLAN_OUT_S - reserve),
        minimise_reps=minimise,
        prize=prize,
        seed=options.seed,
    )
    if clock.reproducible:
        clock.virtual_s += clock.left() - PLAN_OUT_S - reserve
        clock.capped = clock.capped or res.capped
    _report(options, clock, "pyvrp", [r for _, r in res.routes], 0, 0.0)
    if not res.feasible:
        log.info("PyVRP found no plan serving every required visit; OR-Tools plans it")
        return None
    plan = _plan_from_routes(c, res.routes, clock)
    if plan is None:
        log.info("a lunch break fits nowhere in PyVRP's routes; OR-Tools plans the day")
    return plan


def _plan_from_routes(
    c: Compiled, routes: Sequence[tuple[int, Sequence[int]]], clock: _CpuClock
) -> Plan | None:
    """The plan of the routes, each visit at the earliest service start its window allows
    (floating-point times; the integer plan, with travel rounded up, was on time, so this
    one is too). A lunch break goes where it keeps every visit on time (taken at the last
    place left, as the checker reads it); None if it fits nowhere on some route."""
    by_rep = {r: list(nodes) for r, nodes in routes if nodes}
    out: list[Route] = []
    served: set[int] = set()
    for r, rep in enumerate(c.reps):
        nodes = by_rep.get(r)
        if not nodes:
            out.append(_empty_route(rep))
            continue
        route = _with_break(c, rep, nodes)
        for _ in range(BREAK_REPAIR_DROPS):
            if route is not None:
                break
            # the break fits nowhere: leave out the lowest-priority visit whose absence
            # lets it fit (reported dropped), rather than re-plan the whole day
            fits = [
                (c.visits[x].priority, k)
                for k, x in enumerate(nodes)
                if not c.visits[x].urgent
                and (len(nodes) == 1 or _with_break(c, rep, nodes[:k] + nodes[k + 1 :]))
            ]
            if not fits:
                break
            k = min(fits)[1]
            nodes = nodes[:k] + nodes[k + 1 :]
            route = _with_break(c, rep, nodes) if nodes else _empty_route(rep)
        if route is None:
            return None
        if not nodes:
            out.append(route)
            continue
        served.update(nodes)
        out.append(_with_slack(route, rep, c, nodes))
    return Plan(
        routes=tuple(out),
        dropped=_dropped(c, served),
        stats={
            "cpu_s": clock.real_used(),
            "worker_cpu_s": clock.workers_s,
            "reproducible": float(clock.reproducible and not clock.capped),
            "objective": float(sum(r.distance_m for r in out)),
            "engine_pyvrp": 1.0,
        },
    )


def _with_break(c: Compiled, rep: Rep, nodes: Sequence[int]) -> Route | None:
    """The route's earliest schedule, its lunch break at the first place it fits."""
    if rep.lunch_break is None:
        return _schedule(c, rep, nodes, None)
    options = (_schedule(c, rep, nodes, k) for k in range(len(nodes) + 1))
    return next((x for x in options if x is not None), None)


def _schedule(c: Compiled, rep: Rep, nodes: Sequence[int], break_at: int | None) -> Route | None:
    """Earliest times of a route; with `break_at` k the lunch break is taken before leaving
    stop k-1 (0: before leaving home). None if a visit, the break, the shift end or the
    working time is missed."""
    eps = 1e-6
    loc_index = c.problem.location_index()
    home = c.depot_node[loc_index[rep.start_location_id]]
    end = c.depot_node[loc_index[rep.end_location_id]]
    first = c.visits[nodes[0]]
    first_open = min((w.start_s for w in first.time_windows), default=rep.shift.start_s)
    # leave as late as the first visit allows (no waiting there), unless the break is first
    start_t = rep.shift.start_s
    if break_at != 0:
        start_t = max(start_t, first_open - float(c.duration_s[home, nodes[0]]))
    t, prev = start_t, home
    brk: BreakSlot | None = None
    stops: list[Stop] = []
    for k, node in enumerate([*nodes, None]):
        if break_at == k and rep.lunch_break is not None:
            lunch = rep.lunch_break
            b0 = max(t, lunch.window.start_s)
            if b0 + lunch.duration_s > lunch.window.end_s + eps:
                return None
            brk = BreakSlot(b0, b0 + lunch.duration_s)
            t = brk.end_s
        to = end if node is None else node
        travel = float(c.duration_s[prev, to])
        arrival = t + travel
        if node is None:
            if arrival > rep.shift.end_s + eps:
                return None
            if rep.max_working_s is not None and arrival - start_t > rep.max_working_s + eps:
                return None
            return Route(
                rep.id, start_t, arrival, tuple(stops), travel, float(c.distance_m[prev, to]), brk
            )
        visit = c.visits[node]
        begin = arrival
        if visit.time_windows:
            w = visit.time_windows[0]
            if arrival > w.end_s + eps:
                return None
            begin = max(arrival, w.start_s)
        stops.append(
            Stop(
                visit_id=visit.id,
                location_id=visit.location_id,
                arrival_s=arrival,
                service_start_s=begin,
                service_end_s=begin + visit.service_s,
                wait_s=begin - arrival,
                slack_s=0.0,
                travel_s=travel,
                distance_m=float(c.distance_m[prev, node]),
            )
        )
        t, prev = begin + visit.service_s, node
    return None  # not reached: the loop returns at the end node


def _dropped(c: Compiled, served: set[int]) -> tuple[Dropped, ...]:
    return tuple(
        Dropped(
            v.id,
            "urgent_not_servable" if v.urgent else DropReason.NOT_ENOUGH_TIME,
            f"urgent visit {v.id} cannot be served by any rep within its time windows and shifts"
            if v.urgent
            else f"visit {v.id} (priority {v.priority}) does not fit any rep's day with the other visits",
        )
        for node, v in enumerate(c.visits)
        if node not in served
    )


def _solve_by_sectors(
    problem: Problem,
    matrices: Matrices,
    c: Compiled,
    vs: list[Visit],
    clock: _CpuClock,
    options: SolverOptions,
    minimise: bool,
) -> Plan:
    """Decomposition for large plans: sectors by angle, each planned on its own, then
    the whole plan polished (visits a sector could not serve are inserted there). With
    PyVRP the sectors are larger (and each gets the reps whose homes are nearest it in
    angle), and the joined plan is improved by parts for `pyvrp_polish_share` of the
    budget (routes grouped by angle, so the parts straddle the sectors' seams): an OR-Tools
    model of thousands of visits costs more than it gains."""
    pyvrp = options.engine == "pyvrp"
    sector_visits = options.pyvrp_sector_visits if pyvrp else options.sector_visits
    polish_share = options.pyvrp_polish_share if pyvrp else options.polish_share
    loc_index = problem.location_index()
    homes = [problem.locations[loc_index[r.start_location_id]] for r in c.reps]
    cx = sum(h.lon for h in homes) / len(homes)
    cy = sum(h.lat for h in homes) / len(homes)

    def angle(v: Visit) -> float:
        at = problem.locations[loc_index[v.location_id]]
        return math.atan2(at.lat - cy, at.lon - cx)

    home_angle = [math.atan2(h.lat - cy, h.lon - cx) for h in homes]
    at_centre = [math.hypot(h.lat - cy, h.lon - cx) < 1e-9 for h in homes]
    order = sorted(range(len(vs)), key=lambda i: (angle(vs[i]), i))
    k = max(1, min(len(c.reps), math.ceil(len(vs) / sector_visits)))
    sectors = [order[j * len(order) // k : (j + 1) * len(order) // k] for j in range(k)]
    node_of = {v.id: i for i, v in enumerate(vs)}
    rep_of = {r.id: i for i, r in enumerate(c.reps)}
    routes: dict[int, list[int]] = {}
    free = list(range(len(c.reps)))
    sector_budget = options.cpu_s * (1 - polish_share) / k
    for j, sector in enumerate(sectors):
        # reps in proportion to the sector's visits (the rest keep theirs), at least one;
        # those whose home is nearest the sector in angle first (reps at the centre of
        # the homes, e.g. all at one depot, are as near as any)
        share = len(free) if j == k - 1 else math.ceil(len(c.reps) * len(sector) / len(vs))
        sx = sum(math.cos(angle(vs[i])) for i in sector)
        sy = sum(math.sin(angle(vs[i])) for i in sector)
        mid = math.atan2(sy, sx)

        def off(r: int, mid: float = mid) -> float:
            return 0.0 if at_centre[r] else 1.0 - math.cos(home_angle[r] - mid)

        nearest = sorted(free, key=lambda r: (off(r), r))
        mine = sorted(nearest[: max(1, share)])
        taken = set(mine)
        free = [r for r in free if r not in taken]
        if not mine:
            break
        sub = Problem(
            problem.locations,
            tuple(vs[i] for i in sector),
            tuple(c.reps[r] for r in mine),
            problem.epoch,
            minimise,
            problem.now_s,
        )
        budget = min(sector_budget, max(0.05, clock.left() - options.cpu_s * polish_share))
        t0 = time.process_time()
        part = solve(
            sub,
            matrices,
            # a sector is planned whole (with ils_max_visits below its size: by GLS)
            SolverOptions(
                **{**_fields(options), "cpu_s": budget, "decompose": False, "seed": options.seed}
            ),
            list(sub.visits),
        )
        clock.workers_s += float(part.stats.get("worker_cpu_s", 0.0))
        clock.virtual_s += budget if clock.reproducible else 0.0
        clock.capped = clock.capped or part.stats.get("reproducible", 1.0) == 0.0
        for route in part.used_routes:
            routes[rep_of[route.rep_id]] = [node_of[x] for x in route.visit_ids]
        if pyvrp and part.stats.get("engine_pyvrp") != 1.0:
            pyvrp = False  # a sector went to OR-Tools: the joined plan is read back there
        _report(options, clock, f"sector {j + 1}/{k}", list(routes.values()), 0, 0.0)
        log.debug("sector %d/%d: %.1f CPU-s", j + 1, k, time.process_time() - t0)
    if pyvrp:
        joined = list(routes.items())
        left = (
            clock.left()
            - PLAN_OUT_S
            - (options.cpu_s * BREAK_FALLBACK_SHARE if any(r.lunch_break for r in c.reps) else 0.0)
        )
        _report(options, clock, "joined", [r for _, r in joined], 0, _travel(c, joined))
        if left > 0.1 and joined:
            # the seams: the joined plan improved by parts (routes grouped by angle)
            penalty = _penalty_fn(c, minimise)
            better = pyvrp_search.improve(
                c,
                joined,
                left,
                prize=[None if minimise else penalty(v) for v in c.visits],
                seed=options.seed,
                minimise_reps=minimise,
            )
            if clock.reproducible:
                clock.virtual_s += left
                clock.capped = clock.capped or better.capped
            joined = better.routes
            _report(options, clock, "parts", [r for _, r in joined], 0, _travel(c, joined))
        plan = _plan_from_routes(c, joined, clock)
        if plan is not None:
            return plan
    all_reps = list(range(len(c.reps)))
    big = _big_penalty(c)
    m = _build(c, all_reps, lambda v: big * 4, vehicle_fixed_cost=big)
    res = _run(
        m,
        _params(clock, clock.left(), first=False),
        clock,
        clock.left(),
        [routes.get(r, []) for r in all_reps],
        must_find=True,
        min_s=0.1,
    )
    if res is None:
        raise SolverError("lost the solution while joining the sectors")
    return _to_plan(c, m, res, clock)


def _travel(c: Compiled, routes: list[tuple[int, list[int]]]) -> float:
    return float(pyvrp_search.travel_cost(c, routes))


def _fields(options: SolverOptions) -> dict[str, Any]:
    return {f: getattr(options, f) for f in options.__dataclass_fields__ if f != "progress"}


def _travel_ils(
    c: Compiled,
    reps: list[int],
    start: list[list[int]],
    clock: _CpuClock,
    options: SolverOptions,
) -> tuple[pywrapcp.Assignment | None, _Model]:
    """Plans without minimise_reps: the travel ILS from the constructed plan, visits
    droppable by priority as in the construction; then the plan is read back into that
    model (what is left of the budget polishes it by guided local search)."""
    penalty = _penalty_fn(c, False)
    _, cost, routes = _ils(
        c,
        reps,
        max(0.05, clock.left() - options.cpu_s * READ_BACK_SHARE),
        clock,
        start=start,
        by_priority=True,
    )
    m = _build(c, reps, penalty)
    if not routes:
        return None, m
    by_rep = dict(routes)
    dropped = len(c.visits) - sum(len(r) for _, r in routes)
    _report(options, clock, "travel", [r for _, r in routes], dropped, cost / c.scale)
    res = _run(
        m,
        _params(clock, clock.left(), first=False),
        clock,
        clock.left(),
        [by_rep.get(r, []) for r in reps],
        must_find=True,
        min_s=0.1,
    )
    return res, m


def _squeeze(
    c: Compiled, routes: list[tuple[int, list[int]]], alpha: int, slice_s: float, clock: _CpuClock
) -> tuple[int, list[tuple[int, list[int]]]]:
    """Local search with soft time windows from `routes`; returns (lateness, routes)."""
    m = _build(c, [r for r, _ in routes], lambda v: None, soft_late_coeff=alpha)
    res = _run(
        m,
        _params(clock, slice_s, first=False),
        clock,
        slice_s,
        [nodes for _, nodes in routes],
        stop_when_on_time=c.cost_t,
    )
    if res is None:
        return 2**62, routes
    late = sum(max(0, res.Value(m.time_dim.CumulVar(i)) - ub) for i, ub in m.soft_bounds)
    return late, [(m.rep_ids[v], r) for v, r in enumerate(_routes(m, res))]


def _eliminate(
    c: Compiled,
    used: list[tuple[int, list[int]]],
    lower: int,
    deadline: float,
    clock: _CpuClock,
    options: SolverOptions,
) -> list[tuple[int, list[int]]]:
    """Route elimination: remove a route, re-insert its visits allowing lateness, squeeze.

    For each target (one route fewer) a few routes are tried (fewest visits first);
    if none squeezes to zero lateness, the least-late attempt is squeezed further
    with a doubled lateness cost until the deadline.
    """
    slice_s = max(0.2, options.cpu_s * ELIMINATE_SLICE_SHARE)
    while len(used) > lower and clock.used() < deadline:
        # Candidates: the smallest routes, ranked by how well their visits re-insert elsewhere.
        smallest = sorted(range(len(used)), key=lambda k: (len(used[k][1]), k))[
            :ELIMINATE_CANDIDATES
        ]
        ranked: list[tuple[int, int, list[tuple[int, list[int]]]]] = []
        for k in smallest:
            rest = [(r, list(nodes)) for j, (r, nodes) in enumerate(used) if j != k]
            init = insert_all(c, rest, used[k][1], SQUEEZE_ALPHA)
            if init is not None:
                ready, due = node_windows(c)
                cost = sum(
                    route_cost(c, c.reps[r], nodes, ready, due, SQUEEZE_ALPHA) for r, nodes in init
                )
                ranked.append((cost, k, init))
        ranked.sort(key=lambda x: (x[0], x[1]))
        best: tuple[int, list[tuple[int, list[int]]]] | None = None
        done = False
        for _, _k, init in ranked[:ELIMINATE_TRIES]:
            if clock.used() >= deadline or clock.real_left() <= 0:
                break
            late, routes = _squeeze(
                c, init, SQUEEZE_ALPHA, min(slice_s, deadline - clock.used()), clock
            )
            _report(options, clock, "eliminate", [r for _, r in routes], 0, late / c.scale)
            if late == 0:
                used = [(r, nodes) for r, nodes in routes if nodes]
                done = True
                break
            if best is None or late < best[0]:
                best = (late, routes)
        rng = random.Random((options.seed or 0) * 100_003 + len(used))
        alpha, step = SQUEEZE_ALPHA, 0
        while not done and best is not None and clock.used() < deadline:
            if clock.real_left() <= 0:
                break
            step += 1
            if step % 2:  # the lateness left may be cheaper than the detour that removes it
                alpha = min(alpha * 4, SQUEEZE_ALPHA * 1000)
                start = best[1]
            else:
                start = perturb(c, best[1], rng)
            late, routes = _squeeze(c, start, alpha, min(slice_s, deadline - clock.used()), clock)
            _report(options, clock, "squeeze", [r for _, r in routes], 0, late / c.scale)
            if late == 0:
                used = [(r, nodes) for r, nodes in routes if nodes]
                done = True
            elif late <= best[0]:
                best = (late, routes)
        if not done:
            break
    return used


def _empty_route(rep: Rep) -> Route:
    return Route(rep.id, rep.shift.start_s, rep.shift.start_s, (), 0.0, 0.0)


def _to_plan(c: Compiled, model: _Model, a: pywrapcp.Assignment, clock: _CpuClock) -> Plan:
    s = float(c.scale)
    routing, manager, time_dim = model.routing, model.manager, model.time_dim
    routes_by_rep: dict[int, Route] = {}
    served: set[int] = set()
    for v in range(routing.vehicles()):
        rep = c.reps[model.rep_ids[v]]
        brk: BreakSlot | None = None
        if v in model.breaks:
            bv = model.breaks[v]
            if a.PerformedValue(bv):
                brk = BreakSlot(a.StartValue(bv) / s, a.EndValue(bv) / s)
        index = routing.Start(v)
        start_t = a.Value(time_dim.CumulVar(index)) / s
        prev_node = manager.IndexToNode(index)
        first = a.Value(routing.NextVar(index))
        if not routing.IsEnd(first):
            # leave as late as the first visit allows (no waiting there), unless the
            # lunch break comes before it
            first_t = a.Value(time_dim.CumulVar(first)) / s
            if brk is None or brk.start_s >= first_t - 1e-6:
                travel0 = float(c.duration_s[prev_node, manager.IndexToNode(first)])
                start_t = max(start_t, first_t - travel0)
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
                    route = Route(
                        rep.id, start_t, max(at_t, arrival), tuple(stops), travel, dist, brk
                    )
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
    dropped = _dropped(c, served)
    return Plan(
        routes=routes,
        dropped=dropped,
        stats={
            "cpu_s": clock.real_used(),
            "worker_cpu_s": clock.workers_s,
            # reproducible mode: 1.0 when the CPU cap cut no phase short (same seed and
            # budget, same plan)
            "reproducible": float(clock.reproducible and not clock.capped),
            "objective": float(a.ObjectiveValue()),
        },
    )


def _with_slack(route: Route, rep: Rep, c: Compiled, nodes: list[int]) -> Route:
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
                stop.visit_id,
                stop.location_id,
                stop.arrival_s,
                stop.service_start_s,
                stop.service_end_s,
                stop.wait_s,
                latest - stop.service_start_s,
                stop.travel_s,
                stop.distance_m,
            )
        )
        latest_next = latest - stop.travel_s
    out.reverse()
    return Route(
        route.rep_id,
        route.start_s,
        route.end_s,
        tuple(out),
        route.end_travel_s,
        route.end_distance_m,
        route.lunch_break,
    )
