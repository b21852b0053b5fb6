"""Travel time between appointments, from routing's matrix seam (`MatrixProvider`).

The slot finder asks for many pairs among few places (the site, the accounts of the
attendees' appointments, their homes), so the places are collected first and one matrix
is built for them all; lookups are then dictionary reads.
"""

from __future__ import annotations

from collections.abc import Iterable

from calendars.slots import Attendee, Point
from routing.matrix import GreatCircleMatrix, MatrixProvider
from routing.model import Location

MAX_PLACES = 2000  # a matrix of 4M cells; beyond it the nearest 2,000 to the site are kept


class MatrixTravel:
    """`travel(a, b) -> (seconds, metres)` over a matrix built once for `points`."""

    def __init__(self, points: Iterable[Point], provider: MatrixProvider | None = None) -> None:
        uniq = list(dict.fromkeys((round(x, 6), round(y, 6)) for x, y in points))
        if len(uniq) > MAX_PLACES:
            site = uniq[0]
            uniq = [
                site,
                *sorted(uniq[1:], key=lambda p: (p[0] - site[0]) ** 2 + (p[1] - site[1]) ** 2)[
                    : MAX_PLACES - 1
                ],
            ]
        self.index = {p: i for i, p in enumerate(uniq)}
        provider = provider or GreatCircleMatrix()
        m = provider.matrices([Location(str(i), p[0], p[1]) for i, p in enumerate(uniq)])
        self.duration_s = m.duration_s
        self.distance_m = m.distance_m

    def __call__(self, a: Point, b: Point) -> tuple[float, float]:
        i = self.index.get((round(a[0], 6), round(a[1], 6)))
        j = self.index.get((round(b[0], 6), round(b[1], 6)))
        if i is None or j is None:  # a place left out of a huge matrix: no estimate
            return 0.0, 0.0
        return float(self.duration_s[i, j]), float(self.distance_m[i, j])


def for_query(site: Point, attendees: Iterable[Attendee]) -> MatrixTravel:
    pts: list[Point] = [site]
    for a in attendees:
        if a.home is not None:
            pts.append(a.home)
        pts.extend(b.location for b in a.busy if b.location is not None)
    return MatrixTravel(pts)
