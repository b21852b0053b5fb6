"""Location history: tracks, distance travelled, stops and where the time went. Pure.

A track is a time-ordered list of (t_ms, lon, lat). Distances are geodesic on WGS84.
Stops are stay points: consecutive fixes within `stop_radius_m` of where the stop began
for at least `min_stop_s`. Time between two fixes is counted as a gap (no data) when
they are more than `max_gap_s` apart; otherwise it goes to `on_site` when both fixes lie
in a visit, to `stopped` when both lie in a stop off site, and to `driving` otherwise.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from geo.geodesy import geodesic_length_m, haversine_m

Point3 = tuple[int, float, float]


@dataclass(frozen=True, slots=True)
class Stop:
    start_ms: int
    end_ms: int
    lon: float
    lat: float
    fixes: int

    @property
    def duration_s(self) -> float:
        return (self.end_ms - self.start_ms) / 1000.0


@dataclass(frozen=True, slots=True)
class TimeBudget:
    on_site_s: float
    stopped_s: float
    driving_s: float
    gap_s: float


def track_geojson(points: Sequence[Point3]) -> dict[str, Any]:
    """A LineString of the track (a Point for one fix; an empty LineString for none)."""
    coords = [[lon, lat] for _, lon, lat in points]
    if len(coords) == 1:
        return {"type": "Point", "coordinates": coords[0]}
    return {"type": "LineString", "coordinates": coords}


def distance_m(points: Sequence[Point3]) -> float:
    return geodesic_length_m([(lon, lat) for _, lon, lat in points])


def detect_stops(
    points: Sequence[Point3], stop_radius_m: float = 50.0, min_stop_s: float = 180.0
) -> list[Stop]:
    stops: list[Stop] = []
    i, n = 0, len(points)
    while i < n:
        t0, lon0, lat0 = points[i]
        j = i + 1
        while j < n and float(haversine_m(lon0, lat0, points[j][1], points[j][2])) <= stop_radius_m:
            j += 1
        t_end = points[j - 1][0]
        if (t_end - t0) / 1000.0 >= min_stop_s:
            seg = points[i:j]
            stops.append(
                Stop(
                    t0,
                    t_end,
                    sum(p[1] for p in seg) / len(seg),
                    sum(p[2] for p in seg) / len(seg),
                    len(seg),
                )
            )
            i = j
        else:
            i += 1
    return stops


def _within(t: int, intervals: Sequence[tuple[int, int]]) -> bool:
    return any(a <= t <= b for a, b in intervals)


def time_budget(
    points: Sequence[Point3],
    stops: Sequence[Stop],
    visits: Sequence[tuple[int, int]],
    max_gap_s: float = 600.0,
) -> TimeBudget:
    on_site = stopped = driving = gap = 0.0
    stop_iv = [(s.start_ms, s.end_ms) for s in stops]
    for (ta, _, _), (tb, _, _) in itertools.pairwise(points):
        dt = (tb - ta) / 1000.0
        if dt > max_gap_s:
            gap += dt
        elif _within(ta, visits) and _within(tb, visits):
            on_site += dt
        elif _within(ta, stop_iv) and _within(tb, stop_iv):
            stopped += dt
        else:
            driving += dt
    return TimeBudget(on_site, stopped, driving, gap)
