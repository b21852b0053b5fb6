"""Synthetic territories and assets (seeded): for the benchmark, the demo and tests."""

from __future__ import annotations

import math

import numpy as np

from ar_viewer.model import AccountInput, AssetInput, DeviceInput, SensorInput, TerritoryInput


def synthetic_territory(
    n_accounts: int,
    *,
    seed: int = 7,
    name: str = "Synthetic",
    centre: tuple[float, float] = (8.54, 47.37),
    radius_deg: float = 0.3,
) -> TerritoryInput:
    """A star-shaped territory around centre with n accounts clustered in a few towns,
    one device per fifth account (mixed alert states), and a route through ten sites."""
    rng = np.random.default_rng(seed)
    k = 14
    ang = np.linspace(0, 2 * math.pi, k, endpoint=False)
    r = radius_deg * (0.75 + 0.25 * rng.random(k))
    lat_scale = math.cos(math.radians(centre[1]))
    ring = tuple(
        (centre[0] + float(ri * math.cos(a)) / lat_scale, centre[1] + float(ri * math.sin(a)))
        for ri, a in zip(r, ang, strict=True)
    )
    ring = (*ring, ring[0])
    towns = rng.normal(0, radius_deg * 0.35, size=(6, 2))
    town = rng.integers(0, len(towns), n_accounts)
    offs = towns[town] + rng.normal(0, radius_deg * 0.08, size=(n_accounts, 2))
    dist = np.linalg.norm(offs, axis=1, keepdims=True)
    offs = np.where(
        dist > 0.7 * radius_deg, offs / np.maximum(dist, 1e-12) * 0.7 * radius_deg, offs
    )
    lon = centre[0] + offs[:, 0] / lat_scale
    lat = centre[1] + offs[:, 1]
    revenue = rng.lognormal(12.5, 1.0, n_accounts)
    pipeline = rng.lognormal(10.5, 1.2, n_accounts) * (rng.random(n_accounts) < 0.6)
    health = np.clip(rng.normal(68, 18, n_accounts), 0, 100)
    accounts = tuple(
        AccountInput(
            f"acc-{i}",
            f"Account {i}",
            float(lon[i]),
            float(lat[i]),
            float(revenue[i]),
            float(pipeline[i]),
            float(health[i]),
        )
        for i in range(n_accounts)
    )
    states = ("ok", "ok", "ok", "warning", "critical", "offline")
    devices = tuple(
        DeviceInput(f"dev-{i}", f"acc-{i}", None, None, states[i % len(states)])
        for i in range(0, n_accounts, 5)
    )
    stops = (
        rng.choice(n_accounts, size=min(10, n_accounts), replace=False)
        if n_accounts
        else np.zeros(0, int)
    )
    # visit the stops round the territory's centre, as a planned day would
    ordered = sorted(stops, key=lambda i: math.atan2(float(offs[i, 1]), float(offs[i, 0])))
    route = tuple((float(lon[i]), float(lat[i])) for i in ordered)
    return TerritoryInput(name, ((ring,),), accounts, devices, route)


def synthetic_pump(asset_id: str = "pump-1") -> AssetInput:
    sensors = (
        SensorInput(
            "s-vib-de", "vibration", 7.4, "mm/s", "bearing_de", warn_above=4.5, crit_above=11.2
        ),
        SensorInput(
            "s-vib-nde", "vibration", 2.1, "mm/s", "bearing_nde", warn_above=4.5, crit_above=11.2
        ),
        SensorInput(
            "s-temp", "temperature", 96.0, "°C", "motor_winding", warn_above=80, crit_above=95
        ),
        SensorInput("s-cur", "current", 11.8, "A", "motor_current", warn_above=14, crit_above=16),
        SensorInput("s-p-in", "pressure", 1.1, "bar", "inlet_pressure", warn_above=6, crit_above=8),
        SensorInput(
            "s-p-out", "pressure", 5.2, "bar", "outlet_pressure", warn_above=6, crit_above=8
        ),
        SensorInput("s-flow", "flow", None, "m³/h", "flow"),
    )
    return AssetInput(asset_id, "Booster pump P-101", "pump", "acc-1", sensors)
