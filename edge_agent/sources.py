"""What an agent samples: sensor and GPS sources behind one small interface."""

from __future__ import annotations

from typing import Any, Protocol

from telemetry.contracts import Fix, Sample


class SensorSource(Protocol):
    """Returns the readings due between its last poll and `now_ms` (device clock)."""

    def poll(self, now_ms: int) -> list[Sample]: ...

    def set_interval_s(self, interval_s: float) -> None: ...


class GpsSource(Protocol):
    def poll(self, now_ms: int) -> list[Fix]: ...

    def set_interval_s(self, interval_s: float) -> None: ...


class EventSource(Protocol):
    """Field events the device originates: (t_ms, type, data) due up to `now_ms`."""

    def poll(self, now_ms: int) -> list[tuple[int, str, dict[str, Any]]]: ...
