"""Pure insertion heuristics for route elimination: cheapest insertion allowing lateness,
lateness of a route's earliest schedule, and ruin-and-recreate perturbation."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from routing.compiled import Compiled
from routing.model import Rep

SQUEEZE_ALPHA = 100  # lateness cost per solver time unit, in arc-cost units


def late_nodes(
    c: Compiled, rep: Rep, nodes: Sequence[int], ready: list[int], due: list[int]
) -> list[int]:
    loc_index = c.problem.location_index()
    here = c.depot_node[loc_index[rep.start_location_id]]
    t = math.ceil(rep.shift.start_s * c.scale)
    late = []
    for node in nodes:
        t = max(t + c.time_t[here][node], ready[node])
        if t > due[node]:
            late.append(node)
        here = node
    return late


def perturb(
    c: Compiled, routes: list[tuple[int, list[int]]], rng: random.Random
) -> list[tuple[int, list[int]]]:
    """Ruin and recreate: remove the late visits, their nearest neighbours and a few at random, re-insert."""
    ready, due = node_windows(c)
    late = [x for r, nodes in routes for x in late_nodes(c, c.reps[r], nodes, ready, due)]
    n = len(c.visits)
    k = max(3, min(30, n // 10))
    chosen = set(late)
    for x in late:
        near = sorted(range(n), key=lambda y: c.cost_t[x][y])[1 : 1 + k // max(1, len(late))]
        chosen.update(near)
    while len(chosen) < len(late) + k:
        chosen.add(rng.randrange(n))
    kept = [(r, [x for x in nodes if x not in chosen]) for r, nodes in routes]
    order = list(chosen)
    rng.shuffle(order)
    out = insert_all(c, kept, order, SQUEEZE_ALPHA, keep_order=True)
    return out if out is not None else routes


def node_windows(c: Compiled) -> tuple[list[int], list[int]]:
    ready = [0] * len(c.node_loc)
    due = [c.horizon_t] * len(c.node_loc)
    for node, v in enumerate(c.visits):
        if v.time_windows:
            ready[node] = math.ceil(min(w.start_s for w in v.time_windows) * c.scale)
            due[node] = math.floor(max(w.end_s for w in v.time_windows) * c.scale)
    return ready, due


def route_cost(
    c: Compiled, rep: Rep, nodes: Sequence[int], ready: list[int], due: list[int], alpha: int
) -> int:
    """Arc cost plus alpha times lateness of the earliest schedule (integer units)."""
    loc_index = c.problem.location_index()
    here = c.depot_node[loc_index[rep.start_location_id]]
    t = math.ceil(rep.shift.start_s * c.scale)
    cost = late = 0
    for node in nodes:
        t = max(t + c.time_t[here][node], ready[node])
        late += max(0, t - due[node])
        cost += c.cost_t[here][node]
        here = node
    end = c.depot_node[loc_index[rep.end_location_id]]
    t += c.time_t[here][end]
    cost += c.cost_t[here][end]
    late += max(0, t - math.floor(rep.shift.end_s * c.scale))
    return cost + alpha * late


def insert_all(
    c: Compiled,
    routes: list[tuple[int, list[int]]],
    nodes: Sequence[int],
    alpha: int,
    keep_order: bool = False,
) -> list[tuple[int, list[int]]] | None:
    """Insert each node where cost + alpha * lateness grows least (capacity, skills and locks hard)."""
    ready, due = node_windows(c)
    out = [(r, list(nodes_)) for r, nodes_ in routes]
    for node in nodes if keep_order else sorted(nodes, key=lambda x: due[x]):
        visit = c.visits[node]
        best: tuple[int, int, int] | None = None
        for k, (r, route) in enumerate(out):
            rep = c.reps[r]
            if not visit.skills <= rep.skills or (
                visit.rep_id is not None and visit.rep_id != rep.id
            ):
                continue
            if (
                rep.capacity is not None
                and sum(c.demand[x] for x in route) + c.demand[node] > rep.capacity
            ):
                continue
            base = route_cost(c, rep, route, ready, due, alpha)
            for pos in range(len(route) + 1):
                delta = (
                    route_cost(c, rep, [*route[:pos], node, *route[pos:]], ready, due, alpha) - base
                )
                if best is None or delta < best[0]:
                    best = (delta, k, pos)
        if best is None:
            return None
        _, k, pos = best
        out[k][1].insert(pos, node)
    return out
