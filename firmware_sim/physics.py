"""Sensor physics of simulated equipment: load cycles, noise, gradual wear, injected failures.

Everything is a deterministic function of time given an asset's parameters (plus seeded
noise), so the same code produces live samples for the fleet and, vectorised over numpy
arrays, run-to-failure histories for training maintenance models with exact labels.

Degradation: a slow linear wear over the asset's nominal life, plus, for an asset with an
injected failure, a fault that starts at `fault_onset_s` and grows exponentially until the
asset fails at `failure_s` (health index 1.0). Each failure mode shows up mostly in
different sensors: bearing -> vibration and temperature, seal leak -> pressure drops and
current rises, overheating -> temperature and current.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

METRICS = ("temperature_c", "vibration_mm_s", "pressure_bar", "current_a")
DAY_S = 86_400.0


class FailureMode(StrEnum):
    NONE = "none"
    BEARING = "bearing"
    SEAL_LEAK = "seal_leak"
    OVERHEAT = "overheat"


@dataclass(frozen=True, slots=True)
class EquipmentModel:
    """Nominal operating point of an equipment model (a pump, a compressor, ...)."""

    name: str
    temp_c: float
    vibration_mm_s: float
    pressure_bar: float
    current_a: float
    life_days: float


EQUIPMENT_MODELS: dict[str, EquipmentModel] = {
    "pump-p200": EquipmentModel("pump-p200", 45.0, 2.2, 6.0, 12.0, 1500.0),
    "compressor-c80": EquipmentModel("compressor-c80", 70.0, 3.5, 9.0, 28.0, 1200.0),
    "chiller-x5": EquipmentModel("chiller-x5", 12.0, 1.4, 4.0, 40.0, 2500.0),
}


@dataclass(frozen=True, slots=True)
class AssetParams:
    asset_id: str
    model: EquipmentModel
    installed_s: float  # epoch seconds
    age_at_install_days: float = 0.0
    failure_mode: FailureMode = FailureMode.NONE
    fault_onset_s: float = math.inf
    failure_s: float = math.inf
    load_phase: float = 0.0  # where in the day the load peaks, radians
    noise: float = 1.0  # multiplier on sensor noise
    seed: int = 0

    def health_index(self, t_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """0 = new, 1 = failed; the label models learn."""
        t = np.asarray(t_s, dtype=np.float64)
        age_days = self.age_at_install_days + (t - self.installed_s) / DAY_S
        wear = np.clip(age_days / self.model.life_days, 0.0, 1.0) * 0.3
        if self.failure_mode is FailureMode.NONE or not math.isfinite(self.failure_s):
            return wear
        span = max(self.failure_s - self.fault_onset_s, 1.0)
        x = np.clip((t - self.fault_onset_s) / span, 0.0, None)
        # exp growth normalised so the fault reaches 1.0 exactly at failure
        fault = (np.exp(4.0 * x) - 1.0) / (math.exp(4.0) - 1.0)
        return np.clip(
            wear + (1.0 - wear) * np.where(t >= self.fault_onset_s, fault, 0.0), 0.0, 1.0
        )

    def failed(self, t_s: float) -> bool:
        return t_s >= self.failure_s


def _noise(seed: int, t_s: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.float64]:
    """Reproducible pseudo-noise per (asset, time, metric) without carrying RNG state.

    A hash of the integer second keeps live sampling and batch generation identical.
    """
    ti = np.floor(t_s).astype(np.uint64)
    x = ti * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed * 7919 + k * 104729 + 1)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    u1 = (x & np.uint64(0xFFFFFFFF)).astype(np.float64) / 2**32 + 1e-12
    u2 = (x >> np.uint64(32)).astype(np.float64) / 2**32
    return np.asarray(np.sqrt(-2.0 * np.log(u1)) * np.cos(2 * np.pi * u2), dtype=np.float64)


def readings(p: AssetParams, t_s: npt.ArrayLike) -> dict[str, npt.NDArray[np.float64]]:
    """Sensor values at the given epoch seconds, vectorised."""
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        m = p.model
        h = p.health_index(t)
        load = 0.7 + 0.3 * np.sin(2 * np.pi * (t % DAY_S) / DAY_S + p.load_phase)
        ambient = 18.0 + 6.0 * np.sin(2 * np.pi * ((t % DAY_S) / DAY_S - 0.3))
        fm = p.failure_mode
        fault = np.clip(h - 0.3 * 0, 0.0, 1.0)  # the fault share of health dominates late
        vib_gain = 6.0 if fm is FailureMode.BEARING else 1.5
        temp_gain = (
            25.0 if fm is FailureMode.OVERHEAT else (10.0 if fm is FailureMode.BEARING else 4.0)
        )
        press_drop = 0.45 if fm is FailureMode.SEAL_LEAK else 0.08
        curr_gain = 0.6 if fm in (FailureMode.SEAL_LEAK, FailureMode.OVERHEAT) else 0.15
        n = p.noise
        temp = m.temp_c + 0.35 * (ambient - 18.0) + 8.0 * (load - 0.7) + temp_gain * fault**1.5
        vib = m.vibration_mm_s * (0.8 + 0.4 * load) * (1.0 + vib_gain * fault**2)
        press = m.pressure_bar * (0.9 + 0.15 * load) * (1.0 - press_drop * fault**1.5)
        curr = m.current_a * load * (1.0 + curr_gain * fault**1.5)
        out = {
            "temperature_c": temp + 0.4 * n * _noise(p.seed, t, 0),
            "vibration_mm_s": np.abs(vib + 0.15 * n * _noise(p.seed, t, 1)),
            "pressure_bar": np.maximum(press + 0.05 * n * _noise(p.seed, t, 2), 0.0),
            "current_a": np.maximum(curr + 0.3 * n * _noise(p.seed, t, 3), 0.0),
        }
        failed = t >= p.failure_s
        if failed.any():
            # A failed machine trips: no load, pressure gone, vibration from a seized rotor.
            out["current_a"] = np.where(failed, 0.0, out["current_a"])
            out["pressure_bar"] = np.where(failed, 0.0, out["pressure_bar"])
        return out


def random_asset(
    rng: np.random.Generator,
    asset_id: str,
    now_s: float,
    *,
    failure_probability: float = 0.3,
    horizon_days: float = 60.0,
) -> AssetParams:
    """An asset with a random model, age and, with the given probability, a failure
    somewhere in the next `horizon_days` (its fault starting 5 to 30 days before)."""
    model = list(EQUIPMENT_MODELS.values())[int(rng.integers(len(EQUIPMENT_MODELS)))]
    installed = now_s - float(rng.uniform(30, 900)) * DAY_S
    if rng.random() < failure_probability:
        mode = [FailureMode.BEARING, FailureMode.SEAL_LEAK, FailureMode.OVERHEAT][
            int(rng.integers(3))
        ]
        failure = now_s + float(rng.uniform(1.0, horizon_days)) * DAY_S
        onset = failure - float(rng.uniform(5.0, 30.0)) * DAY_S
    else:
        mode, failure, onset = FailureMode.NONE, math.inf, math.inf
    return AssetParams(
        asset_id=asset_id,
        model=model,
        installed_s=installed,
        failure_mode=mode,
        fault_onset_s=onset,
        failure_s=failure,
        load_phase=float(rng.uniform(0, 2 * np.pi)),
        noise=float(rng.uniform(0.7, 1.3)),
        seed=int(rng.integers(2**31)),
    )
