"""Plan a day: validate the request, build the matrices, solve, and merge the answers."""

from __future__ import annotations

from routing.matrix import GreatCircleMatrix, Matrices, MatrixProvider
from routing.model import Plan, Problem, Route
from routing.solver import SolverOptions, solve
from routing.validate import validate


def plan(
    problem: Problem,
    matrices: Matrices | MatrixProvider | None = None,
    options: SolverOptions | None = None,
) -> Plan:
    """A plan for every plannable visit; every other visit is dropped with its reason."""
    if isinstance(matrices, Matrices):
        m = matrices
    else:
        m = (matrices or GreatCircleMatrix()).matrices(problem.locations)
    checked = validate(problem, m)
    result = solve(checked.problem, m, options)
    # Reps removed by validation still get an (empty) route: every rep gets an answer.
    planned = {r.rep_id for r in result.routes}
    extra = tuple(
        Route(r.id, r.shift.start_s, r.shift.start_s, (), 0.0, 0.0)
        for r in problem.reps
        if r.id not in planned
    )
    return Plan(
        routes=result.routes + extra,
        dropped=checked.dropped + result.dropped,
        issues=checked.issues,
        stats=result.stats,
    )
