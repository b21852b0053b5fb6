"""(lon, lat) in EPSG:4326 to a local east-north-up tangent plane in metres.

Exact on the WGS84 ellipsoid (geodetic -> ECEF -> ENU around an origin); for a territory
of a few hundred kilometres the plane is what a map of the area shows. The scene axes are
glTF's: X east, Y up, Z south (so north is -Z).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_A_M = 6378137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)


def _ecef(
    lon_deg: npt.NDArray[np.float64], lat_deg: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    n = _A_M / np.sqrt(1 - _E2 * np.sin(lat) ** 2)
    return np.stack(
        [n * np.cos(lat) * np.cos(lon), n * np.cos(lat) * np.sin(lon), n * (1 - _E2) * np.sin(lat)],
        axis=-1,
    )


def lonlat_to_east_north_m(
    lonlat: npt.ArrayLike, origin: tuple[float, float]
) -> npt.NDArray[np.float64]:
    """(n, 2) lon/lat degrees -> (n, 2) east/north metres from origin (lon, lat), at height 0."""
    pts = np.asarray(lonlat, np.float64).reshape(-1, 2)
    lon0, lat0 = np.radians(origin[0]), np.radians(origin[1])
    d = _ecef(pts[:, 0], pts[:, 1]) - _ecef(np.array([origin[0]]), np.array([origin[1]]))
    east = -np.sin(lon0) * d[:, 0] + np.cos(lon0) * d[:, 1]
    north = (
        -np.sin(lat0) * np.cos(lon0) * d[:, 0]
        - np.sin(lat0) * np.sin(lon0) * d[:, 1]
        + np.cos(lat0) * d[:, 2]
    )
    return np.stack([east, north], axis=1)


def east_north_to_scene_xz(
    east_north_m: npt.NDArray[np.float64], scale: float
) -> npt.NDArray[np.float32]:
    """East/north metres on the ground -> scene x/z in model metres (z = -north)."""
    out = np.empty_like(east_north_m, dtype=np.float32)
    out[:, 0] = east_north_m[:, 0] * scale
    out[:, 1] = -east_north_m[:, 1] * scale
    return out
