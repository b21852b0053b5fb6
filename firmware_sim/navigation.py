"""The rep's phone app following its day plan: the `route` command re-plans the track.

The cloud sends `cmd/route` with the rep's remaining stops (a re-planned day); the phone
leaves for the first stop from wherever it is now, stays each stop's service time, then
drives home, at road speed. Its GPS fixes and arrival/departure events follow the new
track, so the geofences see the rep arrive, dwell and leave.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from firmware_sim.sensors import PhoneGps, PhoneVisits
from firmware_sim.tracks import route_track

ROUTE_COMMAND = "route"


class RouteStop(msgspec.Struct, frozen=True):
    visit_id: str
    lon: float
    lat: float
    service_s: float
    title: str = ""
    site_id: str | None = None


class RouteArgs(msgspec.Struct, frozen=True):
    """`args` of a `route` command."""

    plan_id: int
    stops: list[RouteStop]


@dataclass(frozen=True, slots=True)
class RouteReceived:
    at_s: float  # simulated time the phone took the new route
    plan_id: int
    visit_ids: tuple[str, ...]


@dataclass(slots=True)
class PhoneNavigator:
    """`EdgeAgent.register_command(ROUTE_COMMAND, navigator.handle)` on a simulated phone."""

    gps: PhoneGps
    visits: PhoneVisits
    clock_s: Callable[[], float]
    speed_mps: float = 13.9
    received: list[RouteReceived] = field(default_factory=list)
    home: tuple[float, float] = field(init=False)  # where the day started and ends
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.home = self.gps.track.legs[0].start

    def handle(self, args: dict[str, Any]) -> tuple[bool, str]:
        try:
            route = msgspec.convert(args, RouteArgs)
        except msgspec.ValidationError as exc:
            return False, f"bad route: {exc}"
        for s in route.stops:
            if not (-180 <= s.lon <= 180 and -90 <= s.lat <= 90) or s.service_s < 0:
                return False, f"bad route: stop {s.visit_id} has an invalid place or service_s"
        now_s = self.clock_s()
        lon, lat, _speed, _heading = self.gps.track.at(now_s)
        track = route_track(
            now_s,
            (float(lon), float(lat)),
            [((s.lon, s.lat), s.service_s) for s in route.stops],
            self.home,
            speed_mps=self.speed_mps,
        )
        for s in route.stops:
            self.visits.site_ids[(s.lon, s.lat)] = s.site_id or s.visit_id
        self.gps.track = track
        self.visits.track = track
        with self._lock:
            self.received.append(
                RouteReceived(now_s, route.plan_id, tuple(s.visit_id for s in route.stops))
            )
        if not route.stops:
            return True, f"plan {route.plan_id}: no stops left, driving home"
        return (
            True,
            f"plan {route.plan_id}: {len(route.stops)} stops, first {route.stops[0].visit_id}",
        )

    def routes(self) -> list[RouteReceived]:
        with self._lock:
            return list(self.received)
