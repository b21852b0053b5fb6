"""Scene building: geometry counts, colours, scale, budget, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ar_viewer.asset import build_asset_scene, sensor_from_metric, sensor_state
from ar_viewer.errors import SceneInputError
from ar_viewer.mesh import COLUMN_TRIANGLES, MARKER_TRIANGLES
from ar_viewer.model import AccountInput, AssetInput, DeviceInput, SensorInput, TerritoryInput
from ar_viewer.palette import MATERIAL_BY_NAME, health_material
from ar_viewer.projection import lonlat_to_east_north_m
from ar_viewer.scene import TRIANGLE_BUDGET, TerritoryLayout, build_territory_scene
from ar_viewer.synthetic import synthetic_pump, synthetic_territory

# A 10 km x 10 km square near Zurich (corners computed on the ellipsoid below).
LON0, LAT0 = 8.5, 47.3
DLON = 10_000 / (111_320 * math.cos(math.radians(LAT0)))
DLAT = 10_000 / 111_132
SQUARE = (
    (
        (
            (LON0, LAT0),
            (LON0 + DLON, LAT0),
            (LON0 + DLON, LAT0 + DLAT),
            (LON0, LAT0 + DLAT),
            (LON0, LAT0),
        ),
    ),
)


def _acc(
    i: int,
    lon: float | None,
    lat: float | None,
    revenue: float | None = 1000.0,
    health: float | None = 90.0,
) -> AccountInput:
    return AccountInput(f"a{i}", f"Account {i}", lon, lat, revenue, 0.0, health)


def test_projection_gives_metres_east_and_north() -> None:
    en = lonlat_to_east_north_m([[LON0 + DLON, LAT0], [LON0, LAT0 + DLAT]], (LON0, LAT0))
    assert en[0, 0] == pytest.approx(10_000, rel=0.01) and abs(en[0, 1]) < 20
    assert en[1, 1] == pytest.approx(10_000, rel=0.01) and abs(en[1, 0]) < 1


def test_each_account_is_a_column_at_its_site_with_height_from_revenue() -> None:
    accounts = (
        _acc(0, LON0 + DLON * 0.25, LAT0 + DLAT * 0.25, 1000.0),
        _acc(1, LON0 + DLON * 0.75, LAT0 + DLAT * 0.75, 4000.0),
    )
    s = build_territory_scene(TerritoryInput("T", SQUARE, accounts))
    cols = [p for p in s.parts if p.name.startswith("accounts_")]
    assert sum(p.triangle_count for p in cols) == 2 * COLUMN_TRIANGLES
    pos = np.concatenate([p.positions_m for p in cols])
    # table-top scale: the 10 km square becomes 1 m; the sites are 5 km apart on each axis
    assert s.model_m_per_ground_m == pytest.approx(1 / 10_000, rel=0.02)
    xs = sorted({round(float(x), 2) for x in pos[:, 0]})
    assert xs[0] == pytest.approx(-0.25 - 0.006, abs=0.01) and xs[-1] == pytest.approx(
        0.25 + 0.006, abs=0.01
    )
    # north is -Z: the north-east account has the smaller z
    tall = pos[pos[:, 1] > 0.1]
    assert tall[:, 1].max() == pytest.approx(TerritoryLayout().max_height_m)
    assert tall[:, 2].mean() < 0 and tall[:, 0].mean() > 0
    # the small account's column is a quarter-ish of the big one (min height aside)
    short = pos[(pos[:, 1] > 0.01) & (pos[:, 1] < 0.1)]
    lay = TerritoryLayout()
    assert short[:, 1].max() == pytest.approx(
        lay.min_height_m + (lay.max_height_m - lay.min_height_m) / 4
    )
    lo, hi = s.bounds_m()
    assert lo[1] == pytest.approx(0.0) and hi[1] > 0, "Y is up, the ground is at y=0"
    assert "1:" in s.scale_note and "km" in s.scale_note


def test_column_colour_follows_health() -> None:
    accounts = tuple(
        _acc(i, LON0 + DLON * (0.1 + 0.2 * i), LAT0 + DLAT / 2, 100.0, h)
        for i, h in enumerate([95, 75, 55, 35, 5])
    )
    s = build_territory_scene(TerritoryInput("T", SQUARE, accounts))
    by_part = {p.material: p for p in s.parts}
    for name in (
        "health_excellent",
        "health_good",
        "health_fair",
        "health_at_risk",
        "health_critical",
    ):
        assert by_part[name].triangle_count == COLUMN_TRIANGLES
    assert MATERIAL_BY_NAME["health_critical"].rgb[0] > 200
    assert (
        health_material(None) == "health_unknown" and health_material(math.nan) == "health_unknown"
    )


def test_devices_are_markers_coloured_by_alert_state_above_their_account() -> None:
    accounts = (_acc(0, LON0 + DLON / 2, LAT0 + DLAT / 2),)
    devices = (
        DeviceInput("d1", "a0", alert_state="critical"),
        DeviceInput("d2", "a0", alert_state="ok"),
        DeviceInput("d3", None, alert_state="ok"),
    )
    s = build_territory_scene(TerritoryInput("T", SQUARE, accounts, devices))
    crit = next(p for p in s.parts if p.material == "alert_critical")
    assert crit.triangle_count == MARKER_TRIANGLES
    assert crit.positions_m[:, 1].min() > TerritoryLayout().max_height_m  # above the column top
    assert any(i.subject == "device d3" and i.kind == "left_out" for i in s.issues)


def test_route_is_a_ribbon_of_two_triangles_per_leg() -> None:
    route = (
        (LON0 + DLON * 0.1, LAT0 + DLAT * 0.1),
        (LON0 + DLON * 0.5, LAT0 + DLAT * 0.9),
        (LON0 + DLON * 0.9, LAT0 + DLAT * 0.1),
    )
    s = build_territory_scene(TerritoryInput("T", SQUARE, route=route))
    r = next(p for p in s.parts if p.name == "route")
    assert r.triangle_count == 4
    assert (r.normals[:, 1] == 1).all()


def test_ten_thousand_accounts_stay_within_the_triangle_budget() -> None:
    t = synthetic_territory(10_000)
    s = build_territory_scene(t)
    assert s.stats["aggregated"] is True
    assert s.stats["accounts_shown"] == 10_000
    assert 0 < int(s.stats["columns"]) <= TerritoryLayout().max_columns
    assert s.triangle_count <= TRIANGLE_BUDGET
    # aggregation keeps the total value: the tallest column is the biggest bin
    assert "aggregated" in s.scale_note
    assert len(s.labels) == TerritoryLayout().max_labels


def test_naive_columns_would_blow_the_budget() -> None:
    t = synthetic_territory(2_000)
    s = build_territory_scene(t, TerritoryLayout(max_columns=100_000))
    assert int(s.stats["columns"]) == 2_000
    assert s.triangle_count > TRIANGLE_BUDGET


def test_territory_without_accounts_is_an_empty_but_valid_scene() -> None:
    s = build_territory_scene(TerritoryInput("Empty", SQUARE))
    assert [p.name for p in s.parts] == ["ground"]
    assert s.parts[0].triangle_count >= 2
    assert s.labels == () and s.issues == ()
    nothing = build_territory_scene(TerritoryInput("Nothing"))
    assert nothing.parts[0].name == "ground" and nothing.triangle_count == 2


def test_accounts_without_location_are_left_out_and_listed() -> None:
    accounts = (
        _acc(0, None, None),
        _acc(1, 200.0, 10.0),
        _acc(2, math.nan, 47.0),
        _acc(3, LON0 + DLON / 2, LAT0 + DLAT / 2),
    )
    s = build_territory_scene(TerritoryInput("T", SQUARE, accounts))
    left = sorted(i.subject for i in s.issues if i.kind == "left_out")
    assert left == ["account a0", "account a1", "account a2"]
    assert s.stats["accounts_shown"] == 1 and s.stats["accounts_left_out"] == 3


def test_absurd_values_are_clamped_and_reported() -> None:
    accounts = (
        _acc(0, LON0 + DLON * 0.2, LAT0 + DLAT / 2, revenue=-500.0),
        _acc(1, LON0 + DLON * 0.4, LAT0 + DLAT / 2, revenue=math.nan),
        _acc(2, LON0 + DLON * 0.6, LAT0 + DLAT / 2, health=250.0),
        _acc(3, LON0 + DLON * 0.8, LAT0 + DLAT / 2, health=math.inf),
    )
    s = build_territory_scene(
        TerritoryInput("T", SQUARE, accounts, (DeviceInput("d", "a0", alert_state="on fire"),))
    )
    clamped = {(i.subject, i.field) for i in s.issues if i.kind == "clamped"}
    assert clamped == {
        ("account a0", "revenue"),
        ("account a1", "revenue"),
        ("account a2", "health"),
        ("account a3", "health"),
        ("device d", "alert_state"),
    }
    mats = {p.material for p in s.parts}
    assert "health_excellent" in mats and "health_unknown" in mats and "alert_unknown" in mats
    for p in s.parts:
        assert np.isfinite(p.positions_m).all()


def test_bad_outline_is_refused_with_the_field_named() -> None:
    with pytest.raises(SceneInputError) as e:
        build_territory_scene(TerritoryInput("T", ((((0.0, 0.0), (1.0, 0.0)),),)))
    assert e.value.field == "outline"
    with pytest.raises(SceneInputError):
        build_territory_scene(TerritoryInput("T", ((((0.0, 0.0), (1.0, 95.0), (2.0, 0.0)),),)))


def test_pump_has_body_parts_and_sensors_coloured_by_readings() -> None:
    s = build_asset_scene(synthetic_pump())
    mats = {p.material: p for p in s.parts}
    assert {"steel", "motor", "pipe", "base"} <= set(mats)
    # vibration 7.4 mm/s: warning; temperature 96 °C: critical; no flow reading: unknown
    assert mats["alert_warning"].triangle_count == 32
    assert mats["alert_critical"].triangle_count == 32
    assert mats["alert_unknown"].triangle_count == 32
    assert mats["alert_ok"].triangle_count == 4 * 32
    assert len(s.labels) == 7
    lo, hi = s.bounds_m()
    assert lo[1] == pytest.approx(0.0) and 0.5 < hi[1] < 1.5, "real size, standing on y=0"


def test_nan_reading_is_reported_and_shown_as_unknown() -> None:
    a = AssetInput(
        "x",
        "X",
        "pump",
        None,
        (
            SensorInput("s1", "vibration", math.nan, "mm/s", "bearing_de", 4.5, 11.2),
            SensorInput("s2", "pressure", 1.0, "bar", "nowhere"),
        ),
    )
    s = build_asset_scene(a)
    assert {(i.subject, i.field) for i in s.issues} == {
        ("sensor s1", "value"),
        ("sensor s2", "mount"),
    }
    assert "alert_unknown" in {p.material for p in s.parts}


def test_sensor_state_from_thresholds_and_alerts() -> None:
    assert sensor_state(sensor_from_metric("d", "vibration_mm_s", 12.0))[0] == "critical"
    assert sensor_state(sensor_from_metric("d", "temperature_c", 50.0))[0] == "ok"
    assert sensor_state(sensor_from_metric("d", "temperature_c", 50.0, "warning"))[0] == "warning"


def test_unknown_equipment_is_refused() -> None:
    with pytest.raises(SceneInputError):
        build_asset_scene(AssetInput("x", "X", "spaceship"))
