"""A routing problem compiled to node-level integer data (pure; no solver import).

Visits are nodes 0..n-1, then one node per distinct rep start/end location. Travel is
rounded *up* to integer solver units, so a plan feasible in integers is feasible in the
floating-point times the checker recomputes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from routing.matrix import Matrices
from routing.model import Problem, Rep, Visit


@dataclass
class Compiled:
    """Node-level data: visits are nodes 0..n-1, then one node per distinct depot location."""

    problem: Problem
    visits: list[Visit]
    reps: list[Rep]
    node_loc: list[int]
    depot_node: dict[int, int]  # location index -> node
    travel_a: np.ndarray  # travel only, integer solver units (rounded up)
    time_a: np.ndarray  # travel + service at the node left
    cost_a: np.ndarray
    service_t: list[int]
    demand: list[int]
    distance_m: np.ndarray
    duration_s: np.ndarray
    scale: int
    horizon_t: int
    max_arc_t: int

    # OR-Tools wants lists of lists: built on first use only (5,000 visits: 25M cells)
    @cached_property
    def time_t(self) -> list[list[int]]:
        return self.time_a.tolist()  # type: ignore[no-any-return]

    @cached_property
    def cost_t(self) -> list[list[int]]:
        return self.cost_a.tolist()  # type: ignore[no-any-return]


def compile_problem(
    problem: Problem, matrices: Matrices, visits: list[Visit], scale: int, cost: str
) -> Compiled:
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
    return Compiled(
        problem=problem,
        visits=visits,
        reps=list(problem.reps),
        node_loc=node_loc,
        depot_node=depot_node,
        travel_a=travel_t,
        time_a=time_t,
        cost_a=cost_t,
        service_t=service_t.tolist(),
        demand=[v.demand for v in visits] + [0] * (len(node_loc) - len(visits)),
        distance_m=dist,
        duration_s=dur,
        scale=scale,
        horizon_t=math.ceil(horizon * scale) + 1,
        max_arc_t=int(cost_t.max()) if cost_t.size else 1,
    )


def lower_bound(c: Compiled) -> int:
    caps = [r.capacity for r in c.reps if r.capacity is not None]
    if not caps or len(caps) < len(c.reps) or max(caps) <= 0:
        return 1
    return max(1, math.ceil(sum(c.demand) / max(caps)))
