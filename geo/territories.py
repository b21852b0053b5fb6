"""Territories: overlap detection, assignment of sites to territories, balance figures.

Pure: shapely geometries in (lon, lat), areas in m² on the WGS84 ellipsoid.
A site on a shared border or inside two overlapping territories goes to the smallest
of them (the most specific), ties broken by the lowest id, so assignment is
deterministic whatever the input order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import MultiPolygon

from geo.geodesy import geodesic_area_m2


@dataclass(frozen=True, slots=True)
class Territory:
    id: int
    name: str
    geom: MultiPolygon


@dataclass(frozen=True, slots=True)
class Overlap:
    a: int
    b: int
    area_m2: float


@dataclass(frozen=True, slots=True)
class Move:
    account_id: int
    from_territory: int | None
    to_territory: int | None


@dataclass(frozen=True, slots=True)
class BalanceRow:
    territory_id: int | None
    name: str
    accounts: int
    revenue: float
    open_work_orders: int


def find_overlaps(territories: Sequence[Territory], min_area_m2: float = 1.0) -> list[Overlap]:
    """Pairs of territories whose interiors overlap by at least min_area_m2."""
    if len(territories) < 2:
        return []
    geoms = np.array([t.geom for t in territories], dtype=object)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    out = []
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i >= j:
            continue
        inter = shapely.intersection(geoms[i], geoms[j])
        if inter.is_empty or inter.area == 0:
            continue
        area = geodesic_area_m2(inter)
        if area >= min_area_m2:
            a, b = sorted((territories[i].id, territories[j].id))
            out.append(Overlap(a, b, area))
    return sorted(out, key=lambda o: (o.a, o.b))


def assign_points(
    territories: Sequence[Territory], points: Sequence[tuple[int, float, float]]
) -> dict[int, int | None]:
    """{key: territory id or None} for (key, lon, lat) points."""
    out: dict[int, int | None] = {key: None for key, _, _ in points}
    if not territories or not points:
        return out
    geoms = np.array([t.geom for t in territories], dtype=object)
    tree = shapely.STRtree(geoms)
    pts = shapely.points([p[1] for p in points], [p[2] for p in points])
    pi, ti = tree.query(pts, predicate="intersects")
    # compared to 6 significant digits: equal shapes in different places are ties
    largest = max(t.geom.area for t in territories) or 1.0
    areas = [round(t.geom.area / largest, 6) for t in territories]
    best: dict[int, tuple[float, int]] = {}
    for p, t in zip(pi.tolist(), ti.tolist(), strict=True):
        rank = (areas[t], territories[t].id)
        if p not in best or rank < best[p]:
            best[p] = rank
    for p, (_, tid) in best.items():
        out[points[p][0]] = tid
    return out


def moves(current: Mapping[int, int | None], assigned: Mapping[int, int | None]) -> list[Move]:
    """What changes when `assigned` replaces `current`, by account id."""
    return [
        Move(key, current.get(key), tid)
        for key, tid in sorted(assigned.items())
        if current.get(key) != tid
    ]


def imbalance(rows: Sequence[BalanceRow], measure: str = "accounts") -> float:
    """Coefficient of variation of a measure across territories (0 = perfectly balanced)."""
    values = [float(getattr(r, measure)) for r in rows if r.territory_id is not None]
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    if mean == 0:
        return 0.0
    var = sum((v - mean) ** 2 for v in values) / len(values)
    return math.sqrt(var) / mean
