"""What runs in a spawned solver process, away from any event loop.

The solver measures its budget with `time.process_time()` of the process it runs in (plus
its own ILS workers' CPU time), so it must have that process to itself: not an API worker
or a job worker that also serves requests and other jobs. Arguments and results are
pickled; this module imports only the solver so that a spawned process starts quickly.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from routing.model import Plan, Problem, RoutingError
from routing.planner import plan as plan_problem
from routing.replan import Replan, replan
from routing.solver import SolverOptions


def solve_in_worker(problem: Problem, cpu_s: float) -> Plan:
    return plan_problem(problem, None, SolverOptions(cpu_s=cpu_s))


def replan_in_worker(
    problem: Problem,
    current: Plan,
    now_s: float,
    done: list[str],
    in_progress: dict[str, str],
    cpu_s: float,
) -> Replan:
    return replan(problem, current, now_s, done, in_progress, None, SolverOptions(cpu_s=cpu_s))


def spawn_pool(max_workers: int = 1) -> ProcessPoolExecutor:
    # spawned, not forked: no copy of the parent's event loop, pool or broker client
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=spawn_context())


def spawn_context() -> Any:
    return multiprocessing.get_context("spawn")


def solve_and_send(conn: Connection, problem: Problem, cpu_s: float) -> None:
    """A one-plan process's body: sends ("ok", plan), ("rejected", why) for a problem the
    solver refuses (retrying cannot help), or ("error", what) for anything else."""
    try:
        msg: tuple[str, Any] = ("ok", solve_in_worker(problem, cpu_s))
    except (RoutingError, ValueError) as exc:
        msg = ("rejected", str(exc))
    except Exception as exc:
        msg = ("error", f"{type(exc).__name__}: {exc}")
    conn.send(msg)
    conn.close()
