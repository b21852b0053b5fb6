"""The asset scene: a parametric equipment model with its sensors placed on it.

Pure: AssetInput in, Scene out, at real size (1:1, metres, Y up). A pump is a base plate,
a volute casing with an inlet and an outlet pipe, a coupling and a motor; each sensor sits
at its mount point (or around the casing when its mount is unknown) as a small sphere
coloured by its alert state, or by its latest reading against its thresholds.
"""

from __future__ import annotations

import math
from collections import defaultdict

from ar_viewer import mesh
from ar_viewer.errors import SceneInputError
from ar_viewer.model import AssetInput, Issue, Label, LegendEntry, Part, Scene, SensorInput
from ar_viewer.palette import ALERT_MEANING, MATERIAL_BY_NAME, MATERIALS, alert_material

Vec3 = tuple[float, float, float]

SENSOR_RADIUS_M = 0.035


def _pump() -> tuple[list[tuple[str, str, mesh.MeshData]], dict[str, Vec3]]:
    body = [
        ("base", "base", mesh.box((0.0, 0.025, 0.0), (1.0, 0.05, 0.4))),
        ("casing", "steel", mesh.cylinder((-0.3, 0.3, -0.09), (-0.3, 0.3, 0.09), 0.2)),
        ("casing_foot", "steel", mesh.box((-0.3, 0.075, 0.0), (0.2, 0.1, 0.16))),
        ("inlet", "pipe", mesh.cylinder((-0.3, 0.3, 0.09), (-0.3, 0.3, 0.35), 0.07)),
        ("outlet", "pipe", mesh.cylinder((-0.3, 0.5, 0.0), (-0.3, 0.85, 0.0), 0.06)),
        ("shaft", "steel", mesh.cylinder((-0.1, 0.3, 0.0), (0.05, 0.3, 0.0), 0.03)),
        ("coupling", "steel", mesh.cylinder((-0.05, 0.3, 0.0), (0.02, 0.3, 0.0), 0.06)),
        ("motor", "motor", mesh.cylinder((0.05, 0.3, 0.0), (0.45, 0.3, 0.0), 0.15)),
        ("motor_fan_cover", "motor", mesh.cylinder((0.45, 0.3, 0.0), (0.5, 0.3, 0.0), 0.13)),
        ("motor_feet", "motor", mesh.box((0.25, 0.1, 0.0), (0.3, 0.1, 0.26))),
    ]  # fmt: skip
    mounts: dict[str, Vec3] = {
        "bearing_de": (0.08, 0.3 + 0.15 + 0.02, 0.0),
        "bearing_nde": (0.42, 0.3 + 0.15 + 0.02, 0.0),
        "motor_winding": (0.25, 0.3 + 0.15 + 0.02, 0.0),
        "motor_current": (0.25, 0.3, 0.15 + 0.02),
        "casing": (-0.3, 0.3, -0.09 - 0.02),
        "inlet_pressure": (-0.3, 0.3 + 0.07 + 0.02, 0.3),
        "outlet_pressure": (-0.3 + 0.06 + 0.02, 0.62, 0.0),
        "flow": (-0.3 + 0.06 + 0.02, 0.78, 0.0),
    }
    return body, mounts


def _cabinet() -> tuple[list[tuple[str, str, mesh.MeshData]], dict[str, Vec3]]:
    body = [
        ("base", "base", mesh.box((0.0, 0.025, 0.0), (0.7, 0.05, 0.5))),
        ("cabinet", "steel", mesh.box((0.0, 0.65, 0.0), (0.6, 1.2, 0.45))),
    ]
    mounts: dict[str, Vec3] = {"top": (0.0, 1.27, 0.0), "front": (0.0, 0.9, 0.25)}
    return body, mounts


EQUIPMENT = {"pump": _pump, "cabinet": _cabinet}

_KIND_TO_MOUNT = {
    "vibration": "bearing_de",
    "temperature": "motor_winding",
    "current": "motor_current",
    "pressure": "outlet_pressure",
    "flow": "flow",
}


def sensor_state(s: SensorInput) -> tuple[str, str | None]:
    """(alert state, problem) of a sensor: the alert table wins, else thresholds on the reading."""
    if s.alert_state is not None:
        state = s.alert_state.strip().lower()
        if state in ALERT_MEANING:
            return state, None
        return "unknown", f"unknown alert state {s.alert_state!r}"
    if s.value is None:
        return "unknown", None
    if not math.isfinite(s.value):
        return "unknown", f"reading {s.value} is not a number"
    if s.crit_above is not None and s.value >= s.crit_above:
        return "critical", None
    if s.warn_above is not None and s.value >= s.warn_above:
        return "warning", None
    return "ok", None


def build_asset_scene(a: AssetInput) -> Scene:
    """Build the 1:1 scene of one piece of equipment and its sensors."""
    if a.equipment not in EQUIPMENT:
        raise SceneInputError(
            f"unknown equipment {a.equipment!r}; known: {', '.join(sorted(EQUIPMENT))}",
            field="equipment",
        )
    body, mounts = EQUIPMENT[a.equipment]()
    issues: list[Issue] = []
    groups: dict[str, list[mesh.MeshData]] = defaultdict(list)
    for _, material, m in body:
        groups[material].append(m)
    labels: list[Label] = []
    used_mounts: dict[str, int] = defaultdict(int)
    spare = 0
    for s in a.sensors:
        state, problem = sensor_state(s)
        if problem:
            issues.append(
                Issue(
                    "clamped",
                    f"sensor {s.id}",
                    "value" if "reading" in problem else "alert_state",
                    f"{problem}; shown as {state}",
                )
            )
        mount = s.mount if s.mount in mounts else _KIND_TO_MOUNT.get(s.kind)
        if s.mount is not None and s.mount not in mounts:
            issues.append(
                Issue(
                    "clamped",
                    f"sensor {s.id}",
                    "mount",
                    f"unknown mount {s.mount!r} on a {a.equipment}; placed by kind",
                )
            )
        if mount is None or mount not in mounts:
            # around the top of the model, one after another
            angle = spare * 0.9
            spare += 1
            x, z = 0.3 * math.cos(angle), 0.3 * math.sin(angle)
            top = max(float(m.positions_m[:, 1].max()) for _, _, m in body)
            pos: Vec3 = (x, top + SENSOR_RADIUS_M * 1.5, z)
        else:
            k = used_mounts[mount]
            used_mounts[mount] += 1
            bx, by, bz = mounts[mount]
            pos = (bx, by + k * SENSOR_RADIUS_M * 2.4, bz)
        groups[alert_material(state)].append(mesh.sphere(pos, SENSOR_RADIUS_M))
        reading = (
            "no reading"
            if s.value is None or not math.isfinite(s.value)
            else f"{s.value:.3g} {s.unit}".strip()
        )
        labels.append(Label(f"{s.kind} {reading}", pos, f"sensor {s.id}: {ALERT_MEANING[state]}"))
    parts: list[Part] = [mesh.to_part(name, name, mesh.merge(ms)) for name, ms in groups.items()]
    used = set(groups)
    legend = [
        LegendEntry(
            alert_material(state),
            MATERIAL_BY_NAME[alert_material(state)].hex,
            f"sensor: {meaning}",
            "sensors",
        )
        for state, meaning in ALERT_MEANING.items()
        if alert_material(state) in used
    ]
    legend += [
        LegendEntry(n, MATERIAL_BY_NAME[n].hex, f"equipment: {n}", "equipment")
        for n in ("steel", "motor", "pipe", "base")
        if n in used
    ]
    materials = tuple(m for m in MATERIALS if m.name in used)
    scene = Scene(
        "asset", f"{a.name} ({a.equipment})", tuple(parts), materials, tuple(labels), tuple(legend),
        "scale 1:1 (real size, metres)", 1.0, tuple(issues),
        {"sensors": len(a.sensors), "equipment": a.equipment},
    )  # fmt: skip
    scene.stats["triangles"] = scene.triangle_count
    return scene


# Telemetry metric names (`<kind>_<unit>`, as firmware_sim reports them) -> sensor kind,
# display unit and default thresholds (vibration after ISO 10816 class II).
METRIC_CATALOGUE: dict[str, tuple[str, str, float | None, float | None]] = {
    "vibration_mm_s": ("vibration", "mm/s", 4.5, 11.2),
    "temperature_c": ("temperature", "°C", 80.0, 95.0),
    "pressure_bar": ("pressure", "bar", 8.0, 10.0),
    "current_a": ("current", "A", 14.0, 16.0),
    "flow_m3_h": ("flow", "m³/h", None, None),
}


def sensor_from_metric(
    device_id: str, metric: str, value: float | None, alert_state: str | None = None
) -> SensorInput:
    """A sensor for a telemetry metric of a device, with the catalogue's kind and thresholds."""
    kind, unit, warn, crit = METRIC_CATALOGUE.get(metric, (metric.split("_", 1)[0], "", None, None))
    return SensorInput(f"{device_id}/{metric}", kind, value, unit, None, warn, crit, alert_state)
