"""PyVRP's iterated local search as the planner's search: the only module importing pyvrp.

A compiled problem (routing.compiled) becomes PyVRP `ProblemData`: depots first, then one
location per visit; travel times rounded up as in the OR-Tools model (a plan feasible in
integers is feasible in the checker's floating-point times); one vehicle type per group of
identical reps. What PyVRP expresses here:
- a shift (earliest start, latest return), a maximum working time (shift duration),
  capacity, each rep's own start and end place;
- one service-start window per visit; visits droppable at a prize by priority, urgent
  visits required;
- skills and locked stops: a routing *profile* per distinct set of visits a rep may not
  serve, whose travel time into those visits is beyond the horizon (never on time);
- re-plans: a profile per rep whose arc cost into a visit the running plan gave another
  rep is one mean leg higher (the OR-Tools model's stability cost);
- fewest reps: route elimination (the route with the fewest visits removed, its visits
  re-inserted by the search, until no plan serving all is found), then travel on the
  final reps (a fixed cost per rep in one search instead gave more reps: 78 against 75 on
  the 200-customer tuning set);
- lunch breaks: the rep's day (shift end, working time) is shorter by the break, and the
  break is placed in the plan afterwards where it fits (routing.solver);
- large plans (from PARTS_FROM visits): route elimination ends earlier (travel needs the
  time more than the last rep), and travel is searched on the whole plan for a share, then
  by *parts* (`improve`, a route-based decomposition as in HGS): the routes sorted by the
  angle of their visits around the reps' homes and cut into parts of about PART_VISITS
  visits, each part searched by PyVRP from its routes with its own reps (idle reps shared
  out, optional visits nobody serves going to the part nearest in angle), in PART_ROUNDS
  rounds that share the budget, each cut a quarter of a part further than the last so that
  seams move. A part's plan replaces its routes only if
  it is feasible and PyVRP's best (never worse than the routes it started from). An
  iteration on a 200-visit part costs about half of one on 1,000 visits; measured on the
  1,000-customer instances at 60 CPU-s: r1_10_1 +7.25% -> +5.80% distance (100 reps),
  rc1_10_1 +9.55% -> +8.83% (91 reps); with elimination ending at 35% instead of 60%,
  +4.64% (101 reps) and +7.72% (91 reps); four rounds of parts instead of two (session 18):
  r1_10_1 +3.80% -> +2.82%, rc1_10_1 +6.33% -> +5.16% (same reps; README, routing).
What it does not: visits with several windows. `supports()` says so, and the OR-Tools
search (routing.solver) plans those problems, and those whose lunch breaks fit nowhere in
PyVRP's routes.

The budget is CPU time (`time.process_time`, PyVRP runs in this thread); with a seed the
stop is an iteration count priced at a fixed rate per CPU-second and visit, so the same
seed and budget give the same plan, the CPU budget staying a hard cap.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pyvrp
from pyvrp.exceptions import PenaltyBoundWarning

from routing.compiled import Compiled
from routing.model import Rep

log = logging.getLogger(__name__)

INFEASIBLE_COST = np.iinfo(np.int64).max
# profiles x locations^2 above this: too much memory for per-rep matrices (OR-Tools then)
MAX_PROFILE_CELLS = 60_000_000
# Seeded mode: the CPU time one iteration is priced at, a fixed part plus a part per visit
# (its local search grows with the plan). Measured on the 2-core machine under load: about
# 2 ms per iteration at 200 visits; priced about twice as high, so that the iterations
# usually end before the CPU cap (then the same seed and budget give the same plan).
ITERATION_BASE_S = 0.001
ITERATION_PER_VISIT_S = 0.000015


@dataclass(frozen=True, slots=True)
class SearchResult:
    routes: list[tuple[int, list[int]]]  # (index into c.reps, visit nodes in order)
    feasible: bool
    iterations: int
    capped: bool  # the CPU cap stopped a seeded search before its iterations


class _CpuStop:
    """Stops at a process CPU time (`deadline`, from `time.process_time`), or after
    `iterations` (seeded) with that time as a cap; optionally at the first plan that is
    feasible (PyVRP reports an infeasible best's cost as the largest int64)."""

    def __init__(self, deadline: float, iterations: int | None, first_feasible: bool) -> None:
        self.deadline = deadline
        self.iterations = iterations
        self.first_feasible = first_feasible
        self.count = 0
        self.capped = False

    def __call__(self, best_cost: float) -> bool:
        if self.first_feasible and best_cost < INFEASIBLE_COST:
            return True
        self.count += 1
        if time.process_time() >= self.deadline:
            self.capped = self.iterations is not None
            return True
        return self.iterations is not None and self.count > self.iterations


def supports(c: Compiled) -> str | None:
    """None if PyVRP can plan this problem, else what it cannot express."""
    if any(len(v.time_windows) > 1 for v in c.visits):
        return "visits with several time windows"
    if _profile_count(c) * len(c.node_loc) ** 2 > MAX_PROFILE_CELLS:
        return "too many rep-specific travel matrices"
    return None


def _lunch_s(rep: Rep) -> float:
    return 0.0 if rep.lunch_break is None else rep.lunch_break.duration_s


def _forbidden(c: Compiled, r: int) -> frozenset[int]:
    rep = c.reps[r]
    return frozenset(
        node
        for node, v in enumerate(c.visits)
        if not v.skills <= rep.skills or (v.rep_id is not None and v.rep_id != rep.id)
    )


def _sticky(c: Compiled) -> bool:
    return any(v.previous_rep_id is not None for v in c.visits)


def _profile_count(c: Compiled) -> int:
    if _sticky(c):
        return len(c.reps)
    return len({_forbidden(c, r) for r in range(len(c.reps))})


def stability_cost(c: Compiled) -> int:
    """The mean leg between visits: what moving a visit to another rep must save."""
    n = len(c.visits)
    if n < 2:
        return max(1, c.max_arc_t)
    return max(1, int(c.cost_a[:n, :n].sum()) // (n * (n - 1)))


@dataclass
class _Data:
    """A PyVRP instance of some of the compiled problem's visits and reps: PyVRP client
    j is visit node `nodes[j]`; vehicle type t stands for the reps `type_reps[t]`."""

    data: pyvrp.ProblemData
    nodes: list[int]
    type_reps: list[list[int]]


def _build(
    c: Compiled,
    prize: list[int | None],
    nodes: list[int] | None = None,
    reps: list[int] | None = None,
    stick: int | None = None,
) -> _Data:
    """PyVRP data for visit `nodes` (default all) and `reps` (default all): the depots
    first, then one location per visit."""
    nodes = list(range(len(c.visits))) if nodes is None else nodes
    reps = list(range(len(c.reps))) if reps is None else reps
    n = len(nodes)
    depots = list(range(len(c.visits), len(c.node_loc)))
    nd = len(depots)
    perm = np.array(depots + nodes, dtype=np.int64)
    to_loc = {node: nd + j for j, node in enumerate(nodes)} | {d: k for k, d in enumerate(depots)}

    travel = c.travel_a[np.ix_(perm, perm)]
    cost = c.cost_a[np.ix_(perm, perm)]
    horizon = int(c.horizon_t)
    never = 4 * horizon + int(travel.max(initial=0)) + 1

    # profiles: the travel/cost matrices a rep sees
    sticky = _sticky(c)
    if sticky and stick is None:
        stick = stability_cost(c)
    # visits some rep may not serve (skills, locked stops): only those are checked
    limited = [x for x in nodes if c.visits[x].skills or c.visits[x].rep_id is not None]
    profile_of: dict[object, int] = {}
    rep_profile: dict[int, int] = {}
    dist_ms: list[np.ndarray] = []
    dur_ms: list[np.ndarray] = []
    for r in reps:
        rep = c.reps[r]
        forbidden = frozenset(
            x
            for x in limited
            if not c.visits[x].skills <= rep.skills
            or (c.visits[x].rep_id is not None and c.visits[x].rep_id != rep.id)
        )
        key: object = r if sticky else forbidden
        if key not in profile_of:
            profile_of[key] = len(dist_ms)
            dur = travel.copy()
            if forbidden:
                cols = [to_loc[x] for x in sorted(forbidden)]
                dur[:, cols] = never
            dist = cost
            if sticky:
                moved = [
                    to_loc[x]
                    for x in nodes
                    if c.visits[x].previous_rep_id is not None
                    and c.visits[x].previous_rep_id != rep.id
                ]
                dist = cost.copy()
                dist[:, moved] += stick or 0
            if forbidden or sticky:
                np.fill_diagonal(dur, 0)
                np.fill_diagonal(dist, 0)
            dist_ms.append(np.ascontiguousarray(dist))
            dur_ms.append(np.ascontiguousarray(dur))
        rep_profile[r] = profile_of[key]

    s = c.scale
    capacity_on = any(r.capacity is not None for r in c.reps) and any(c.demand)
    total_demand = sum(c.demand)
    locations = [pyvrp.Location(0.0, 0.0) for _ in range(nd + n)]
    pv_depots = [pyvrp.Depot(location=k) for k in range(nd)]
    clients = []
    for j, node in enumerate(nodes):
        v = c.visits[node]
        if v.time_windows:
            w = v.time_windows[0]
            early, late = math.ceil(w.start_s * s), math.floor(w.end_s * s)
        else:
            early, late = 0, horizon
        p = prize[node]
        clients.append(
            pyvrp.Client(
                location=nd + j,
                delivery=[c.demand[node]] if capacity_on else [],
                service_duration=int(c.service_t[node]),
                tw_early=early,
                tw_late=max(early, late),
                prize=0 if p is None else int(p),
                required=p is None,
            )
        )

    loc_index = c.problem.location_index()
    Key = tuple[int, int, int, int, int | None, int | None, int]
    types: dict[Key, list[int]] = {}
    for r in reps:
        rep = c.reps[r]
        key2: Key = (
            to_loc[c.depot_node[loc_index[rep.start_location_id]]],
            to_loc[c.depot_node[loc_index[rep.end_location_id]]],
            math.ceil(rep.shift.start_s * s),
            # a lunch break: the day is that much shorter (the break is placed afterwards,
            # routing.solver; OR-Tools plans the day if it fits nowhere)
            math.floor((rep.shift.end_s - _lunch_s(rep)) * s),
            None
            if rep.max_working_s is None
            else math.floor((rep.max_working_s - _lunch_s(rep)) * s),
            (rep.capacity if rep.capacity is not None else total_demand) if capacity_on else None,
            rep_profile[r],
        )
        types.setdefault(key2, []).append(r)
    vehicle_types = []
    type_reps: list[list[int]] = []
    for (start_d, end_d, lo, hi, span, cap, prof), group in types.items():
        kwargs: dict[str, object] = {}
        if span is not None:
            kwargs["shift_duration"] = span
        vehicle_types.append(
            pyvrp.VehicleType(
                num_available=len(group),
                capacity=[cap] if cap is not None else [],
                start_depot=start_d,
                end_depot=end_d,
                tw_early=lo,
                tw_late=max(lo, hi),
                profile=prof,
                **kwargs,  # type: ignore[arg-type]
            )
        )
        type_reps.append(group)
    # (the stubs spell an integer matrix's shape as `int`)
    data = pyvrp.ProblemData(
        locations,
        clients,
        pv_depots,
        vehicle_types,
        dist_ms,  # type: ignore[arg-type]
        dur_ms,  # type: ignore[arg-type]
    )
    return _Data(data, nodes, type_reps)


def search(
    c: Compiled,
    budget_s: float,
    *,
    minimise_reps: bool,
    prize: list[int | None],
    seed: int | None,
    start: list[tuple[int, list[int]]] | None = None,
) -> SearchResult:
    """Plan the compiled problem within `budget_s` CPU-seconds.

    `prize[node]` is what dropping the visit costs (None: it must be served). With
    `minimise_reps` a rep costs more than any travel. `start` is a warm start.
    """
    n = len(c.visits)
    whole = _build(c, prize)
    data, type_reps = whole.data, whole.type_reps
    runner = _Runner(budget_s, _iterations(budget_s, n, seed), seed or 0)
    best = _solution(data, start, type_reps) if start else None
    type_ids = list(range(len(type_reps)))  # the data's vehicle type k is type_reps[type_ids[k]]
    if minimise_reps:
        # 1. a first plan on every rep; 2. one rep fewer (the one with the fewest visits)
        # while a plan serving everything is found, warm-started from the best plan
        # without that route; 3. travel on the final reps with the rest of the budget.
        large = n >= PARTS_FROM
        until = ELIMINATE_UNTIL_LARGE if large else ELIMINATE_UNTIL
        # large plans: an attempt gets at most ELIMINATE_TRY_SHARE, and when it fails the
        # next-smallest route is tried instead, up to ELIMINATE_CANDIDATES routes
        candidates = ELIMINATE_CANDIDATES if large else 1
        try_share = ELIMINATE_TRY_SHARE if large else 1.0
        tries = 0
        best = runner.run(data, FIRST_SHARE, best, first_feasible=True)
        while best.is_feasible() and runner.spent() < until:
            routes = sorted(best.routes(), key=lambda r: (r.num_clients(), r.vehicle_type()))
            if len(routes) <= 1 or tries >= min(candidates, len(routes)):
                break
            drop = routes[tries].vehicle_type()
            fleet = [vt.num_available for vt in data.vehicle_types()]
            fleet[drop] = min(fleet[drop], sum(r.vehicle_type() == drop for r in routes)) - 1
            # a type left with no rep leaves the data (PyVRP wants at least one of each)
            keep = [t for t, k in enumerate(fleet) if k > 0]
            index = {t: i for i, t in enumerate(keep)}
            fewer = data.replace(
                vehicle_types=[data.vehicle_type(t).replace(num_available=fleet[t]) for t in keep]
            )
            others = routes[:tries] + routes[tries + 1 :]
            warm = pyvrp.Solution(
                fewer, [_route(fewer, r, index[r.vehicle_type()]) for r in others]
            )
            share = min(until - runner.spent(), try_share)
            attempt = runner.run(fewer, share, warm, first_feasible=True)
            if not attempt.is_feasible():
                tries += 1
                continue
            tries = 0
            data, best, type_ids = fewer, attempt, [type_ids[t] for t in keep]
    if n >= PARTS_FROM:
        # travel on a large plan: the whole plan for a share, then parts of it
        if WHOLE_SHARE > 0 or best is None:
            best = runner.run(data, max(WHOLE_SHARE, 0.05) * (1.0 - runner.spent()), best)
        if best.is_feasible():
            found = _reps_routes(best, type_reps, type_ids)
            # fewest reps: the parts keep the reps they have; else idle reps may join
            team = {r for r, _ in found} if minimise_reps else set(range(len(c.reps)))
            found = _improve_by_parts(c, found, prize, runner, team, 1.0)
            return SearchResult(found, True, runner.iterations, runner.capped)
    best = runner.run(data, 1.0 - runner.spent(), best)
    return SearchResult(
        _reps_routes(best, type_reps, type_ids),
        best.is_feasible(),
        runner.iterations,
        runner.capped,
    )


def improve(
    c: Compiled,
    routes: list[tuple[int, list[int]]],
    budget_s: float,
    *,
    prize: list[int | None],
    seed: int | None,
    minimise_reps: bool,
) -> SearchResult:
    """Improve a feasible plan (e.g. sectors planned on their own, joined) by parts: its
    routes grouped by angle into parts of about PART_VISITS visits, each part searched
    with its own reps, in rounds whose parts' seams move."""
    runner = _Runner(budget_s, _iterations(budget_s, PART_VISITS, seed), seed or 0)
    fleet = {r for r, nodes in routes if nodes} if minimise_reps else set(range(len(c.reps)))
    out = _improve_by_parts(c, routes, prize, runner, fleet, 1.0)
    return SearchResult(out, True, runner.iterations, runner.capped)


def travel_cost(c: Compiled, routes: list[tuple[int, list[int]]]) -> int:
    """The routes' arc cost in solver units (home to home)."""
    loc_index = c.problem.location_index()
    total = 0
    for r, nodes in routes:
        if nodes:
            rep = c.reps[r]
            path = [
                c.depot_node[loc_index[rep.start_location_id]],
                *nodes,
                c.depot_node[loc_index[rep.end_location_id]],
            ]
            total += int(c.cost_a[path[:-1], path[1:]].sum())
    return total


def _iterations(budget_s: float, n: int, seed: int | None) -> int | None:
    per_iteration_s = ITERATION_BASE_S + ITERATION_PER_VISIT_S * n
    return max(1, int(budget_s / per_iteration_s)) if seed is not None else None


def _reps_routes(
    best: pyvrp.Solution, type_reps: list[list[int]], type_ids: list[int]
) -> list[tuple[int, list[int]]]:
    free = [list(reps) for reps in type_reps]
    out: list[tuple[int, list[int]]] = []
    for route in best.routes():
        # a client activity's idx is the client's index
        visits = [int(a.idx) for a in route if a.is_client()]
        out.append((free[type_ids[route.vehicle_type()]].pop(0), visits))
    return out


def _improve_by_parts(
    c: Compiled,
    routes: list[tuple[int, list[int]]],
    prize: list[int | None],
    runner: _Runner,
    fleet: set[int],
    until: float,
) -> list[tuple[int, list[int]]]:
    """Route-based decomposition (as in HGS's): the routes sorted by the angle of their
    visits' centre around the reps' homes, cut into parts of about PART_VISITS visits;
    each part (its visits, its routes' reps and a share of the idle reps in `fleet`) is
    searched by PyVRP from its routes, for a share of the budget proportional to its
    visits; a part's plan is never worse than the routes it started from. PART_ROUNDS
    rounds share the budget, each cut 1/PART_ROUNDS of a part from the last (the first half a
    part from the angle order's start), so that seams move. Visits no route serves
    (optional ones) go to the part nearest in angle."""
    n = len(c.visits)
    loc_index = c.problem.location_index()
    homes = [c.problem.locations[loc_index[r.start_location_id]] for r in c.reps]
    cx = sum(h.lon for h in homes) / len(homes)
    cy = sum(h.lat for h in homes) / len(homes)
    ang = [
        math.atan2(
            c.problem.locations[c.node_loc[x]].lat - cy, c.problem.locations[c.node_loc[x]].lon - cx
        )
        for x in range(n)
    ]
    plan = {r: list(nodes) for r, nodes in routes if nodes}
    part_visits = max(PART_VISITS, 1)
    parts_n = max(1, round(n / part_visits))
    rounds = 0
    while runner.spent() < until - 1e-9 and rounds < PART_ROUNDS:
        served = {x for nodes in plan.values() for x in nodes}
        items: list[tuple[float, int, list[int]]] = []  # (angle, rep or -1, visits)
        for r, nodes in plan.items():
            sx = sum(math.cos(ang[x]) for x in nodes)
            sy = sum(math.sin(ang[x]) for x in nodes)
            items.append((math.atan2(sy, sx), r, nodes))
        items += [(ang[x], -1, [x]) for x in range(n) if x not in served]
        items.sort(key=lambda it: (it[0], it[1]))
        if parts_n <= 1 or len(items) <= 1:
            cuts = [items]
        else:
            # rotate: the first part starts 1/PART_ROUNDS of a part further each round
            total = sum(len(it[2]) for it in items)
            # (the first cut is half a part off the angle order's start, so that it
            # straddles the seams of sectors cut there, routing.solver)
            offset = (0.5 + rounds / PART_ROUNDS) % 1.0 * total / parts_n
            cuts = [[] for _ in range(parts_n)]
            acc = 0.0
            for it in items:
                mid = (acc + len(it[2]) / 2 + offset) % total
                cuts[min(parts_n - 1, int(mid * parts_n / total))].append(it)
                acc += len(it[2])
        idle = sorted(fleet - set(plan))
        left = (until - runner.spent()) / (PART_ROUNDS - rounds)
        for k, cut in enumerate(cuts):
            nodes = [x for it in cut for x in it[2]]
            reps = [it[1] for it in cut if it[1] >= 0] + idle[k :: len(cuts)]
            if not nodes or not reps:
                continue
            share = min(left * len(nodes) / max(1, n), until - runner.spent())
            if share <= 0:
                break
            sub = _build(c, prize, nodes, reps)
            start = [(r, plan[r]) for r in reps if r in plan]
            local = {x: j for j, x in enumerate(nodes)}
            warm = _solution(
                sub.data, [(r, [local[x] for x in xs]) for r, xs in start], sub.type_reps
            )
            if warm is None:
                continue
            res = runner.run(sub.data, share, warm)
            if not res.is_feasible():
                continue
            for r, _ in start:
                del plan[r]
            for r, xs in _reps_routes(res, sub.type_reps, list(range(len(sub.type_reps)))):
                plan[r] = [nodes[j] for j in xs]
        rounds += 1
        if parts_n <= 1:
            break
    log.debug("pyvrp parts: %d rounds of %d parts", rounds, parts_n)
    return list(plan.items())


# Fewest reps: shares of the budget (fractions of it, or of the seeded iterations)
FIRST_SHARE = 0.05  # the first plan on every rep (stops at the first one serving all)
ELIMINATE_UNTIL = 0.6  # route elimination ends by then; travel takes the rest
ELIMINATE_UNTIL_LARGE = 0.35  # the same from PARTS_FROM visits
# Large plans: at most ELIMINATE_TRY_SHARE of the budget per attempt, and up to
# ELIMINATE_CANDIDATES routes (smallest first) tried before giving up. Measured with 0.1
# and 3 (elimination to 40%): r1_10_1 100 reps at +6.15% distance against 101 at +5.69%
# (one attempt, to 35%); c1_10_1 102 reps either way (all three attempts at 101 failed).
# The distance target decides: one attempt.
ELIMINATE_TRY_SHARE = 1.0
ELIMINATE_CANDIDATES = 1
# Travel on large plans: from PARTS_FROM visits, the whole plan is searched for
# WHOLE_SHARE of the travel budget, then by parts of about PART_VISITS visits
PARTS_FROM = 300
WHOLE_SHARE = 0.0
PART_VISITS = 200
# the budget of the parts is shared by this many rounds, each cut moved by 1/PART_ROUNDS of
# a part. 4 against 2 (session 18, the same runs otherwise): 400 customers at 24 CPU-s
# +1.28% against +2.33% distance, 1,000 at 60 CPU-s +2.74% against +3.48% (same reps);
# 6 rounds on the 400-customer set +1.36%
PART_ROUNDS = 4


class _Runner:
    """Runs PyVRP phases against one budget: CPU time, or (seeded) iterations with the
    CPU time as a hard cap."""

    def __init__(self, budget_s: float, iterations: int | None, seed: int) -> None:
        self.t0 = time.process_time()
        self.budget_s = budget_s
        self.total = iterations
        self.iterations = 0
        self.capped = False
        self.seed = seed

    def spent(self) -> float:
        if self.total is not None:
            return self.iterations / self.total
        return (time.process_time() - self.t0) / self.budget_s

    def run(
        self,
        data: pyvrp.ProblemData,
        share: float,
        initial: pyvrp.Solution | None,
        first_feasible: bool = False,
    ) -> pyvrp.Solution:
        share = max(0.0, min(share, 1.0 - self.spent()))
        cap = self.t0 + self.budget_s
        if self.total is not None:
            stop = _CpuStop(cap, max(1, int(self.total * share)), first_feasible)
        else:
            stop = _CpuStop(
                min(cap, time.process_time() + share * self.budget_s), None, first_feasible
            )
        with warnings.catch_warnings():
            # "a penalty parameter has reached its maximum": expected while searching
            # for a plan on fewer reps than fit; the best plan is checked
            warnings.simplefilter("ignore", PenaltyBoundWarning)
            result = pyvrp.solve(
                data,
                stop=stop,
                seed=self.seed + self.iterations,
                collect_stats=False,
                display=False,
                initial_solution=initial,
            )
        self.iterations += stop.count
        self.capped = self.capped or stop.capped
        best = result.best
        log.debug(
            "pyvrp phase: %d iterations, %.2f of the budget spent, feasible %s, %d routes, cost %d",
            stop.count,
            self.spent(),
            best.is_feasible(),
            best.num_routes(),
            best.distance(),
        )
        return best


def _route(data: pyvrp.ProblemData, route: pyvrp.Route, vehicle_type: int) -> pyvrp.Route:
    return pyvrp.Route(data, [int(a.idx) for a in route if a.is_client()], vehicle_type)


def _solution(
    data: pyvrp.ProblemData, start: list[tuple[int, list[int]]], type_reps: list[list[int]]
) -> pyvrp.Solution | None:
    type_of = {r: t for t, reps in enumerate(type_reps) for r in reps}
    try:
        return pyvrp.Solution(
            data, [pyvrp.Route(data, nodes, type_of[r]) for r, nodes in start if nodes]
        )
    except (ValueError, RuntimeError):
        return None
