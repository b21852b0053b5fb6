"""The gateway's processing as an explicit, ordered list of handlers, built in one place.

Storage runs first (gateway.writer); then every stage handler sees the messages that were
new in this batch (duplicates removed), inside the same database transaction, so what a
handler writes (geofence events, alerts, ledger leaves) commits atomically with the data
it came from: a crash can never leave one without the other. A handler keeps in-memory
state only as a cache: on `rollback` it drops what it changed since the last commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import psycopg

from gateway.decode import Decoded
from telemetry.contracts import CommandAck, EventBatch, GpsBatch, TelemetryBatch


@dataclass(slots=True)
class NewMessages:
    """Messages stored for the first time in this transaction, per kind, in arrival order."""

    telemetry: list[tuple[str, TelemetryBatch]] = field(default_factory=list)
    gps: list[tuple[str, GpsBatch]] = field(default_factory=list)
    events: list[tuple[str, EventBatch]] = field(default_factory=list)
    acks: list[tuple[str, str, CommandAck]] = field(default_factory=list)  # device, name, ack
    # time.time_ns() when the gateway received the batch's earliest message (set by the
    # writer): lets a stage measure latency from the MQTT hop on (console live feed).
    earliest_received_ns: int | None = None

    def add(self, d: Decoded) -> None:
        m = d.msg
        if isinstance(m, TelemetryBatch):
            self.telemetry.append((d.device_id, m))
        elif isinstance(m, GpsBatch):
            self.gps.append((d.device_id, m))
        elif isinstance(m, EventBatch):
            self.events.append((d.device_id, m))
        elif isinstance(m, CommandAck):
            self.acks.append((d.device_id, d.topic.name or "", m))


class StageHandler(Protocol):
    name: str

    def handle(self, conn: psycopg.Connection, new: NewMessages) -> None:
        """Inside the batch's transaction; raise to abort the whole batch (it is retried)."""

    def rollback(self) -> None:
        """The transaction failed: forget in-memory changes made since the last commit."""

    def committed(self) -> None:
        """The transaction committed: release side effects (live fan-out and the like)."""


def build_handlers(names: tuple[str, ...]) -> list[StageHandler]:
    """The ordered stage list. Packages that process the live stream plug in here."""
    handlers: list[StageHandler] = []
    for name in names:
        raise ValueError(f"unknown gateway stage {name!r}")
    return handlers
