"""A vectorised spatial index over all geofences: batches of fixes in, (fix, fence, status) out.

Broad phase: one shapely STRtree over each fence's bounding box grown by that fence's
largest margin, queried with all the batch's points at once. Narrow phase, on the
candidate pairs only: circles by numpy haversine against the centre; polygons with
shapely's vectorised `contains_xy` and `distance` in each fence's local metric frame.
Pairs judged OUTSIDE are dropped, so a fix far from every fence costs one tree probe.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely

from geo.fences import Fence, Status
from geo.geodesy import M_PER_DEG_LAT, deg_margin, haversine_m, m_per_deg_lon

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
StatusArray = npt.NDArray[np.int8]


class FenceIndex:
    """Immutable: build a new one when the fences change."""

    def __init__(self, fences: Sequence[Fence]) -> None:
        self.fences: tuple[Fence, ...] = tuple(fences)
        self.position: dict[str, int] = {f.id: j for j, f in enumerate(self.fences)}
        n = len(self.fences)
        boxes = np.empty((n, 4))
        for j, f in enumerate(self.fences):
            minx, miny, maxx, maxy = f.bounds
            dlon, dlat = deg_margin(f.margin_cap_m, max(abs(miny), abs(maxy)))
            boxes[j] = (minx - dlon, miny - dlat, maxx + dlon, maxy + dlat)
        self._tree = shapely.STRtree(
            shapely.box(boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3])
        )
        self._is_circle = np.array([f.kind == "circle" for f in self.fences], dtype=bool)
        self._origin_lon = np.array([f.origin[0] for f in self.fences], dtype=np.float64)
        self._origin_lat = np.array([f.origin[1] for f in self.fences], dtype=np.float64)
        self._kx = np.asarray(m_per_deg_lon(self._origin_lat), dtype=np.float64)
        self._radius = np.array(
            [f.radius_m if f.radius_m is not None else np.nan for f in self.fences],
            dtype=np.float64,
        )
        self._cap = np.array([f.margin_cap_m for f in self.fences], dtype=np.float64)
        self._local = np.array([f.local for f in self.fences], dtype=object)
        boundaries = np.array(
            [f.local.boundary if f.local is not None else None for f in self.fences], dtype=object
        )
        shapely.prepare(boundaries[~self._is_circle])
        self._boundary = boundaries

    def __len__(self) -> int:
        return len(self.fences)

    def classify(
        self, lon: FloatArray, lat: FloatArray, margin_m: FloatArray
    ) -> tuple[IntArray, IntArray, StatusArray]:
        """(fix index, fence index, Status) for every pair not OUTSIDE, sorted by fix index."""
        empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int8))
        if len(self.fences) == 0 or len(lon) == 0:
            return empty
        pairs = self._tree.query(shapely.points(lon, lat))
        fi = pairs[0].astype(np.int64)
        fj = pairs[1].astype(np.int64)
        if len(fi) == 0:
            return empty
        margin = np.minimum(margin_m[fi], self._cap[fj])
        signed = np.empty(len(fi), dtype=np.float64)
        circ = self._is_circle[fj]
        if circ.any():
            ci, cj = fi[circ], fj[circ]
            signed[circ] = (
                haversine_m(lon[ci], lat[ci], self._origin_lon[cj], self._origin_lat[cj])
                - self._radius[cj]
            )
        poly = ~circ
        if poly.any():
            pi, pj = fi[poly], fj[poly]
            x = (lon[pi] - self._origin_lon[pj]) * self._kx[pj]
            y = (lat[pi] - self._origin_lat[pj]) * M_PER_DEG_LAT
            inside = shapely.contains_xy(self._local[pj], x, y)
            dist = shapely.distance(self._boundary[pj], shapely.points(x, y))
            signed[poly] = np.where(inside, -dist, dist)
        status = np.full(len(fi), Status.UNCERTAIN, dtype=np.int8)
        status[signed < -margin] = Status.INSIDE
        status[signed > margin] = Status.OUTSIDE
        keep = status != Status.OUTSIDE
        return fi[keep], fj[keep], status[keep]
