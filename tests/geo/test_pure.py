"""Pure geo logic: GeoJSON validation, circles in metres, territories, history."""

from __future__ import annotations

import pytest

from geo.errors import CoordinateOutOfRange, InvalidFence, InvalidGeometry
from geo.fences import Status, circle_fence, fence_status, polygon_fence
from geo.history import detect_stops, distance_m, time_budget, track_geojson
from geo.shapes import as_multipolygon, parse_geometry
from geo.territories import Territory, assign_points, find_overlaps, moves
from tests.geo import catalogue as cat
from tests.geo.tracks import at, stay


@pytest.mark.parametrize("name", sorted(cat.VALID_POLYGONS))
def test_valid_polygons_are_accepted(name: str) -> None:
    geom = parse_geometry(cat.VALID_POLYGONS[name])
    assert geom.is_valid and not geom.is_empty


@pytest.mark.parametrize("name", sorted(cat.SELF_INTERSECTING))
def test_self_intersecting_polygons_are_refused_with_the_reason(name: str) -> None:
    with pytest.raises(InvalidGeometry, match=r"Self-intersection|Too few points") as err:
        parse_geometry(cat.SELF_INTERSECTING[name], field="features[0].geometry")
    assert err.value.field == "features[0].geometry"
    assert "repair" in err.value.message


def test_a_bowtie_is_repaired_into_two_triangles_when_asked() -> None:
    geom = parse_geometry(cat.BOWTIE, repair=True)
    assert geom.is_valid and geom.geom_type == "MultiPolygon" and len(geom.geoms) == 2
    assert geom.area == pytest.approx(2.0)


@pytest.mark.parametrize("name", sorted(cat.DEGENERATE))
def test_degenerate_polygons_are_refused_even_with_repair(name: str) -> None:
    with pytest.raises(InvalidGeometry):
        parse_geometry(cat.DEGENERATE[name], repair=True)


@pytest.mark.parametrize("name", sorted(cat.OUT_OF_RANGE))
def test_coordinates_out_of_range_are_refused(name: str) -> None:
    with pytest.raises(CoordinateOutOfRange, match=r"out of range|finite"):
        parse_geometry(cat.OUT_OF_RANGE[name])


def test_wrong_geometry_types_are_refused_by_name() -> None:
    with pytest.raises(InvalidGeometry, match="LineString not allowed"):
        parse_geometry(cat.LINE)
    with pytest.raises(InvalidGeometry, match="unknown geometry type 'Circle'"):
        parse_geometry(cat.NOT_GEOJSON)
    with pytest.raises(InvalidGeometry, match="expected a GeoJSON geometry object"):
        parse_geometry([1, 2])


def test_circle_fences_are_judged_in_metres_with_the_accuracy_margin() -> None:
    fence = circle_fence("c", cat.SITE_LON, cat.SITE_LAT, 100)
    inside = cat.offset(0, 90)  # 90 m north
    outside = cat.offset(110, 0)  # 110 m east: degrees of longitude are shorter here
    assert fence_status(fence, *inside, margin_m=5) == Status.INSIDE
    assert fence_status(fence, *inside, margin_m=15) == Status.UNCERTAIN
    assert fence_status(fence, *outside, margin_m=5) == Status.OUTSIDE
    assert fence_status(fence, *outside, margin_m=15) == Status.UNCERTAIN


def test_bad_fences_are_refused() -> None:
    with pytest.raises(InvalidFence, match="radius_m"):
        circle_fence("c", 0, 0, 0)
    with pytest.raises(CoordinateOutOfRange):
        circle_fence("c", 200, 0, 10)
    with pytest.raises(InvalidFence, match="invalid polygon"):
        from shapely.geometry import shape

        polygon_fence("p", shape(cat.BOWTIE))


def _territory(tid: int, geojson: dict) -> Territory:  # type: ignore[type-arg]
    return Territory(tid, f"t{tid}", as_multipolygon(parse_geometry(geojson)))


def test_overlapping_territories_are_reported_with_the_area_in_square_metres() -> None:
    a = _territory(1, cat.square_m(0, 0, 500))
    b = _territory(2, cat.square_m(800, 0, 500))  # overlaps a on a 200 m x 1000 m strip
    c = _territory(3, cat.square_m(5000, 0, 500))
    overlaps = find_overlaps([c, b, a])
    assert [(o.a, o.b) for o in overlaps] == [(1, 2)]
    assert overlaps[0].area_m2 == pytest.approx(200 * 1000, rel=0.01)


def test_points_go_to_the_containing_territory_the_smallest_when_overlapping() -> None:
    big = _territory(1, cat.square_m(0, 0, 1000))
    small = _territory(2, cat.square_m(500, 0, 200))
    points = [(10, *cat.offset(-500, 0)), (11, *cat.offset(500, 0)), (12, *cat.offset(5000, 0))]
    assigned = assign_points([big, small], points)
    assert assigned == {10: 1, 11: 2, 12: None}
    report = moves({10: 1, 11: 1, 12: 3}, assigned)
    assert [(m.account_id, m.from_territory, m.to_territory) for m in report] == [
        (11, 1, 2),
        (12, 3, None),
    ]


def test_history_track_distance_stops_and_time_budget() -> None:
    points = [
        (f[0], f[1], f[2])
        for f in stay(0, 600, 0) + [at(600 + 10 * k, 100 * k) for k in range(1, 31)]
    ]
    line = track_geojson(points)
    assert line["type"] == "LineString" and len(line["coordinates"]) == len(points)
    assert distance_m(points) == pytest.approx(3000, rel=0.01)
    stops = detect_stops(points)
    assert len(stops) == 1 and stops[0].duration_s == pytest.approx(590)
    visit = (points[0][0], points[0][0] + 300_000)
    budget = time_budget(points, stops, [visit])
    assert budget.on_site_s == pytest.approx(300)
    assert budget.stopped_s == pytest.approx(290)
    assert budget.driving_s == pytest.approx(310)
    assert track_geojson(points[:1])["type"] == "Point"
