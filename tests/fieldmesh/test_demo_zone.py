"""The demo world's users get the time zone of the place the world is in (pure)."""

from __future__ import annotations

from fieldmesh.demo_world import zone_at
from firmware_sim.fleet import FleetSpec


def test_the_zone_is_the_one_at_the_worlds_centre() -> None:
    lon, lat = FleetSpec(tenant="t").center  # Lyon
    assert zone_at(lon, lat) == "Europe/Paris"
    assert zone_at(139.69, 35.69) == "Asia/Tokyo"
    assert zone_at(-73.99, 40.73) == "America/New_York"


def test_at_sea_the_zone_is_utc() -> None:
    assert zone_at(-30.0, 0.0) == "UTC"  # mid-Atlantic: only a nautical Etc/ zone
