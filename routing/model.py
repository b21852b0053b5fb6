"""The pure routing problem model: what is to be planned and what a plan is.

No I/O and no solver here. Times are seconds (floats) from the problem's `epoch`
(a timezone-aware UTC datetime); distances are metres. Benchmark instances in the
Solomon format use their abstract units through the same fields (one unit = one
"second" or "metre").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


class RoutingError(Exception):
    """Root of every error raised by the routing package."""


class InputError(RoutingError):
    """The planning request itself is wrong (names what and where)."""

    def __init__(self, message: str, field_name: str | None = None) -> None:
        super().__init__(message)
        self.field_name = field_name


class SolverError(RoutingError):
    """The solver found no plan at all (internal or over-constrained)."""


@dataclass(frozen=True, slots=True)
class Location:
    """A place: (lon, lat) in EPSG:4326, or planar (x, y) for benchmark instances."""

    id: str
    lon: float
    lat: float


@dataclass(frozen=True, slots=True)
class TimeWindow:
    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        if self.end_s < self.start_s:
            raise InputError(f"time window ends ({self.end_s}) before it starts ({self.start_s})")

    def contains(self, t_s: float, tolerance_s: float = 0.0) -> bool:
        return self.start_s - tolerance_s <= t_s <= self.end_s + tolerance_s


@dataclass(frozen=True, slots=True)
class Visit:
    """A stop to plan: a periodic account visit, a work order or a follow-up.

    `priority` 1 (lowest) .. 5 (highest) sets the penalty for dropping it; an
    `urgent` visit is never dropped. `time_windows` are allowed service *start*
    windows; empty means any time in the rep's shift.
    """

    id: str
    location_id: str
    service_s: float = 0.0
    time_windows: tuple[TimeWindow, ...] = ()
    skills: frozenset[str] = frozenset()
    priority: int = 3
    urgent: bool = False
    demand: int = 0
    account_id: str | None = None
    work_order_id: str | None = None
    rep_id: str | None = None  # locked to this rep (accepted/locked stop)
    # re-plans: the rep the running plan gave it; serving it with another rep costs a
    # stability cost (small changes to a running plan stay small)
    previous_rep_id: str | None = None
    title: str = ""


@dataclass(frozen=True, slots=True)
class Break:
    """A break of `duration_s` that must lie wholly inside `window`."""

    window: TimeWindow
    duration_s: float


@dataclass(frozen=True, slots=True)
class Rep:
    """A field rep (a vehicle): shift, start and end places, skills, limits."""

    id: str
    start_location_id: str
    end_location_id: str
    shift: TimeWindow
    skills: frozenset[str] = frozenset()
    lunch_break: Break | None = None
    max_working_s: float | None = None
    capacity: int | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class Problem:
    locations: tuple[Location, ...]
    visits: tuple[Visit, ...]
    reps: tuple[Rep, ...]
    epoch: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    minimise_reps: bool = False
    now_s: float | None = None  # visits whose windows close before this are rejected

    def location_index(self) -> dict[str, int]:
        return {loc.id: i for i, loc in enumerate(self.locations)}

    def at(self, t_s: float) -> datetime:
        return self.epoch + timedelta(seconds=t_s)


class DropReason(enum.StrEnum):
    UNKNOWN_LOCATION = "unknown_location"
    LONGER_THAN_ANY_SHIFT = "longer_than_any_shift"
    WINDOW_IN_PAST = "time_window_in_past"
    NO_REP_WITH_SKILLS = "no_rep_with_skills"
    NO_REP = "no_rep_in_territory"
    UNREACHABLE = "unreachable_in_time_window"
    NO_CAPACITY = "no_capacity_left"
    NOT_ENOUGH_TIME = "not_enough_time"


@dataclass(frozen=True, slots=True)
class Issue:
    """Something wrong with the input: which visit or rep, and why."""

    reason: str  # a DropReason value, or another short code
    message: str
    visit_id: str | None = None
    rep_id: str | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    visit_id: str
    location_id: str
    arrival_s: float  # ETA
    service_start_s: float
    service_end_s: float
    wait_s: float
    slack_s: float  # how much later service could start without breaking the rest of the route
    travel_s: float  # of the leg arriving here
    distance_m: float  # of the leg arriving here


@dataclass(frozen=True, slots=True)
class BreakSlot:
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class Route:
    rep_id: str
    start_s: float
    end_s: float
    stops: tuple[Stop, ...]
    end_travel_s: float
    end_distance_m: float
    lunch_break: BreakSlot | None = None

    @property
    def distance_m(self) -> float:
        return sum(s.distance_m for s in self.stops) + self.end_distance_m

    @property
    def travel_s(self) -> float:
        return sum(s.travel_s for s in self.stops) + self.end_travel_s

    @property
    def visit_ids(self) -> list[str]:
        return [s.visit_id for s in self.stops]


@dataclass(frozen=True, slots=True)
class Dropped:
    visit_id: str
    reason: str  # a DropReason value, or another short code
    message: str


@dataclass(frozen=True, slots=True)
class Plan:
    routes: tuple[Route, ...]
    dropped: tuple[Dropped, ...]
    issues: tuple[Issue, ...] = ()
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def used_routes(self) -> list[Route]:
        return [r for r in self.routes if r.stops]

    @property
    def distance_m(self) -> float:
        return sum(r.distance_m for r in self.used_routes)

    @property
    def travel_s(self) -> float:
        return sum(r.travel_s for r in self.used_routes)
