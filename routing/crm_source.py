"""From CRM rows to a routing Problem (pure): reps, accounts due a visit, open work orders.

Rows are plain mappings as read by routing.store from the CRM tables (`users`,
`accounts`, `work_orders`; see crm/migrations/c0001_crm_core.py). Times become seconds
from midnight UTC of the plan date (the Problem's epoch).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from routing.model import Break, InputError, Location, Problem, Rep, TimeWindow, Visit

Row = Mapping[str, Any]

WORK_ORDER_PRIORITY = {"low": 1, "normal": 3, "high": 4, "urgent": 5}
ACCOUNT_VISIT_PRIORITY = 2


@dataclass(frozen=True, slots=True)
class PlanRequest:
    territory_ids: tuple[int, ...]  # more than one only when a manager plans across territories
    plan_date: date
    cpu_s: float = 10.0
    minimise_reps: bool = False
    account_visit_min: float = 30.0
    lunch_start: time | None = time(11, 30)
    lunch_end: time = time(14, 0)
    lunch_min: float = 30.0
    max_working_h: float | None = None
    include_due_accounts: bool = True
    now: datetime | None = None

    def __post_init__(self) -> None:
        if not self.territory_ids:
            raise InputError("at least one territory is needed", "territory_id")
        if not 0 < self.cpu_s <= 600:
            raise InputError("cpu_s must be in (0, 600]", "cpu_s")
        if self.account_visit_min <= 0:
            raise InputError("account_visit_min must be positive", "account_visit_min")

    @property
    def epoch(self) -> datetime:
        return datetime.combine(self.plan_date, time(0), tzinfo=UTC)


def _point(value: Any) -> tuple[float, float] | None:
    """(lon, lat) from a row value: a (lon, lat) pair or None."""
    if value is None:
        return None
    lon, lat = value
    return float(lon), float(lat)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _local_s(req: PlanRequest, t: time, zone: ZoneInfo) -> float:
    return (datetime.combine(req.plan_date, t, tzinfo=zone) - req.epoch).total_seconds()


def _ts(req: PlanRequest, value: Any) -> float | None:
    if value is None:
        return None
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - req.epoch).total_seconds()


def account_visit_key(account_id: int) -> str:
    return f"account:{account_id}"


def work_order_key(work_order_id: int) -> str:
    return f"wo:{work_order_id}"


def build_problem(
    req: PlanRequest,
    reps: Iterable[Row],
    due_accounts: Iterable[Row],
    work_orders: Iterable[Row],
    locked: Mapping[str, str] | None = None,
) -> Problem:
    """reps: id, name, skills, home (lon, lat), shift_start, shift_end, timezone.
    due_accounts: id, name, location (lon, lat).
    work_orders: id, account_id, account_name, location, title, priority, sla_due_at,
    required_skills, estimated_duration_min, earliest_start, latest_end, time_windows.
    `locked` maps visit keys to the rep id they are locked to (accepted/locked stops)."""
    locked = locked or {}
    locations: dict[str, Location] = {}
    rep_list: list[Rep] = []
    for r in reps:
        rid = str(r["id"])
        home = _point(r.get("home"))
        loc_id = f"home:{rid}"
        if home is not None:
            locations[loc_id] = Location(loc_id, *home)
        zone = _zone(r.get("timezone"))
        start = _local_s(req, r["shift_start"], zone)
        end = _local_s(req, r["shift_end"], zone)
        if end <= start:
            end += 86_400  # a shift across midnight
        lunch = None
        if req.lunch_start is not None:
            window = TimeWindow(
                _local_s(req, req.lunch_start, zone), _local_s(req, req.lunch_end, zone)
            )
            if window.start_s >= start and window.end_s <= end:
                lunch = Break(window, req.lunch_min * 60)
        rep_list.append(
            Rep(
                id=rid,
                start_location_id=loc_id,  # unknown when the rep has no home: validation names them
                end_location_id=loc_id,
                shift=TimeWindow(start, end),
                skills=frozenset(r.get("skills") or ()),
                lunch_break=lunch,
                max_working_s=req.max_working_h * 3600 if req.max_working_h else None,
                name=str(r.get("name") or ""),
            )
        )
    visits: list[Visit] = []
    if req.include_due_accounts:
        for a in due_accounts:
            loc_id = f"account:{a['id']}"
            point = _point(a.get("location"))
            if point is not None:
                locations[loc_id] = Location(loc_id, *point)
            key = account_visit_key(int(a["id"]))
            visits.append(
                Visit(
                    id=key,
                    location_id=loc_id,
                    service_s=req.account_visit_min * 60,
                    priority=ACCOUNT_VISIT_PRIORITY,
                    account_id=str(a["id"]),
                    rep_id=locked.get(key),
                    title=f"Periodic visit: {a.get('name') or a['id']}",
                )
            )
    for w in work_orders:
        loc_id = f"account:{w['account_id']}"
        point = _point(w.get("location"))
        if point is not None:
            locations[loc_id] = Location(loc_id, *point)
        windows = _work_order_windows(req, w)
        key = work_order_key(int(w["id"]))
        visits.append(
            Visit(
                id=key,
                location_id=loc_id,
                service_s=float(w.get("estimated_duration_min") or 60) * 60,
                time_windows=windows,
                skills=frozenset(w.get("required_skills") or ()),
                priority=WORK_ORDER_PRIORITY.get(str(w.get("priority")), 3),
                urgent=w.get("priority") == "urgent",
                account_id=str(w["account_id"]),
                work_order_id=str(w["id"]),
                rep_id=locked.get(key),
                title=f"{w.get('title') or 'Work order'} ({w.get('account_name') or w['account_id']})",
            )
        )
    now_s = _ts(req, req.now) if req.now is not None else None
    return Problem(
        locations=tuple(locations.values()),
        visits=tuple(visits),
        reps=tuple(rep_list),
        epoch=req.epoch,
        minimise_reps=req.minimise_reps,
        now_s=now_s,
    )


def _work_order_windows(req: PlanRequest, w: Row) -> tuple[TimeWindow, ...]:
    """Service-start windows: the explicit windows (or earliest/latest bounds), cut by the SLA.

    Windows are for the service *start*; latest_end and the SLA bound the end, so the
    duration is taken off them.
    """
    duration_s = float(w.get("estimated_duration_min") or 60) * 60
    lo = _ts(req, w.get("earliest_start"))
    hi_end = _ts(req, w.get("latest_end"))
    sla = _ts(req, w.get("sla_due_at"))
    if sla is not None:
        hi_end = sla if hi_end is None else min(hi_end, sla)
    raw = [
        (_ts(req, tw.get("start")), _ts(req, tw.get("end"))) for tw in (w.get("time_windows") or [])
    ]
    if not raw:
        raw = [(None, None)] if lo is not None or hi_end is not None else []
    out = []
    for a, b in raw:
        start = max(x for x in (a, lo, -1e12) if x is not None)
        end = min(x for x in (b, hi_end, 1e12) if x is not None) - duration_s
        if start <= end:
            out.append(TimeWindow(start, end))
    if raw and not out:
        # Nothing is left of the windows (the SLA passed, or it ends before the work
        # could): a closed window in the past, which validation reports by its id.
        return (TimeWindow(-1e9, -1e9),)
    return tuple(out)
