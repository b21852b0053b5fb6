"""Anomaly scoring on the live stream, sample by sample, at bounded cost (pure).

Devices send one sample per metric; `RowAssembler` joins the samples of a device that
share a timestamp into one row once every metric the model expects has arrived (keeping
at most `max_pending` incomplete timestamps per device). `AnomalyMonitor` scores each row
with the detector's `OnlineScorer` (a bounded window per device) and turns scores into
raise / clear transitions with hysteresis: `raise_after` anomalous rows in a row raise,
`clear_after` normal rows in a row clear. Cost per sample: one dict update; per row: one
window of `buffer_rows` rows.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from insights.maintenance.anomaly import AnomalyDetector, OnlineScorer
from insights.maintenance.cmapss import FloatArray
from insights.maintenance.errors import DataFormatError


class RowAssembler:
    """Joins per-metric samples of a device into rows by timestamp."""

    def __init__(self, metrics: tuple[str, ...], max_pending: int = 16) -> None:
        if not metrics:
            raise DataFormatError("an assembler needs at least one metric")
        self.metrics = metrics
        self._index = {m: i for i, m in enumerate(metrics)}
        self.max_pending = max_pending
        self._pending: dict[str, OrderedDict[int, dict[int, float]]] = {}

    def add(self, device_id: str, t_ms: int, metric: str, value: float) -> FloatArray | None:
        """The completed row for (device, t_ms), or None while metrics are missing."""
        j = self._index.get(metric)
        if j is None:
            return None
        pending = self._pending.setdefault(device_id, OrderedDict())
        row = pending.get(t_ms)
        if row is None:
            row = pending[t_ms] = {}
            while len(pending) > self.max_pending:
                pending.popitem(last=False)  # an incomplete old row: a metric never came
        row[j] = value
        if len(row) < len(self.metrics):
            return None
        del pending[t_ms]
        return np.array([row[i] for i in range(len(self.metrics))], dtype=np.float64)


class LiveKind(StrEnum):
    RAISE = "raise"
    CLEAR = "clear"


@dataclass(frozen=True, slots=True)
class LiveTransition:
    kind: LiveKind
    device_id: str
    t_ms: int
    score: float
    window_start_ms: int


@dataclass(slots=True)
class _Hysteresis:
    active: bool = False
    streak: int = 0
    since_ms: int = 0


@dataclass(slots=True)
class AnomalyMonitor:
    """One equipment model's detector applied to every device of that model."""

    detector: AnomalyDetector
    metrics: tuple[str, ...]  # the detector's sensor columns, by metric name, in order
    settings: FloatArray  # the model's operating settings (as in training)
    raise_after: int = 3
    clear_after: int = 6
    _assembler: RowAssembler = field(init=False)
    _scorer: OnlineScorer = field(init=False)
    _state: dict[str, _Hysteresis] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.metrics) != len(self.detector.normaliser.sensor_names):
            raise DataFormatError(
                f"the detector expects {len(self.detector.normaliser.sensor_names)} metrics, "
                f"got {len(self.metrics)}"
            )
        if self.raise_after < 1 or self.clear_after < 1:
            raise DataFormatError("raise_after and clear_after must be at least 1")
        self._assembler = RowAssembler(self.metrics)
        self._scorer = OnlineScorer(self.detector)

    def observe(
        self, device_id: str, t_ms: int, metric: str, value: float
    ) -> LiveTransition | None:
        row = self._assembler.add(device_id, t_ms, metric, value)
        if row is None:
            return None
        score = self._scorer.update(device_id, self.settings, row)
        if score is None:
            return None
        st = self._state.setdefault(device_id, _Hysteresis())
        anomalous = score > self.detector.threshold
        if anomalous != st.active:
            if st.streak == 0:
                st.since_ms = t_ms
            st.streak += 1
            if st.streak >= (self.raise_after if anomalous else self.clear_after):
                st.active = anomalous
                st.streak = 0
                kind = LiveKind.RAISE if anomalous else LiveKind.CLEAR
                return LiveTransition(kind, device_id, t_ms, score, st.since_ms)
        else:
            st.streak = 0
        return None
