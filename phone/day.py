"""The rep's day, pure: every stop of the rep's route in the plan's order -- work orders and
periodic account visits alike -- then the rep's assigned work orders the plan does not
carry (new since it was solved), by scheduled start then SLA.

The list once showed only the work orders *assigned* to the rep, so a plan of nine stops
(account visits and work orders the planner gave the rep) showed one. The plan decides what
the rep does today; assignment only adds what the plan has not seen yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

WO_TYPES = ("service", "repair", "installation", "inspection")


@dataclass(frozen=True, slots=True)
class PlannedStop:
    visit_key: str
    seq: int
    account_id: int | None
    work_order_id: int | None
    eta: datetime
    service_end: datetime


@dataclass(frozen=True, slots=True)
class Assigned:
    work_order_id: int
    account_id: int
    scheduled_start: datetime | None
    sla_due_at: datetime | None


@dataclass(slots=True)
class DayStop:
    key: str  # 'wo:<id>' or 'acct:<id>': stable across re-plans
    account_id: int
    work_order_id: int | None
    seq: int | None  # in the plan; None: not planned
    eta: datetime | None
    extra: dict[str, Any] = field(default_factory=dict)


def stop_key(account_id: int, work_order_id: int | None) -> str:
    return f"wo:{work_order_id}" if work_order_id is not None else f"acct:{account_id}"


def merge_day(planned: list[PlannedStop], assigned: list[Assigned]) -> list[DayStop]:
    out: list[DayStop] = []
    seen: set[str] = set()
    for p in sorted(planned, key=lambda s: s.seq):
        if p.account_id is None:
            continue  # a depot or break: nothing to do there
        key = stop_key(p.account_id, p.work_order_id)
        if key in seen:
            continue
        seen.add(key)
        out.append(DayStop(key, p.account_id, p.work_order_id, p.seq, p.eta))
    far = datetime.max.replace(tzinfo=None)

    def order(a: Assigned) -> tuple[datetime, datetime, int]:
        s = a.scheduled_start.replace(tzinfo=None) if a.scheduled_start else far
        d = a.sla_due_at.replace(tzinfo=None) if a.sla_due_at else far
        return (s, d, a.work_order_id)

    for a in sorted(assigned, key=order):
        key = stop_key(a.account_id, a.work_order_id)
        if key not in seen:
            seen.add(key)
            out.append(DayStop(key, a.account_id, a.work_order_id, None, None))
    return out


def work_order_type(source: str, custom: dict[str, Any]) -> str:
    """The work order's type for its checklist: `custom.type` when it is one of WO_TYPES,
    a repair when an alert raised it, else a service."""
    t = custom.get("type") if isinstance(custom, dict) else None
    if isinstance(t, str) and t in WO_TYPES:
        return t
    return "repair" if source == "alert" else "service"


def time_spent_s(checkin: datetime | None, checkout: datetime | None) -> float | None:
    if checkin is None or checkout is None or checkout < checkin:
        return None
    return (checkout - checkin).total_seconds()
