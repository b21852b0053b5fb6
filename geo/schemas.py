"""The typed shapes of the geo HTTP API: GeoJSON geometries, request bodies, responses.

Bodies are decoded into these structs by kernel.http before a handler runs: a wrong type,
a missing member or an unknown geometry type is a 422 naming the JSON path. What a type
cannot say — ranges of longitude and latitude, finite numbers, rings that close, polygons
that do not cross themselves — geo.shapes checks next, naming the same path. Class names
are unique across the API: they are the names of the OpenAPI document's schemas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from telemetry.contracts import DeviceId

Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
# [lon, lat] or [lon, lat, altitude]; ranges are checked by geo.shapes (with the path).
Position = Annotated[
    list[float],
    msgspec.Meta(min_length=2, max_length=3, description="[longitude, latitude(, altitude)]"),
]
Ring = Annotated[list[Position], msgspec.Meta(description="a closed linear ring")]
# Aware times only: a period is compared with stored UTC times.
Time = Annotated[datetime, msgspec.Meta(tz=True)]


class GeoPoint(msgspec.Struct, tag="Point", tag_field="type", frozen=True):
    coordinates: Position


class GeoLineString(msgspec.Struct, tag="LineString", tag_field="type", frozen=True):
    coordinates: list[Position]


class GeoPolygon(msgspec.Struct, tag="Polygon", tag_field="type", frozen=True):
    coordinates: Annotated[list[Ring], msgspec.Meta(min_length=1)]


class GeoMultiPolygon(msgspec.Struct, tag="MultiPolygon", tag_field="type", frozen=True):
    coordinates: Annotated[list[list[Ring]], msgspec.Meta(min_length=1)]


PolygonalGeometry = GeoPolygon | GeoMultiPolygon
FenceGeometry = GeoPoint | GeoPolygon | GeoMultiPolygon
TrackGeometry = GeoLineString | GeoPoint


def as_mapping(geometry: msgspec.Struct) -> dict[str, Any]:
    """A decoded geometry as the GeoJSON mapping geo.shapes reads."""
    out: dict[str, Any] = msgspec.to_builtins(geometry)
    return out


# ------------------------------------------------------------------------ territories


class TerritoryProperties(msgspec.Struct, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    region: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class TerritoryFeatureIn(msgspec.Struct, tag="Feature", tag_field="type", frozen=True):
    geometry: PolygonalGeometry
    properties: TerritoryProperties


class TerritoryCollectionIn(msgspec.Struct, tag="FeatureCollection", tag_field="type", frozen=True):
    features: Annotated[list[TerritoryFeatureIn], msgspec.Meta(min_length=1, max_length=5000)]


TerritoryImport = TerritoryCollectionIn | TerritoryFeatureIn


class TerritoryImportQuery(msgspec.Struct, frozen=True):
    repair: bool = False  # fix invalid polygons with make_valid instead of refusing them
    reassign: bool = False  # then move every account to the territory containing its site


class AssignQuery(msgspec.Struct, frozen=True):
    dry_run: bool = False


class GeoRepairQuery(msgspec.Struct, frozen=True):
    repair: bool = False


class TerritoryOutProperties(msgspec.Struct, frozen=True):
    id: int
    name: str
    region: str | None
    accounts: int


class TerritoryFeatureOut(msgspec.Struct, frozen=True):
    id: int
    geometry: GeoMultiPolygon | None
    properties: TerritoryOutProperties
    type: Literal["Feature"] = "Feature"


class TerritoryCollectionOut(msgspec.Struct, frozen=True):
    features: list[TerritoryFeatureOut]
    type: Literal["FeatureCollection"] = "FeatureCollection"


class TerritorySaved(msgspec.Struct, frozen=True):
    id: int
    name: str
    created: bool


class TerritoryOverlap(msgspec.Struct, frozen=True):
    a: int
    b: int
    area_m2: float


class AccountMove(msgspec.Struct, frozen=True):
    account_id: int
    from_territory: int | None
    to_territory: int | None


class TerritoryImportOut(msgspec.Struct, frozen=True):
    territories: list[TerritorySaved]
    overlaps: list[TerritoryOverlap]
    moved: list[AccountMove]


class TerritoryOverlapsOut(msgspec.Struct, frozen=True):
    overlaps: list[TerritoryOverlap]


class AssignOut(msgspec.Struct, frozen=True):
    dry_run: bool
    moved_count: int
    moved: list[AccountMove]


class TerritoryBalanceRow(msgspec.Struct, frozen=True):
    territory_id: int | None  # None: the accounts in no territory
    name: str
    accounts: int
    revenue: float
    open_work_orders: int


class TerritoryBalanceOut(msgspec.Struct, frozen=True):
    territories: list[TerritoryBalanceRow]
    imbalance: dict[str, float]


class GeoPeriodQuery(msgspec.Struct, frozen=True, rename={"start": "from", "end": "to"}):
    start: Time | None = None  # default: one day before `to`
    end: Time | None = None  # default: now


class TerritoryCoverageRow(msgspec.Struct, frozen=True):
    territory_id: int
    name: str
    accounts: int
    visited_accounts: int
    visits: int
    coverage: float | None


class TerritoryCoverage(msgspec.Struct, frozen=True, rename={"start": "from", "end": "to"}):
    start: datetime
    end: datetime
    territories: list[TerritoryCoverageRow]


# ------------------------------------------------------------------------ geofences


class FenceIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    geometry: FenceGeometry  # a Point (with radius_m) for a circle, else a polygon
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    radius_m: Annotated[float, msgspec.Meta(gt=0, le=100_000)] | None = None
    dwell_s: Annotated[float, msgspec.Meta(ge=0, le=86_400 * 7)] | None = None
    repair: bool = False
    account_id: Id | None = None
    device_id: DeviceId | None = None
    rep_id: Id | None = None


class FenceOut(msgspec.Struct, frozen=True):
    id: int
    name: str
    kind: Literal["polygon", "circle"]
    geometry: FenceGeometry
    radius_m: float | None
    dwell_s: float | None
    account_id: int | None
    device_id: str | None
    rep_id: int | None
    auto: bool
    active: bool


class FenceListQuery(msgspec.Struct, frozen=True):
    account_id: Id | None = None


class FenceList(msgspec.Struct, frozen=True):
    fences: list[FenceOut]


class FencePath(msgspec.Struct, frozen=True):
    fence_id: Id


class SyncFencesIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    radius_m: Annotated[float, msgspec.Meta(gt=0, le=100_000)] = 100.0
    dwell_s: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 600.0


class SyncFencesOut(msgspec.Struct, frozen=True):
    upserted: int
    removed: int


class GeometryCheck(msgspec.Struct, frozen=True):
    valid: bool
    geometry: PolygonalGeometry


# ------------------------------------------------------------------------ history


class GeoSubjectPath(msgspec.Struct, frozen=True):
    subject_id: DeviceId


class TrackProperties(msgspec.Struct, frozen=True, rename={"start": "from", "end": "to"}):
    subject_id: str
    start: datetime
    end: datetime
    fixes: int
    distance_m: float
    times_ms: list[int]


class TrackOut(msgspec.Struct, frozen=True):
    geometry: TrackGeometry
    properties: TrackProperties
    type: Literal["Feature"] = "Feature"


class TrackStop(msgspec.Struct, frozen=True):
    start_ms: int
    end_ms: int
    lon: float
    lat: float
    duration_s: float


class GeoVisit(msgspec.Struct, frozen=True):
    id: int
    account_id: int
    fence_id: int
    rep_id: int | None
    arrived_at: datetime
    departed_at: datetime | None
    duration_s: float | None
    status: Literal["open", "completed"]
    activity_id: int | None


class TrackTimeSpent(msgspec.Struct, frozen=True):
    on_site_s: float
    stopped_s: float
    driving_s: float
    gap_s: float


class TrackSummary(msgspec.Struct, frozen=True, rename={"start": "from", "end": "to"}):
    subject_id: str
    start: datetime
    end: datetime
    fixes: int
    distance_m: float
    stops: list[TrackStop]
    visits: list[GeoVisit]
    time: TrackTimeSpent


class GeoEventOut(msgspec.Struct, frozen=True):
    fence_id: int
    kind: Literal["enter", "exit", "dwell"]
    at: datetime
    lon: float
    lat: float
    account_id: int | None


class GeoEventList(msgspec.Struct, frozen=True):
    subject_id: str
    events: list[GeoEventOut]


class GeoVisitsQuery(msgspec.Struct, frozen=True, rename={"start": "from", "end": "to"}):
    start: Time | None = None
    end: Time | None = None
    subject_id: DeviceId | None = None


class GeoVisitList(msgspec.Struct, frozen=True):
    visits: list[GeoVisit]
