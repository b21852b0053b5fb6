"""The colours of every scene, and how a health score or an alert state picks one.

Colours are materials (one flat PBR material each), never vertex colours: iOS Quick Look
ignores vertex colours.
"""

from __future__ import annotations

import math

from ar_viewer.model import Material

# Health score classes: (lower bound inclusive, material name, meaning).
HEALTH_CLASSES: tuple[tuple[float, str, str], ...] = (
    (85.0, "health_excellent", "health 85-100"),
    (70.0, "health_good", "health 70-85"),
    (50.0, "health_fair", "health 50-70"),
    (30.0, "health_at_risk", "health 30-50"),
    (0.0, "health_critical", "health 0-30"),
)
HEALTH_UNKNOWN = "health_unknown"

MATERIALS: tuple[Material, ...] = (
    Material("ground", (226, 222, 208), roughness=1.0),
    Material("route", (106, 61, 154), roughness=0.6),
    Material("health_excellent", (26, 152, 80)),
    Material("health_good", (145, 207, 96)),
    Material("health_fair", (254, 224, 139)),
    Material("health_at_risk", (252, 141, 89)),
    Material("health_critical", (215, 48, 31)),
    Material(HEALTH_UNKNOWN, (158, 158, 158)),
    Material("alert_ok", (69, 117, 180), roughness=0.4),
    Material("alert_warning", (244, 109, 67), roughness=0.4),
    Material("alert_critical", (165, 0, 38), roughness=0.4),
    Material("alert_offline", (37, 37, 37), roughness=0.4),
    Material("alert_unknown", (189, 189, 189), roughness=0.4),
    Material("steel", (140, 150, 160), metallic=0.6, roughness=0.45),
    Material("motor", (92, 98, 104), metallic=0.3, roughness=0.5),
    Material("pipe", (176, 183, 191), metallic=0.5, roughness=0.4),
    Material("base", (80, 80, 80), roughness=0.9),
)
MATERIAL_BY_NAME: dict[str, Material] = {m.name: m for m in MATERIALS}

ALERT_MEANING: dict[str, str] = {
    "ok": "no alert",
    "warning": "warning",
    "critical": "critical alert",
    "offline": "offline",
    "unknown": "no data",
}
# Worst first: when devices are aggregated, the worst state of a bin wins.
ALERT_SEVERITY: dict[str, int] = {"critical": 4, "warning": 3, "offline": 2, "unknown": 1, "ok": 0}


def health_material(score: float | None) -> str:
    """Material of a health score 0..100 (None or NaN: unknown)."""
    if score is None or math.isnan(score):
        return HEALTH_UNKNOWN
    for lower, name, _ in HEALTH_CLASSES:
        if score >= lower:
            return name
    return HEALTH_CLASSES[-1][1]


def alert_material(state: str) -> str:
    return f"alert_{state}" if state in ALERT_MEANING else "alert_unknown"


def srgb_to_linear(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """sRGB 0..255 to linear 0..1 (USD's diffuseColor is linear)."""

    def one(c: int) -> float:
        x = c / 255.0
        return x / 12.92 if x <= 0.04045 else float(((x + 0.055) / 1.055) ** 2.4)

    return one(rgb[0]), one(rgb[1]), one(rgb[2])
