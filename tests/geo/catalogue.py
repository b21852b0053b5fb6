"""One catalogue of test geometries (GeoJSON), good and bad, shared by the geo tests.

Named for what they are, in the spirit of shapely's tests/common.py: valid shapes,
degenerate and empty ones, self-intersecting ones, out-of-range ones.
"""

from __future__ import annotations

from typing import Any

from geo.geodesy import M_PER_DEG_LAT, m_per_deg_lon

# A site in Amsterdam; every scripted track is laid out around it in metres.
SITE_LON = 4.9
SITE_LAT = 52.37


def offset(
    east_m: float, north_m: float, lon0: float = SITE_LON, lat0: float = SITE_LAT
) -> tuple[float, float]:
    """(lon, lat) of a point east_m / north_m metres from (lon0, lat0)."""
    return lon0 + east_m / float(m_per_deg_lon(lat0)), lat0 + north_m / M_PER_DEG_LAT


def square_m(cx_m: float, cy_m: float, half_m: float) -> dict[str, Any]:
    """A square polygon (GeoJSON) centred cx_m/cy_m metres from the site, half-side half_m."""
    ring = [
        offset(cx_m - half_m, cy_m - half_m),
        offset(cx_m + half_m, cy_m - half_m),
        offset(cx_m + half_m, cy_m + half_m),
        offset(cx_m - half_m, cy_m + half_m),
    ]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


UNIT_SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
SQUARE_WITH_HOLE = {
    "type": "Polygon",
    "coordinates": [
        [[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]],
        [[1, 1], [1, 3], [3, 3], [3, 1], [1, 1]],
    ],
}
TWO_SQUARES = {
    "type": "MultiPolygon",
    "coordinates": [
        [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]],
        [[[2, 2], [3, 2], [3, 3], [2, 3], [2, 2]]],
    ],
}
BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}
SPIKE = {
    "type": "Polygon",
    "coordinates": [[[0, 0], [2, 0], [2, 2], [2, 3], [2, 2], [0, 2], [0, 0]]],
}
ZERO_AREA = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}
EMPTY_POLYGON = {"type": "Polygon", "coordinates": []}
UNCLOSED_TOO_SHORT = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0]]]}
LON_OUT_OF_RANGE = {
    "type": "Polygon",
    "coordinates": [[[170, 0], [190, 0], [190, 1], [170, 1], [170, 0]]],
}
LAT_OUT_OF_RANGE = {
    "type": "Polygon",
    "coordinates": [[[0, 80], [1, 80], [1, 95], [0, 95], [0, 80]]],
}
NAN_COORDINATE = {"type": "Polygon", "coordinates": [[[0, 0], [float("nan"), 0], [1, 1], [0, 0]]]}
POINT = {"type": "Point", "coordinates": [SITE_LON, SITE_LAT]}
LINE = {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}
NOT_GEOJSON = {"type": "Circle", "coordinates": [0, 0]}

VALID_POLYGONS = {
    "unit_square": UNIT_SQUARE,
    "square_with_hole": SQUARE_WITH_HOLE,
    "two_squares": TWO_SQUARES,
}
SELF_INTERSECTING = {"bowtie": BOWTIE, "spike": SPIKE}
DEGENERATE = {"zero_area": ZERO_AREA, "empty": EMPTY_POLYGON, "too_short": UNCLOSED_TOO_SHORT}
OUT_OF_RANGE = {"lon": LON_OUT_OF_RANGE, "lat": LAT_OUT_OF_RANGE, "nan": NAN_COORDINATE}
