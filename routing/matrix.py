"""Travel matrices behind one seam: give me distances and durations between places.

Providers:
- `GreatCircleMatrix` (the default): haversine distance times a road factor, and a
  speed profile by trip length (short trips are slower: streets, junctions).
- `EuclideanMatrix`: planar coordinates, for benchmark instances (Solomon format),
  where travel time equals distance.
- `RoadGraphMatrix` (routing.roadgraph): shortest paths on a road network extract.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from routing.model import Location

EARTH_RADIUS_M = 6_371_008.8

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Matrices:
    """Square matrices indexed like the location sequence they were built for."""

    distance_m: FloatArray
    duration_s: FloatArray

    def __post_init__(self) -> None:
        n = self.distance_m.shape[0]
        if self.distance_m.shape != (n, n) or self.duration_s.shape != (n, n):
            raise ValueError("distance and duration matrices must be square and of equal size")


class MatrixProvider(Protocol):
    def matrices(self, locations: Sequence[Location]) -> Matrices: ...


def haversine_m(lon: FloatArray, lat: FloatArray) -> FloatArray:
    """All-pairs great-circle distances in metres for points given in degrees."""
    lam = np.radians(lon)
    phi = np.radians(lat)
    dphi = phi[:, None] - phi[None, :]
    dlam = lam[:, None] - lam[None, :]
    a = np.sin(dphi / 2) ** 2 + np.cos(phi)[:, None] * np.cos(phi)[None, :] * np.sin(dlam / 2) ** 2
    out: FloatArray = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return out


@dataclass(frozen=True, slots=True)
class SpeedBand:
    """Travel at `speed_mps` for the part of a trip up to `up_to_m` metres."""

    up_to_m: float
    speed_mps: float


DEFAULT_SPEED_PROFILE: tuple[SpeedBand, ...] = (
    SpeedBand(2_000.0, 6.0),  # first 2 km: town streets, ~22 km/h
    SpeedBand(15_000.0, 12.5),  # next 13 km: urban/suburban roads, ~45 km/h
    SpeedBand(60_000.0, 20.0),  # regional roads, ~72 km/h
    SpeedBand(math.inf, 27.0),  # motorway, ~97 km/h
)


def profile_duration_s(distance_m: FloatArray, profile: Sequence[SpeedBand]) -> FloatArray:
    """Duration of trips of the given road lengths under a banded speed profile."""
    duration = np.zeros_like(distance_m)
    lower = 0.0
    for band in profile:
        if band.speed_mps <= 0:
            raise ValueError(f"speed band up to {band.up_to_m} m has a non-positive speed")
        part = np.clip(distance_m - lower, 0.0, band.up_to_m - lower)
        duration += part / band.speed_mps
        lower = band.up_to_m
    return duration


@dataclass(frozen=True, slots=True)
class GreatCircleMatrix:
    road_factor: float = 1.3
    speed_profile: tuple[SpeedBand, ...] = DEFAULT_SPEED_PROFILE

    def matrices(self, locations: Sequence[Location]) -> Matrices:
        lon = np.array([loc.lon for loc in locations], dtype=np.float64)
        lat = np.array([loc.lat for loc in locations], dtype=np.float64)
        distance = haversine_m(lon, lat) * self.road_factor
        return Matrices(
            distance_m=distance, duration_s=profile_duration_s(distance, self.speed_profile)
        )


@dataclass(frozen=True, slots=True)
class EuclideanMatrix:
    """Planar distances on (lon, lat) read as (x, y); duration = distance / speed."""

    speed: float = 1.0

    def matrices(self, locations: Sequence[Location]) -> Matrices:
        xy = np.array([(loc.lon, loc.lat) for loc in locations], dtype=np.float64).reshape(-1, 2)
        diff = xy[:, None, :] - xy[None, :, :]
        distance = np.sqrt((diff**2).sum(axis=2))
        return Matrices(distance_m=distance, duration_s=distance / self.speed)
