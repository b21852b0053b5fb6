"""Geofences: polygons and circles (radius in metres), evaluated in metres.

A fix is judged against a fence with a margin (its GPS accuracy): INSIDE when it is inside
by more than the margin, OUTSIDE when outside by more than the margin, UNCERTAIN in the
band between. Circles use the haversine distance to the centre; polygons are evaluated in
a local equirectangular frame (metres) centred on the fence, accurate to well under 1 %
for fences up to a few hundred kilometres across. The margin is capped at a fraction of
the fence's size so that a small fence can still be entered with a mediocre fix.
Fences crossing the antimeridian are not supported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

import shapely
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from geo.errors import InvalidFence
from geo.geodesy import M_PER_DEG_LAT, haversine_m, m_per_deg_lon
from geo.shapes import POLYGONAL, check_lon_lat, parse_geometry, to_geojson

MAX_RADIUS_M = 100_000.0
CIRCLE_MARGIN_CAP = 0.5  # of the radius
POLYGON_MARGIN_CAP = 0.25  # of sqrt(area)


class Status(IntEnum):
    OUTSIDE = 0
    INSIDE = 1
    UNCERTAIN = 2


FenceKind = Literal["polygon", "circle"]


@dataclass(frozen=True, slots=True)
class Fence:
    """One geofence. For circles `geometry` is the centre point and `radius_m` is set."""

    id: str
    kind: FenceKind
    geometry: BaseGeometry
    radius_m: float | None = None
    name: str = ""
    dwell_s: float | None = None  # None: the engine's default
    account_id: str | None = None
    device_id: str | None = None
    rep_id: str | None = None
    # derived, for polygons: the fence in a local metric frame
    origin: tuple[float, float] = field(default=(0.0, 0.0), compare=False)
    local: BaseGeometry | None = field(default=None, compare=False, repr=False)
    margin_cap_m: float = field(default=0.0, compare=False)

    def to_geojson(self) -> dict[str, Any]:
        return to_geojson(self.geometry)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        if self.kind == "circle":
            assert isinstance(self.geometry, Point) and self.radius_m is not None
            lon, lat = self.geometry.x, self.geometry.y
            dlat = self.radius_m / M_PER_DEG_LAT
            dlon = self.radius_m / max(m_per_deg_lon(min(abs(lat) + dlat, 89.9)), 1.0)
            return (lon - dlon, lat - dlat, lon + dlon, lat + dlat)
        b = self.geometry.bounds
        return (b[0], b[1], b[2], b[3])


def circle_fence(
    fence_id: str,
    lon: float,
    lat: float,
    radius_m: float,
    *,
    name: str = "",
    dwell_s: float | None = None,
    account_id: str | None = None,
    device_id: str | None = None,
    rep_id: str | None = None,
) -> Fence:
    check_lon_lat(lon, lat, "center")
    if not (math.isfinite(radius_m) and 0 < radius_m <= MAX_RADIUS_M):
        raise InvalidFence(
            f"radius_m: must be a positive number of metres up to {MAX_RADIUS_M:.0f}, got {radius_m}",
            field="radius_m",
        )
    if abs(lat) > 89.0:
        raise InvalidFence(
            "center: circles within 1 degree of a pole are not supported", field="center"
        )
    _check_dwell(dwell_s)
    return Fence(
        id=fence_id,
        kind="circle",
        geometry=Point(lon, lat),
        radius_m=float(radius_m),
        name=name,
        dwell_s=dwell_s,
        account_id=account_id,
        device_id=device_id,
        rep_id=rep_id,
        origin=(lon, lat),
        margin_cap_m=CIRCLE_MARGIN_CAP * radius_m,
    )


def polygon_fence(
    fence_id: str,
    geometry: BaseGeometry,
    *,
    name: str = "",
    dwell_s: float | None = None,
    account_id: str | None = None,
    device_id: str | None = None,
    rep_id: str | None = None,
) -> Fence:
    if not isinstance(geometry, Polygon | MultiPolygon) or geometry.is_empty:
        raise InvalidFence(
            "geometry: a polygon fence needs a non-empty (Multi)Polygon", field="geometry"
        )
    if not geometry.is_valid:
        raise InvalidFence(
            f"geometry: invalid polygon: {shapely.is_valid_reason(geometry)}", field="geometry"
        )
    minx, _, maxx, _ = geometry.bounds
    if maxx - minx > 180.0:
        raise InvalidFence(
            "geometry: fences crossing the antimeridian are not supported", field="geometry"
        )
    _check_dwell(dwell_s)
    c = geometry.centroid
    lon0, lat0 = float(c.x), float(c.y)
    kx, ky = float(m_per_deg_lon(lat0)), float(M_PER_DEG_LAT)
    local = shapely.transform(geometry, lambda xy: (xy - (lon0, lat0)) * (kx, ky))
    shapely.prepare(local)
    return Fence(
        id=fence_id,
        kind="polygon",
        geometry=geometry,
        name=name,
        dwell_s=dwell_s,
        account_id=account_id,
        device_id=device_id,
        rep_id=rep_id,
        origin=(lon0, lat0),
        local=local,
        margin_cap_m=POLYGON_MARGIN_CAP * math.sqrt(max(local.area, 0.0)),
    )


def fence_from_geojson(
    fence_id: str,
    obj: Any,
    *,
    radius_m: float | None = None,
    repair: bool = False,
    **links: Any,
) -> Fence:
    """A Point with a radius becomes a circle fence, a (Multi)Polygon a polygon fence."""
    geom = parse_geometry(obj, allowed=("Point", *POLYGONAL), repair=repair)
    if isinstance(geom, Point):
        if radius_m is None:
            raise InvalidFence(
                "radius_m: a circle fence (Point geometry) needs radius_m", field="radius_m"
            )
        return circle_fence(fence_id, geom.x, geom.y, radius_m, **links)
    if radius_m is not None:
        raise InvalidFence("radius_m: only a Point geometry takes a radius", field="radius_m")
    return polygon_fence(fence_id, geom, **links)


def _check_dwell(dwell_s: float | None) -> None:
    if dwell_s is not None and not (math.isfinite(dwell_s) and dwell_s >= 0):
        raise InvalidFence(
            f"dwell_s: must be a non-negative number, got {dwell_s}", field="dwell_s"
        )


def signed_distance_m(fence: Fence, lon: float, lat: float) -> float:
    """Distance from the fence boundary in metres: negative inside, positive outside."""
    if fence.kind == "circle":
        assert isinstance(fence.geometry, Point) and fence.radius_m is not None
        d = float(haversine_m(lon, lat, fence.geometry.x, fence.geometry.y))
        return d - fence.radius_m
    assert fence.local is not None
    lon0, lat0 = fence.origin
    x = (lon - lon0) * float(m_per_deg_lon(lat0))
    y = (lat - lat0) * float(M_PER_DEG_LAT)
    d = float(shapely.distance(fence.local.boundary, Point(x, y)))
    return -d if shapely.contains_xy(fence.local, x, y) else d


def judge(signed_m: float, margin_m: float, cap_m: float) -> Status:
    """INSIDE / OUTSIDE beyond the margin (capped at cap_m), UNCERTAIN within it."""
    m = min(margin_m, cap_m)
    if signed_m < -m or (m == 0 and signed_m < 0):
        return Status.INSIDE
    if signed_m > m:
        return Status.OUTSIDE
    return Status.UNCERTAIN


def fence_status(fence: Fence, lon: float, lat: float, margin_m: float) -> Status:
    """The reference (scalar) judgement of one fix against one fence."""
    return judge(signed_distance_m(fence, lon, lat), margin_m, fence.margin_cap_m)
