"""Visits from geofence events: a dwell at an account's site fence is a check-in, the
exit that follows a check-out. Pure: events and a fence -> account map in, actions out.

A site fence's `dwell_s` is the visit threshold (N minutes): a stay shorter than that is
not a visit (a rep passing, parking next door), whatever its enter/exit events say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from geo.engine import EventKind, GeoEvent


@dataclass(frozen=True, slots=True)
class CheckIn:
    subject_id: str
    fence_id: str
    account_id: int
    arrived_ms: int
    checked_in_ms: int


@dataclass(frozen=True, slots=True)
class CheckOut:
    subject_id: str
    fence_id: str
    account_id: int
    arrived_ms: int
    departed_ms: int

    @property
    def duration_s(self) -> float:
        return (self.departed_ms - self.arrived_ms) / 1000.0


VisitAction = CheckIn | CheckOut


def visit_actions(
    events: Iterable[GeoEvent], account_of: Mapping[str, int | None]
) -> list[VisitAction]:
    """Check-ins for dwells and check-outs for exits at account site fences, in order.

    A check-out is produced for every exit that follows a dwell (the exit carries the
    stay's start); whether a matching check-in exists is for the store to decide, so
    a check-in persisted before a restart is still closed by the exit after it.
    """
    out: list[VisitAction] = []
    for e in events:
        account = account_of.get(e.fence_id)
        if account is None or e.entered_ms is None:
            continue
        if e.kind == EventKind.DWELL:
            out.append(CheckIn(e.subject_id, e.fence_id, account, e.entered_ms, e.at_ms))
        elif e.kind == EventKind.EXIT:
            out.append(CheckOut(e.subject_id, e.fence_id, account, e.entered_ms, e.at_ms))
    return out
