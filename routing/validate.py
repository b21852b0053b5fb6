"""Bad input: find what cannot be planned, say why (naming the visit or rep), keep the rest.

Pure: a Problem (and its location matrices) in, a cleaned Problem plus issues and
pre-dropped visits out. Structural errors that make the whole request meaningless
(duplicate ids) raise InputError; everything else becomes an Issue and the plan
goes ahead for what is left.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from routing.matrix import Matrices
from routing.model import (
    Dropped,
    DropReason,
    InputError,
    Issue,
    Problem,
    Rep,
    TimeWindow,
    Visit,
)


@dataclass(frozen=True, slots=True)
class Validated:
    problem: Problem  # only plannable visits and usable reps
    issues: tuple[Issue, ...]
    dropped: tuple[Dropped, ...]


def _duplicates(ids: list[str]) -> list[str]:
    return sorted(k for k, n in Counter(ids).items() if n > 1)


def check_structure(problem: Problem) -> None:
    """Raise InputError for requests that cannot be read at all."""
    for what, ids in (
        ("location", [loc.id for loc in problem.locations]),
        ("visit", [v.id for v in problem.visits]),
        ("rep", [r.id for r in problem.reps]),
    ):
        dup = _duplicates(ids)
        if dup:
            raise InputError(f"duplicate {what} ids: {dup[:5]}", f"{what}s")
    for v in problem.visits:
        if v.service_s < 0:
            raise InputError(
                f"visit {v.id} has a negative service time", f"visits[{v.id}].service_s"
            )
        if v.demand < 0:
            raise InputError(f"visit {v.id} has a negative demand", f"visits[{v.id}].demand")
    for r in problem.reps:
        if r.capacity is not None and r.capacity < 0:
            raise InputError(f"rep {r.id} has a negative capacity", f"reps[{r.id}].capacity")


def _drop(visit: Visit, reason: DropReason, message: str) -> tuple[Issue, Dropped]:
    return Issue(reason, message, visit_id=visit.id), Dropped(visit.id, reason, message)


def validate(problem: Problem, matrices: Matrices | None = None) -> Validated:
    """Split the problem into what can be planned and what cannot, with reasons."""
    check_structure(problem)
    loc = problem.location_index()
    issues: list[Issue] = []
    dropped: list[Dropped] = []

    reps: list[Rep] = []
    for r in problem.reps:
        missing = [x for x in (r.start_location_id, r.end_location_id) if x not in loc]
        if missing:
            issues.append(
                Issue(
                    DropReason.UNKNOWN_LOCATION,
                    f"rep {r.id} starts or ends at unknown location {missing[0]}",
                    rep_id=r.id,
                )
            )
            continue
        if r.shift.end_s <= r.shift.start_s:
            issues.append(Issue("empty_shift", f"rep {r.id} has an empty shift", rep_id=r.id))
            continue
        if problem.now_s is not None and r.shift.end_s <= problem.now_s:
            issues.append(Issue("shift_over", f"rep {r.id}'s shift is already over", rep_id=r.id))
            continue
        if problem.now_s is not None and r.shift.start_s < problem.now_s:
            r = replace(r, shift=TimeWindow(problem.now_s, r.shift.end_s))
        reps.append(r)
    rep_ids = {r.id for r in reps}

    def working_s(r: Rep) -> float:
        span = r.shift.end_s - r.shift.start_s
        if r.max_working_s is not None:
            span = min(span, r.max_working_s)
        if r.lunch_break is not None:
            span -= r.lunch_break.duration_s
        return span

    longest = max((working_s(r) for r in reps), default=0.0)
    earliest_start = min((r.shift.start_s for r in reps), default=0.0)
    kept: list[Visit] = []
    for v in problem.visits:
        if v.location_id not in loc:
            i, d = _drop(
                v,
                DropReason.UNKNOWN_LOCATION,
                f"visit {v.id} is at unknown location {v.location_id}",
            )
        elif not reps:
            i, d = _drop(
                v, DropReason.NO_REP, f"visit {v.id}: no rep is available in this territory"
            )
        elif v.rep_id is not None and v.rep_id not in rep_ids:
            i, d = _drop(
                v,
                DropReason.NO_REP,
                f"visit {v.id} is locked to rep {v.rep_id}, who is not available",
            )
        elif not any(v.skills <= r.skills for r in reps):
            i, d = _drop(
                v,
                DropReason.NO_REP_WITH_SKILLS,
                f"visit {v.id} needs skills {sorted(v.skills)} that no available rep has",
            )
        elif v.service_s > longest:
            i, d = _drop(
                v,
                DropReason.LONGER_THAN_ANY_SHIFT,
                f"visit {v.id} takes {v.service_s / 3600:.1f} h, longer than any rep's working day ({longest / 3600:.1f} h)",
            )
        else:
            windows = v.time_windows
            # "The past": before now, or before any rep's shift starts.
            now = problem.now_s if problem.now_s is not None else earliest_start
            if windows:
                windows = tuple(
                    TimeWindow(max(w.start_s, now), w.end_s) for w in windows if w.end_s >= now
                )
                if not windows:
                    i, d = _drop(
                        v,
                        DropReason.WINDOW_IN_PAST,
                        f"visit {v.id}: every time window has already closed",
                    )
                    issues.append(i)
                    dropped.append(d)
                    continue
            if (
                matrices is not None
                and windows
                and not _reachable(problem, reps, v, windows, matrices, loc)
            ):
                i, d = _drop(
                    v,
                    DropReason.UNREACHABLE,
                    f"visit {v.id}: no rep can get there (and back) within its time windows",
                )
            else:
                kept.append(replace(v, time_windows=windows))
                continue
        issues.append(i)
        dropped.append(d)
    if not reps:
        issues.append(
            Issue(
                DropReason.NO_REP,
                "no rep is available to plan (empty territory or all shifts over)",
            )
        )
    return Validated(
        replace(problem, visits=tuple(kept), reps=tuple(reps)), tuple(issues), tuple(dropped)
    )


def _reachable(
    problem: Problem,
    reps: list[Rep],
    v: Visit,
    windows: tuple[TimeWindow, ...],
    m: Matrices,
    loc: dict[str, int],
) -> bool:
    j = loc[v.location_id]
    for r in reps:
        if (v.rep_id is not None and v.rep_id != r.id) or not v.skills <= r.skills:
            continue
        there = r.shift.start_s + float(m.duration_s[loc[r.start_location_id], j])
        for w in windows:
            start = max(there, w.start_s)
            back = start + v.service_s + float(m.duration_s[j, loc[r.end_location_id]])
            if start <= w.end_s and back <= r.shift.end_s:
                return True
    return False
