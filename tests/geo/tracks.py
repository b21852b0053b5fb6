"""Scripted GPS tracks in metres around the catalogue site, as (t_ms, lon, lat, accuracy_m)."""

from __future__ import annotations

from collections.abc import Iterable

from tests.geo.catalogue import offset

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

Fix = tuple[int, float, float, float]


def at(t_s: float, east_m: float, north_m: float = 0.0, accuracy_m: float = 5.0) -> Fix:
    lon, lat = offset(east_m, north_m)
    return (T0_MS + round(t_s * 1000), lon, lat, accuracy_m)


def stay(
    t0_s: float,
    t1_s: float,
    east_m: float,
    north_m: float = 0.0,
    step_s: float = 10.0,
    accuracy_m: float = 5.0,
) -> list[Fix]:
    """Fixes every step_s from t0_s (inclusive) to t1_s (exclusive) at one place."""
    out = []
    t = t0_s
    while t < t1_s:
        out.append(at(t, east_m, north_m, accuracy_m))
        t += step_s
    return out


def drive(
    t0_s: float,
    start_m: tuple[float, float],
    end_m: tuple[float, float],
    speed_mps: float,
    step_s: float = 5.0,
) -> list[Fix]:
    """Fixes every step_s along a straight line at speed_mps (end excluded)."""
    (x0, y0), (x1, y1) = start_m, end_m
    length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
    duration = length / speed_mps
    out = []
    k = 0
    while k * step_s < duration:
        f = k * step_s / duration
        out.append(at(t0_s + k * step_s, x0 + f * (x1 - x0), y0 + f * (y1 - y0)))
        k += 1
    return out


def columns(fixes: Iterable[Fix]) -> tuple[list[int], list[float], list[float], list[float]]:
    fl = list(fixes)
    return [f[0] for f in fl], [f[1] for f in fl], [f[2] for f in fl], [f[3] for f in fl]


def t_ms(t_s: float) -> int:
    return T0_MS + round(t_s * 1000)
