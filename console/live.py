"""The live feed, app side: one LISTEN connection fanned out to browsers over WebSocket.

Back-pressure policy (per client, bounded, stated): positions are coalesced per device — a
slow browser gets only the newest fix of each device, older ones are dropped (drop-oldest)
and at most MAX_PENDING_POSITIONS devices are held; events (status, geofence, alerts, dead letters)
go through a deque of MAX_PENDING_EVENTS that drops the oldest when full, and the client is
told how many it missed (`{"k": "dropped", "n": ...}`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from console.live_stage import CHANNEL

log = logging.getLogger(__name__)

MAX_PENDING_POSITIONS = 5000
MAX_PENDING_EVENTS = 256


@dataclass(slots=True, eq=False)  # identity: a queue per browser, kept in a set
class ClientQueue:
    """What is waiting to be sent to one browser."""

    visible: Callable[[str], bool]  # replaced when the connection re-checks its scope
    operator: bool = False  # may see fleet-wide counts (dead letters)
    positions: dict[str, list[Any]] = field(default_factory=dict)
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_PENDING_EVENTS))
    dropped: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, msg: dict[str, Any]) -> None:
        kind = msg.get("k")
        if kind == "pos":
            rt = msg.get("rt")
            for row in msg.get("d", []):
                if not self.visible(row[0]):
                    continue
                self.positions.pop(row[0], None)  # re-insert: the dict stays oldest-first
                self.positions[row[0]] = [*row[:5], rt]
                if len(self.positions) > MAX_PENDING_POSITIONS:
                    del self.positions[next(iter(self.positions))]
                    self.dropped += 1
        elif kind in ("status", "geo", "alert"):
            rows = [r for r in msg.get("d", []) if self.visible(r[0])]
            if not rows:
                return
            self._event({"k": kind, "d": rows})
        elif kind == "dead" and self.operator:
            self._event(msg)
        else:  # deny by default: a kind this queue does not know is not forwarded
            return
        if self.positions or self.events:
            self.ready.set()

    def rescope(self, visible: Callable[[str], bool]) -> None:
        """Apply a new scope, also to what is already waiting."""
        self.visible = visible
        self.positions = {d: row for d, row in self.positions.items() if visible(d)}
        kept: deque[dict[str, Any]] = deque(maxlen=MAX_PENDING_EVENTS)
        for msg in self.events:
            if msg.get("k") in ("status", "geo", "alert"):
                rows = [r for r in msg["d"] if visible(r[0])]
                if rows:
                    kept.append({"k": msg["k"], "d": rows})
            else:
                kept.append(msg)
        self.events = kept

    def _event(self, msg: dict[str, Any]) -> None:
        if len(self.events) == self.events.maxlen:
            self.dropped += 1
        self.events.append(msg)

    def take(self) -> list[dict[str, Any]]:
        """Everything pending, as messages for the browser, and reset."""
        out: list[dict[str, Any]] = list(self.events)
        self.events.clear()
        if self.positions:
            out.append({"k": "pos", "d": list(self.positions.values())})
            self.positions = {}
        if self.dropped:
            out.append({"k": "dropped", "n": self.dropped})
            self.dropped = 0
        self.ready.clear()
        return out


@dataclass(slots=True)
class LiveHub:
    """Registered browser queues and the task that LISTENs for the gateway's notifications."""

    dsn: str
    clients: set[ClientQueue] = field(default_factory=set)
    listening: asyncio.Event = field(default_factory=asyncio.Event)
    received: int = 0

    def add(self, visible: Callable[[str], bool], operator: bool = False) -> ClientQueue:
        q = ClientQueue(visible, operator)
        self.clients.add(q)
        return q

    def remove(self, q: ClientQueue) -> None:
        self.clients.discard(q)

    def publish(self, payload: str) -> None:
        try:
            msg = json.loads(payload)
        except json.JSONDecodeError:
            log.warning("live: ignoring a notification that is not JSON: %.80s", payload)
            return
        if not isinstance(msg, dict):
            return
        self.received += 1
        for q in self.clients:
            q.offer(msg)

    async def run(self) -> None:
        """LISTEN forever; reconnect with capped, jittered backoff when the database goes."""
        backoff_s = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    backoff_s = 0.5
                    async for note in conn.notifies():
                        self.publish(note.payload)
            except psycopg.OperationalError as exc:
                self.listening.clear()
                log.warning("live: LISTEN connection lost (%s); retrying in %.1f s", exc, backoff_s)
                await asyncio.sleep(backoff_s * (0.5 + random.random()))
                backoff_s = min(backoff_s * 2, 10.0)


async def pump(
    q: ClientQueue,
    send: Callable[[str], Any],
    min_interval_s: float = 0.05,
    before_batch: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Send a client's pending messages as they come, at most every `min_interval_s`, so a
    burst of notifications becomes one frame per interval for the browser. `before_batch`
    runs before each batch is taken (the socket re-checks its credentials there)."""
    while True:
        await q.ready.wait()
        if before_batch is not None:
            await before_batch()
        for msg in q.take():
            await send(json.dumps(msg, separators=(",", ":")))
        await asyncio.sleep(min_interval_s)
