"""GeoJSON in and out, with an explicit choice of what to do with invalid input.

`parse_geometry` refuses anything it cannot trust — malformed GeoJSON, empty geometries,
coordinates out of range, NaNs, self-intersections — with an error naming the problem and
where it is; with `repair=True` an invalid polygon is fixed with `make_valid` instead and
only its polygonal part is kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from geo.errors import CoordinateOutOfRange, InvalidGeometry

POLYGONAL = ("Polygon", "MultiPolygon")
_GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)


def check_lon_lat(lon: float, lat: float, field: str = "coordinates") -> None:
    """Raise CoordinateOutOfRange unless (lon, lat) is a finite WGS84 position."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise CoordinateOutOfRange(f"{field}: coordinates must be finite numbers", field=field)
    if not -180.0 <= lon <= 180.0:
        raise CoordinateOutOfRange(
            f"{field}: longitude {lon} out of range [-180, 180]", field=field
        )
    if not -90.0 <= lat <= 90.0:
        raise CoordinateOutOfRange(f"{field}: latitude {lat} out of range [-90, 90]", field=field)


def _check_coords(geom: BaseGeometry, field: str) -> None:
    coords = shapely.get_coordinates(geom)
    for lon, lat in coords:
        check_lon_lat(float(lon), float(lat), field)


def parse_geometry(
    obj: Any,
    *,
    field: str = "geometry",
    allowed: tuple[str, ...] = POLYGONAL,
    repair: bool = False,
) -> BaseGeometry:
    """A GeoJSON geometry object (a mapping) as a valid shapely geometry of an allowed type."""
    if not isinstance(obj, Mapping):
        raise InvalidGeometry(f"{field}: expected a GeoJSON geometry object", field=field)
    gtype = obj.get("type")
    if gtype not in _GEOMETRY_TYPES:
        raise InvalidGeometry(f"{field}: unknown geometry type {gtype!r}", field=field)
    if gtype not in allowed:
        raise InvalidGeometry(
            f"{field}: geometry type {gtype} not allowed here (expected {' or '.join(allowed)})",
            field=field,
        )
    try:
        geom = shape(obj)
    except (ValueError, TypeError, IndexError, AttributeError, KeyError) as exc:
        raise InvalidGeometry(
            f"{field}: malformed {gtype} coordinates ({exc})", field=field
        ) from None
    except shapely.errors.GEOSException as exc:
        raise InvalidGeometry(f"{field}: malformed {gtype} ({exc})", field=field) from None
    if geom.is_empty:
        raise InvalidGeometry(f"{field}: {gtype} is empty", field=field)
    # Territories and fences are drawn on the ground: an altitude is dropped (the 2-D
    # geography columns would refuse it).
    geom = shapely.force_2d(geom)
    _check_coords(geom, field)
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        if not repair:
            raise InvalidGeometry(
                f"{field}: invalid {gtype}: {reason} (pass repair=true to fix it with make_valid)",
                field=field,
            )
        geom = repair_polygonal(geom, field) if gtype in POLYGONAL else shapely.make_valid(geom)
    return geom


def repair_polygonal(geom: BaseGeometry, field: str = "geometry") -> Polygon | MultiPolygon:
    """make_valid, keeping only the polygonal part; an all-degenerate input is refused."""
    fixed = shapely.make_valid(geom)
    polys = list(_polygons(fixed))
    if not polys:
        raise InvalidGeometry(
            f"{field}: polygon is degenerate (no area left after repair)", field=field
        )
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def _polygons(geom: BaseGeometry) -> Iterable[Polygon]:
    if isinstance(geom, Polygon):
        if not geom.is_empty and geom.area > 0:
            yield geom
    elif hasattr(geom, "geoms"):
        for part in geom.geoms:
            yield from _polygons(part)


def as_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    raise InvalidGeometry(f"expected a polygon, got {geom.geom_type}")


def parse_point(obj: Any, field: str = "location") -> Point:
    geom = parse_geometry(obj, field=field, allowed=("Point",))
    assert isinstance(geom, Point)
    return geom


def to_geojson(geom: BaseGeometry) -> dict[str, Any]:
    """A shapely geometry as a plain GeoJSON geometry dict."""
    return dict(mapping(geom))


def feature(geom: BaseGeometry, properties: Mapping[str, Any], fid: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "Feature",
        "geometry": to_geojson(geom),
        "properties": dict(properties),
    }
    if fid is not None:
        out["id"] = fid
    return out


def feature_collection(features: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def parse_features(obj: Any, *, field: str = "features") -> list[tuple[Any, Mapping[str, Any]]]:
    """A FeatureCollection (or a single Feature) as [(geometry mapping, properties)]."""
    if not isinstance(obj, Mapping):
        raise InvalidGeometry(f"{field}: expected a GeoJSON object", field=field)
    if obj.get("type") == "Feature":
        feats: Any = [obj]
    elif obj.get("type") == "FeatureCollection":
        feats = obj.get("features")
        if not isinstance(feats, list):
            raise InvalidGeometry(
                f"{field}: FeatureCollection without a features list", field=field
            )
    else:
        raise InvalidGeometry(
            f"{field}: expected a Feature or FeatureCollection, got {obj.get('type')!r}",
            field=field,
        )
    out: list[tuple[Any, Mapping[str, Any]]] = []
    for i, f in enumerate(feats):
        if not isinstance(f, Mapping) or f.get("type") != "Feature":
            raise InvalidGeometry(f"{field}[{i}]: not a GeoJSON Feature", field=f"{field}[{i}]")
        props = f.get("properties") or {}
        if not isinstance(props, Mapping):
            raise InvalidGeometry(f"{field}[{i}].properties: not an object", field=f"{field}[{i}]")
        out.append((f.get("geometry"), props))
    return out
