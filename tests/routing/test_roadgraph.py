"""Road-graph matrices from a small hand-made OSM extract."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing.matrix import GreatCircleMatrix
from routing.model import InputError, Location
from routing.roadgraph import RoadGraphMatrix, load_osm_xml

# A square of four corners ~1.1 km apart: a fast primary road around three sides,
# a residential street on the fourth, and a one-way residential diagonal.
OSM = """<?xml version="1.0"?>
<osm version="0.6">
  <node id="1" lat="48.000" lon="2.000"/>
  <node id="2" lat="48.000" lon="2.015"/>
  <node id="3" lat="48.010" lon="2.015"/>
  <node id="4" lat="48.010" lon="2.000"/>
  <node id="9" lat="48.005" lon="2.030"/>
  <way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/><tag k="highway" v="primary"/><tag k="maxspeed" v="72"/></way>
  <way id="11"><nd ref="4"/><nd ref="1"/><tag k="highway" v="residential"/></way>
  <way id="12"><nd ref="1"/><nd ref="3"/><tag k="highway" v="residential"/><tag k="oneway" v="yes"/></way>
  <way id="13"><nd ref="2"/><nd ref="9"/><tag k="highway" v="footway"/></way>
</osm>
"""


def test_road_graph_follows_roads_speeds_and_one_way_streets(tmp_path: Path) -> None:
    path = tmp_path / "tiny.osm"
    path.write_text(OSM)
    graph = load_osm_xml(path)
    assert len(graph.edges) == 5  # the footway is not drivable
    locs = [
        Location("a", 2.000, 48.000),
        Location("b", 2.015, 48.000),
        Location("c", 2.015, 48.010),
    ]
    m = RoadGraphMatrix(graph).matrices(locs)
    gc = GreatCircleMatrix(road_factor=1.0).matrices(locs)
    # a -> c uses the one-way diagonal; c -> a cannot and goes round.
    assert m.distance_m[0, 2] == pytest.approx(gc.distance_m[0, 2], rel=1e-3)
    assert m.distance_m[2, 0] > m.distance_m[0, 2] * 1.2
    # Along the primary road at 72 km/h.
    assert m.duration_s[0, 1] == pytest.approx(gc.distance_m[0, 1] / 20.0, rel=1e-3)
    assert (m.distance_m.diagonal() == 0).all()


def test_an_extract_without_roads_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.osm"
    path.write_text('<osm version="0.6"><node id="1" lat="0" lon="0"/></osm>')
    with pytest.raises(InputError, match="no drivable ways"):
        load_osm_xml(path)
