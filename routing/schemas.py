"""The typed shapes of the routing HTTP API: planning requests, plans, stops, re-plans.

Bodies are decoded into these structs before a handler runs (a wrong type is a 422 naming
the field: `"minimise_reps": "false"` is refused, not read as true). Class names are
unique across the API: they name the OpenAPI document's schemas.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any, Literal

import msgspec

Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
LocalTime = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
        description="HH:MM or HH:MM:SS, in each rep's own time zone",
    ),
]
VisitKey = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(account|wo):[1-9][0-9]{0,18}$",
        description="a visit: account:<account id> or wo:<work order id>",
    ),
]
RepKey = Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]{0,18}$", description="a rep's id")]
CpuSeconds = Annotated[float, msgspec.Meta(gt=0, le=600, description="solver CPU budget")]


class PlanLunch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    start: LocalTime = "11:30"
    end: LocalTime = "14:00"
    duration_min: Annotated[float, msgspec.Meta(ge=0, le=600)] = 30.0

    @property
    def start_time(self) -> time:
        return time.fromisoformat(self.start)

    @property
    def end_time(self) -> time:
        return time.fromisoformat(self.end)


class PlanCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A territory's day to plan. Give `territory_id`, or `territory_ids` to plan several
    territories' reps and visits together."""

    date: date
    territory_id: Id | None = None
    territory_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=50)] | None = None
    cpu_s: CpuSeconds = 5.0
    minimise_reps: bool = False
    account_visit_min: Annotated[float, msgspec.Meta(gt=0, le=1440)] = 30.0
    # null: no lunch break
    lunch: PlanLunch | None = msgspec.field(default_factory=PlanLunch)
    max_working_h: Annotated[float, msgspec.Meta(gt=0, le=24)] | None = None
    include_due_accounts: bool = True
    now: AwareTime | None = None


class PlanCreated(msgspec.Struct, frozen=True):
    id: int
    status: Literal["solving"]
    href: str


class PlanPath(msgspec.Struct, frozen=True):
    plan_id: Id


class PlanStopPath(msgspec.Struct, frozen=True):
    plan_id: Id
    visit_key: VisitKey


class PlanRepPath(msgspec.Struct, frozen=True):
    plan_id: Id
    rep_id: Id


class PlanGeoJsonQuery(msgspec.Struct, frozen=True):
    rep_id: Id | None = None


class PlanStop(msgspec.Struct, frozen=True):
    visit_key: str
    rep_id: int | None
    seq: int
    account_id: int | None
    work_order_id: int | None
    eta: datetime
    service_start: datetime
    service_end: datetime
    wait_s: float
    slack_s: float
    travel_s: float
    distance_m: float
    locked: bool
    accepted_at: datetime | None


class PlanLunchSlot(msgspec.Struct, frozen=True):
    start_s: float
    end_s: float


class PlanRoute(msgspec.Struct, frozen=True):
    rep_id: str
    stops: list[PlanStop]
    distance_m: float | None = None
    travel_s: float | None = None
    lunch_break: PlanLunchSlot | None = None


class PlanDropped(msgspec.Struct, frozen=True):
    visit_key: str
    reason: str
    message: str


class PlanIssue(msgspec.Struct, frozen=True):
    reason: str
    message: str
    visit_id: str | None
    rep_id: str | None


class PlanOut(msgspec.Struct, frozen=True):
    id: int
    territory_id: int | None
    date: date
    status: Literal["solving", "ready", "failed"]
    error: str | None
    cpu_s: float | None
    routes: list[PlanRoute]
    dropped: list[PlanDropped]
    issues: list[PlanIssue]


class PlanStopPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    locked: bool | None = None
    accepted: bool | None = None


class PlanStopPatched(msgspec.Struct, frozen=True):
    visit_key: str
    rep_id: int | None
    seq: int
    locked: bool
    accepted_at: datetime | None


class Replan(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Visits done or under way stay where they are; the rest of the day is planned anew.
    The answer waits for the solver: its budget is at most 10 CPU seconds."""

    now: AwareTime | None = None  # default: now
    done: Annotated[list[VisitKey], msgspec.Meta(max_length=10_000)] = msgspec.field(
        default_factory=list
    )
    in_progress: dict[RepKey, VisitKey] = msgspec.field(default_factory=dict)
    cpu_s: Annotated[float, msgspec.Meta(gt=0, le=10, description="solver CPU budget")] = 2.0


class ReplanChange(msgspec.Struct, frozen=True):
    rep_id: str
    changed: bool
    before: list[str]
    after: list[str]
    added: list[str]
    removed: list[str]


class ReplanOut(msgspec.Struct, frozen=True):
    id: int
    replanned_from: int
    changes: list[ReplanChange]
    fixed: dict[str, list[str]]
    dropped: list[PlanDropped]


class PlanFeatureGeometry(msgspec.Struct, frozen=True):
    type: Literal["LineString", "Point"]
    coordinates: list[Any]  # [lon, lat] for a Point, a list of them for a LineString


class PlanFeature(msgspec.Struct, frozen=True):
    """A route (LineString), a stop or a dropped visit (Point); `properties.kind` says which."""

    geometry: PlanFeatureGeometry
    properties: dict[str, str | int | float]
    type: Literal["Feature"] = "Feature"


class PlanGeoJson(msgspec.Struct, frozen=True):
    features: list[PlanFeature]
    type: Literal["FeatureCollection"] = "FeatureCollection"
