"""Reader for run-to-failure trajectories in the NASA C-MAPSS text format.

Each row: unit number, time in cycles, operational settings, then sensor measurements,
separated by whitespace. The number of settings is fixed by the format (3); the number of
sensors is whatever remains (21 in the public files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from insights.maintenance.errors import DataFormatError

N_SETTINGS = 3

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Trajectories:
    """Multivariate time series of many units, rows sorted by (unit, cycle)."""

    unit: IntArray  # (n,)
    cycle: IntArray  # (n,)
    settings: FloatArray  # (n, n_settings)
    sensors: FloatArray  # (n, n_sensors)
    sensor_names: tuple[str, ...]

    def __post_init__(self) -> None:
        n = self.unit.shape[0]
        if self.cycle.shape != (n,) or self.settings.shape[0] != n or self.sensors.shape[0] != n:
            raise DataFormatError("unit, cycle, settings and sensors must have the same rows")
        if self.sensors.shape[1] != len(self.sensor_names):
            raise DataFormatError("sensor_names must name every sensor column")

    @property
    def n_rows(self) -> int:
        return int(self.unit.shape[0])

    def units(self) -> IntArray:
        """Unit ids in order of appearance."""
        _, first = np.unique(self.unit, return_index=True)
        return self.unit[np.sort(first)]

    def unit_slices(self) -> list[tuple[int, slice]]:
        """(unit id, row slice) for each unit; rows of a unit are contiguous."""
        bounds = np.flatnonzero(np.diff(self.unit)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [self.n_rows]))
        return [
            (int(self.unit[s]), slice(int(s), int(e))) for s, e in zip(starts, ends, strict=True)
        ]

    def select(self, rows: npt.NDArray[np.bool_] | IntArray) -> Trajectories:
        """A subset of rows (a boolean mask or indices), keeping the order."""
        return Trajectories(
            unit=self.unit[rows],
            cycle=self.cycle[rows],
            settings=self.settings[rows],
            sensors=self.sensors[rows],
            sensor_names=self.sensor_names,
        )

    def select_units(self, units: IntArray | list[int]) -> Trajectories:
        return self.select(np.isin(self.unit, np.asarray(units)))

    def lifetimes(self) -> dict[int, int]:
        """Last observed cycle of each unit (its life, for run-to-failure data)."""
        return {u: int(self.cycle[s.stop - 1]) for u, s in self.unit_slices()}


def from_array(data: FloatArray) -> Trajectories:
    """Build trajectories from a (n, 2 + 3 + n_sensors) array; sorts by (unit, cycle)."""
    if data.ndim != 2 or data.shape[1] < 2 + N_SETTINGS + 1:
        raise DataFormatError(
            f"expected at least {2 + N_SETTINGS + 1} columns (unit, cycle, "
            f"{N_SETTINGS} settings, sensors), got shape {data.shape}"
        )
    if data.shape[0] == 0:
        raise DataFormatError("no rows")
    if not np.all(np.isfinite(data)):
        raise DataFormatError("non-finite values in the data")
    unit = data[:, 0].astype(np.int64)
    cycle = data[:, 1].astype(np.int64)
    order = np.lexsort((cycle, unit))
    n_sensors = data.shape[1] - 2 - N_SETTINGS
    return Trajectories(
        unit=unit[order],
        cycle=cycle[order],
        settings=np.ascontiguousarray(data[order, 2 : 2 + N_SETTINGS], dtype=np.float64),
        sensors=np.ascontiguousarray(data[order, 2 + N_SETTINGS :], dtype=np.float64),
        sensor_names=tuple(f"s{i + 1}" for i in range(n_sensors)),
    )


def read_cmapss(path: Path) -> Trajectories:
    """Read one C-MAPSS file (train_FD00x.txt or test_FD00x.txt)."""
    if not path.is_file():
        raise DataFormatError(f"no such file: {path}")
    try:
        data = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataFormatError(f"{path}: not a whitespace-separated numeric table: {exc}") from exc
    return from_array(data)


def read_rul(path: Path) -> FloatArray:
    """Read a ground-truth file (one RUL per line, in unit order)."""
    if not path.is_file():
        raise DataFormatError(f"no such file: {path}")
    return np.loadtxt(path, dtype=np.float64, ndmin=1)
