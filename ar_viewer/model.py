"""Plain dataclasses: what a scene is built from, and the scene itself.

Inputs are what the data adapter (ar_viewer/data.py) reads from the CRM, geo and
telemetry tables; the scene is pure geometry in metres (Y up, X east, -Z north), grouped
in parts that share one material, plus what the page shows beside the model (labels,
legend, scale, the list of input problems).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

LonLat = tuple[float, float]
Ring = tuple[LonLat, ...]
# A polygon: exterior ring first, then holes. A territory outline is one or more polygons.
Polygon = tuple[Ring, ...]
HeightMetric = Literal["revenue", "pipeline"]
AlertState = Literal["ok", "warning", "critical", "offline", "unknown"]
ALERT_STATES: tuple[AlertState, ...] = ("ok", "warning", "critical", "offline", "unknown")

FloatArray = npt.NDArray[np.float32]
IndexArray = npt.NDArray[np.uint32]


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class AccountInput:
    """One account of a territory; location, revenue and health may be missing or absurd."""

    id: str
    name: str
    lon: float | None
    lat: float | None
    revenue: float | None = None  # annual revenue, account currency
    open_pipeline: float | None = None  # sum of open opportunity amounts
    health: float | None = None  # health score 0..100


@dataclass(frozen=True, slots=True)
class DeviceInput:
    """A device at a site; placed at its own location, else at its account's."""

    id: str
    account_id: str | None
    lon: float | None = None
    lat: float | None = None
    alert_state: str = "unknown"


@dataclass(frozen=True, slots=True)
class TerritoryInput:
    name: str
    outline: tuple[Polygon, ...] = ()  # empty: the accounts' extent is used
    accounts: tuple[AccountInput, ...] = ()
    devices: tuple[DeviceInput, ...] = ()
    route: tuple[LonLat, ...] = ()  # the day's route, in visiting order
    height_metric: HeightMetric = "revenue"
    currency: str = "EUR"


@dataclass(frozen=True, slots=True)
class SensorInput:
    """A sensor on an asset with its latest reading (None: nothing received yet)."""

    id: str
    kind: str  # vibration, temperature, pressure, flow, current, ...
    value: float | None
    unit: str = ""
    mount: str | None = None  # a mount point of the equipment model, e.g. "bearing_de"
    warn_above: float | None = None
    crit_above: float | None = None
    alert_state: str | None = None  # from the alerts table; wins over the thresholds


@dataclass(frozen=True, slots=True)
class AssetInput:
    id: str
    name: str
    equipment: str = "pump"  # pump, cabinet
    account_id: str | None = None
    sensors: tuple[SensorInput, ...] = ()


# ----------------------------------------------------------------------------- scene


@dataclass(frozen=True, slots=True)
class Material:
    """A flat PBR material: sRGB base colour, as written to the palette and to USD."""

    name: str
    rgb: tuple[int, int, int]  # sRGB 0..255
    metallic: float = 0.0
    roughness: float = 0.8

    @property
    def hex(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.rgb)


@dataclass(frozen=True, slots=True)
class Part:
    """Triangles that share one material; flat-shaded (vertices are not shared by faces)."""

    name: str
    material: str
    positions_m: FloatArray  # (N, 3)
    normals: FloatArray  # (N, 3), unit length
    triangles: IndexArray  # (M, 3), counter-clockwise seen from outside

    @property
    def triangle_count(self) -> int:
        return int(self.triangles.shape[0])


@dataclass(frozen=True, slots=True)
class Label:
    """Text the page shows as a hotspot at a point of the model (never in the mesh)."""

    text: str
    position_m: tuple[float, float, float]
    detail: str = ""
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class LegendEntry:
    material: str
    hex: str
    meaning: str
    group: str  # "accounts", "devices", "route", "ground", "sensors", "equipment"


@dataclass(frozen=True, slots=True)
class Issue:
    """An input problem the scene worked around: left out, or clamped."""

    kind: Literal["left_out", "clamped"]
    subject: str  # "account a-17", "sensor s-3"
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Scene:
    kind: Literal["territory", "asset"]
    title: str
    parts: tuple[Part, ...]
    materials: tuple[Material, ...]
    labels: tuple[Label, ...] = ()
    legend: tuple[LegendEntry, ...] = ()
    scale_note: str = ""
    model_m_per_ground_m: float = 1.0
    issues: tuple[Issue, ...] = ()
    stats: dict[str, int | float | bool | str] = field(default_factory=dict)

    @property
    def triangle_count(self) -> int:
        return sum(p.triangle_count for p in self.parts)

    def bounds_m(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Axis-aligned bounds of all parts (min, max)."""
        non_empty = [p.positions_m for p in self.parts if p.positions_m.shape[0]]
        if not non_empty:
            return (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
        allp = np.concatenate(non_empty)
        lo, hi = allp.min(axis=0), allp.max(axis=0)
        return (float(lo[0]), float(lo[1]), float(lo[2])), (
            float(hi[0]),
            float(hi[1]),
            float(hi[2]),
        )

    def material(self, name: str) -> Material:
        for m in self.materials:
            if m.name == name:
                return m
        raise KeyError(name)
