"""Travel matrices on a road network: an OSM XML extract (or any edge list) and Dijkstra.

Locations snap to the nearest graph node; the access leg to it is great-circle distance
at a slow access speed. Durations are fastest paths (edge length / speed); distances
are shortest paths (a fastest path's length is close but not equal to it). Unreachable
pairs get a large finite value so the solver sees them as impractical, not as free.
"""

from __future__ import annotations

import heapq
import itertools
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from routing.matrix import EARTH_RADIUS_M, FloatArray, Matrices
from routing.model import InputError, Location

# Default speeds (m/s) by OSM highway class when a way has no usable maxspeed.
HIGHWAY_SPEED_MPS = {
    "motorway": 30.0, "trunk": 25.0, "primary": 18.0, "secondary": 15.0, "tertiary": 12.5,
    "unclassified": 11.0, "residential": 8.5, "living_street": 3.0, "service": 5.0,
    "motorway_link": 20.0, "trunk_link": 16.0, "primary_link": 14.0, "secondary_link": 12.0,
    "tertiary_link": 10.0, "road": 10.0,
}  # fmt: skip
UNREACHABLE = 1e9


@dataclass(frozen=True, slots=True)
class Edge:
    u: int
    v: int
    length_m: float
    speed_mps: float
    oneway: bool = False


@dataclass(frozen=True, slots=True)
class RoadGraph:
    lon: FloatArray
    lat: FloatArray
    edges: tuple[Edge, ...]


def _gc_m(lon1: float, lat1: float, lon2: FloatArray, lat2: FloatArray) -> FloatArray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = (
        np.sin((p2 - p1) / 2) ** 2
        + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    )
    out: FloatArray = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
    return out


def _maxspeed_mps(value: str | None) -> float | None:
    if not value:
        return None
    text = value.strip().lower()
    try:
        if text.endswith("mph"):
            return float(text[:-3]) * 0.44704
        return float(text.split()[0]) / 3.6
    except ValueError:
        return None


def load_osm_xml(path: Path) -> RoadGraph:
    """Drivable ways of an .osm (XML) extract as a graph."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(f"cannot read OSM extract {path}: {exc}") from exc
    coords: dict[str, tuple[float, float]] = {}
    for n in root.iter("node"):
        coords[n.attrib["id"]] = (float(n.attrib["lon"]), float(n.attrib["lat"]))
    index: dict[str, int] = {}
    edges: list[Edge] = []
    for way in root.iter("way"):
        tags = {t.attrib["k"]: t.attrib["v"] for t in way.iter("tag")}
        hw = tags.get("highway")
        if hw not in HIGHWAY_SPEED_MPS:
            continue
        speed = _maxspeed_mps(tags.get("maxspeed")) or HIGHWAY_SPEED_MPS[hw]
        oneway = tags.get("oneway") in ("yes", "1", "true") or hw == "motorway"
        refs = [nd.attrib["ref"] for nd in way.iter("nd") if nd.attrib["ref"] in coords]
        for a, b in itertools.pairwise(refs):
            for r in (a, b):
                index.setdefault(r, len(index))
            (lo1, la1), (lo2, la2) = coords[a], coords[b]
            length = float(_gc_m(lo1, la1, np.array([lo2]), np.array([la2]))[0])
            edges.append(Edge(index[a], index[b], length, speed, oneway))
    if not edges:
        raise InputError(f"OSM extract {path} has no drivable ways")
    lon = np.zeros(len(index))
    lat = np.zeros(len(index))
    for ref, i in index.items():
        lon[i], lat[i] = coords[ref]
    return RoadGraph(lon, lat, tuple(edges))


@dataclass(frozen=True, slots=True)
class RoadGraphMatrix:
    graph: RoadGraph
    access_speed_mps: float = 5.0

    def matrices(self, locations: Sequence[Location]) -> Matrices:
        g = self.graph
        adj_len: list[list[tuple[int, float]]] = [[] for _ in range(len(g.lon))]
        adj_time: list[list[tuple[int, float]]] = [[] for _ in range(len(g.lon))]
        for e in g.edges:
            length = max(e.length_m, 1e-3)
            for u, v in ((e.u, e.v),) if e.oneway else ((e.u, e.v), (e.v, e.u)):
                adj_len[u].append((v, length))
                adj_time[u].append((v, length / e.speed_mps))
        snapped, access_m = [], []
        for loc in locations:
            d = _gc_m(loc.lon, loc.lat, g.lon, g.lat)
            k = int(np.argmin(d))
            snapped.append(k)
            access_m.append(float(d[k]))
        dist = np.array([_dijkstra(adj_len, k, snapped) for k in snapped])
        time = np.array([_dijkstra(adj_time, k, snapped) for k in snapped])
        acc = np.array(access_m)
        extra_m = acc[:, None] + acc[None, :]
        dist = np.where(np.isinf(dist), UNREACHABLE, dist + extra_m)
        time = np.where(np.isinf(time), UNREACHABLE, time + extra_m / self.access_speed_mps)
        np.fill_diagonal(dist, 0.0)
        np.fill_diagonal(time, 0.0)
        return Matrices(distance_m=dist.astype(np.float64), duration_s=time.astype(np.float64))


def _dijkstra(adj: list[list[tuple[int, float]]], source: int, targets: list[int]) -> list[float]:
    """Shortest path costs from `source` to each target (inf when unreachable)."""
    best = {source: 0.0}
    wanted = set(targets)
    heap = [(0.0, source)]
    done: set[int] = set()
    while heap and wanted - done:
        d, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        for v, w in adj[u]:
            nd = d + w
            if nd < best.get(v, float("inf")):
                best[v] = nd
                heapq.heappush(heap, (nd, v))
    return [best.get(t, float("inf")) for t in targets]
