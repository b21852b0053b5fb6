"""Reps' movements: drive from site to site at road speeds, stay a while at each."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

EARTH_RADIUS_M = 6_371_008.8
ROAD_FACTOR = 1.3  # roads are longer than the straight line


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(y, x)) + 360.0) % 360.0


@dataclass(frozen=True, slots=True)
class Leg:
    t0_s: float
    t1_s: float
    start: tuple[float, float]
    end: tuple[float, float]  # equal to start for a stay

    @property
    def is_stay(self) -> bool:
        return self.start == self.end


@dataclass(frozen=True, slots=True)
class Track:
    legs: tuple[Leg, ...]

    def at(self, t_s: float) -> tuple[float, float, float, float]:
        """(lon, lat, speed_mps, heading_deg) at time t; before/after the track: its ends."""
        starts = [leg.t0_s for leg in self.legs]
        i = max(0, bisect.bisect_right(starts, t_s) - 1)
        leg = self.legs[i]
        if leg.is_stay or t_s >= leg.t1_s:
            lon, lat = leg.end if t_s >= leg.t1_s else leg.start
            return lon, lat, 0.0, 0.0
        f = max(0.0, (t_s - leg.t0_s) / (leg.t1_s - leg.t0_s))
        lon = leg.start[0] + f * (leg.end[0] - leg.start[0])
        lat = leg.start[1] + f * (leg.end[1] - leg.start[1])
        dist = haversine_m(*leg.start, *leg.end) * ROAD_FACTOR
        return lon, lat, dist / (leg.t1_s - leg.t0_s), bearing_deg(*leg.start, *leg.end)

    @property
    def end_s(self) -> float:
        return self.legs[-1].t1_s


def visiting_track(
    start_s: float,
    home: tuple[float, float],
    sites: list[tuple[float, float]],
    rng: np.random.Generator,
    *,
    stay_min_s: float = 20 * 60,
    stay_max_s: float = 45 * 60,
    speed_mps: float = 13.9,
) -> Track:
    """Home -> each site (stay 20-45 min) -> home, at around 50 km/h."""
    legs: list[Leg] = []
    t, here = start_s, home
    for site in [*sites, home]:
        dist = haversine_m(*here, *site) * ROAD_FACTOR
        drive = max(dist / (speed_mps * float(rng.uniform(0.8, 1.2))), 1.0)
        legs.append(Leg(t, t + drive, here, site))
        t += drive
        if site is not home:
            stay = float(rng.uniform(stay_min_s, stay_max_s))
            legs.append(Leg(t, t + stay, site, site))
            t += stay
        here = site
    legs.append(Leg(t, math.inf, home, home))
    return Track(tuple(legs))


def route_track(
    start_s: float,
    here: tuple[float, float],
    stops: list[tuple[tuple[float, float], float]],
    home: tuple[float, float],
    *,
    speed_mps: float = 13.9,
) -> Track:
    """From where the phone is now, through `stops` ((lon, lat), stay seconds) in order, then
    home, at a steady road speed: the track of a re-planned day."""
    if speed_mps <= 0:
        raise ValueError(f"speed_mps must be positive, got {speed_mps}")
    legs: list[Leg] = []
    t, pos = start_s, here
    for site, stay_s in [*stops, (home, 0.0)]:
        if stay_s < 0 or not math.isfinite(stay_s):
            raise ValueError(f"stay at {site} must be a finite number of seconds >= 0")
        drive = max(haversine_m(*pos, *site) * ROAD_FACTOR / speed_mps, 1.0)
        legs.append(Leg(t, t + drive, pos, site))
        t += drive
        if stay_s > 0:
            legs.append(Leg(t, t + stay_s, site, site))
            t += stay_s
        pos = site
    legs.append(Leg(t, math.inf, home, home))
    return Track(tuple(legs))
