"""Distances in metres, never in degrees: haversine (vectorised) and the WGS84 ellipsoid.

Haversine on the mean Earth radius is within 0.5 % of the ellipsoid, which is what live
geofence tests need (a few metres on a 100 m fence); track lengths and areas use pyproj's
geodesic on WGS84.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

EARTH_RADIUS_M = 6_371_008.8
M_PER_DEG_LAT = np.pi * EARTH_RADIUS_M / 180.0

FloatArray = npt.NDArray[np.float64]


def haversine_m(lon1: Any, lat1: Any, lon2: Any, lat2: Any) -> Any:
    """Great-circle distance in metres; scalars or numpy arrays (broadcasting)."""
    lon1r, lat1r, lon2r, lat2r = (np.radians(v) for v in (lon1, lat1, lon2, lat2))
    dlat = lat2r - lat1r
    dlon = lon2r - lon1r
    a = np.sin(dlat * 0.5) ** 2 + np.cos(lat1r) * np.cos(lat2r) * np.sin(dlon * 0.5) ** 2
    return 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def m_per_deg_lon(lat: Any) -> Any:
    """Metres per degree of longitude at a latitude (equirectangular scale)."""
    return M_PER_DEG_LAT * np.cos(np.radians(lat))


def deg_margin(margin_m: float, lat: float) -> tuple[float, float]:
    """A conservative (dlon, dlat) in degrees covering `margin_m` metres near `lat`."""
    coslat = max(float(np.cos(np.radians(min(abs(lat), 89.0)))), 1e-6)
    return margin_m / (M_PER_DEG_LAT * coslat), margin_m / M_PER_DEG_LAT


def geodesic_length_m(coords: Sequence[tuple[float, float]]) -> float:
    """Length of a (lon, lat) polyline on the WGS84 ellipsoid, in metres."""
    if len(coords) < 2:
        return 0.0
    from pyproj import Geod

    lons = [c[0] for c in coords]
    lats = [c[1] for c in coords]
    return float(Geod(ellps="WGS84").line_length(lons, lats))


def geodesic_area_m2(geom: Any) -> float:
    """Area of a shapely (multi)polygon in (lon, lat) on the WGS84 ellipsoid, in m²."""
    from pyproj import Geod

    area, _ = Geod(ellps="WGS84").geometry_area_perimeter(geom)
    return abs(float(area))
