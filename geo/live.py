"""The live engine inside the gateway: GPS fixes of each committed batch -> geofence
events, visits and CRM activities, in the batch's own transaction.

`LiveGeo` wraps the pure engine (geo/engine.py) with persistence (geo/store.py):

* `load(conn)` reads the active geofences and every subject's saved state;
* `on_fixes(conn, device_id, fixes)` evaluates one device's fixes and writes the events,
  flagged fixes, visits and the touched subjects' state; it returns the events;
* `reload_fences(conn)` rebuilds the spatial index; `on_fixes` calls it by itself when
  the geofences' revision counter (bumped by a trigger) has moved;
* `rollback()` forgets in-memory changes since the last `committed()`, so a failed
  transaction leaves the engine exactly as the database has it;
* `flush_quiet(conn, now_s)` commits the buffered fixes of devices that have sent
  nothing for `reorder_window_s` of wall-clock time (a phone that went silent after
  leaving a site still gets its exit). Event time decides everything else: a device
  that keeps reporting is never flushed by the wall clock, so its replayed or shuffled
  batches keep the reorder window's protection.

`GeoStage` is the gateway pipeline handler (gateway.pipeline.StageHandler) around it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from geo import store
from geo.engine import Engine, EngineConfig, GeoEvent, Outcome
from geo.visits import visit_actions
from telemetry.contracts import Fix

log = logging.getLogger(__name__)


class LiveGeo:
    def __init__(
        self, config: EngineConfig | None = None, visit_hooks: store.VisitHooks | None = None
    ) -> None:
        self.engine = Engine((), config)
        self.visit_hooks = visit_hooks
        self.revision: int | None = None
        self._account_of: dict[str, int | None] = {}
        self._undo: dict[str, dict[str, Any] | None] = {}  # subject -> state before this txn
        self._undo_revision: int | None = None
        self._undo_fences: bool = False
        self._arrived_s: dict[str, float] = {}  # device -> wall-clock time of its last batch

    # ------------------------------------------------------------------ loading

    def load(self, conn: psycopg.Connection) -> None:
        self.reload_fences(conn)
        for subject_id, state in store.load_states(conn).items():
            self.engine.import_state(subject_id, state)

    def reload_fences(self, conn: psycopg.Connection) -> None:
        revision = store.fence_revision(conn)
        fences = store.load_fences(conn)
        self.engine.set_fences(fences)
        self._account_of = {
            f.id: None if f.account_id is None else int(f.account_id) for f in fences
        }
        if self._undo_revision is None:
            self._undo_revision = self.revision
        self.revision = revision
        self._undo_fences = True
        log.info("geofences loaded: %d (revision %d)", len(fences), revision)

    def _maybe_reload(self, conn: psycopg.Connection) -> None:
        if self.revision is None:
            self.load(conn)
        elif store.fence_revision(conn) != self.revision:
            self.reload_fences(conn)

    # ------------------------------------------------------------------ live path

    def on_fixes(
        self, conn: psycopg.Connection, device_id: str, fixes: Sequence[Fix]
    ) -> list[GeoEvent]:
        return self.on_batches(conn, [(device_id, fixes)])

    def on_batches(
        self,
        conn: psycopg.Connection,
        batches: Sequence[tuple[str, Sequence[Fix]]],
        now_s: float | None = None,
    ) -> list[GeoEvent]:
        """Several devices' fixes at once (one gateway transaction)."""
        self._maybe_reload(conn)
        out = Outcome()
        for device_id, fixes in batches:
            if now_s is not None:
                self._arrived_s[device_id] = now_s
            if device_id not in self._undo:
                known = device_id in self.engine.subjects
                self._undo[device_id] = self.engine.export_state(device_id) if known else None
            out.extend(
                self.engine.ingest(
                    device_id,
                    [f.t_ms for f in fixes],
                    [f.lon for f in fixes],
                    [f.lat for f in fixes],
                    [f.accuracy_m for f in fixes],
                )
            )
            out.touched.add(device_id)
        self._persist(conn, out)
        return out.events

    def flush_quiet(self, conn: psycopg.Connection, now_s: float) -> list[GeoEvent]:
        """Commit the buffered fixes of devices silent for the reorder window (wall clock)."""
        window_s = self.engine.config.reorder_window_s
        quiet = [d for d, t in self._arrived_s.items() if now_s - t >= window_s]
        if not quiet:
            return []
        self._maybe_reload(conn)
        out = Outcome()
        for device_id in quiet:
            del self._arrived_s[device_id]
            self._undo.setdefault(device_id, self.engine.export_state(device_id))
            out.extend(self.engine.flush(device_id))
            out.touched.add(device_id)
        self._persist(conn, out)
        return out.events

    def advance(self, conn: psycopg.Connection, now_ms: int) -> list[GeoEvent]:
        """Commit fixes whose reorder window has closed by the wall clock (a periodic tick)."""
        self._maybe_reload(conn)
        for sid in self.engine.subjects:
            self._undo.setdefault(sid, self.engine.export_state(sid))
        out = self.engine.advance(now_ms)
        out.touched |= set(self.engine.subjects)
        self._persist(conn, out)
        return out.events

    def _persist(self, conn: psycopg.Connection, out: Outcome) -> None:
        store.insert_events(conn, out.events, self._account_of)
        store.insert_flagged(conn, out.flagged)
        store.apply_visits(conn, visit_actions(out.events, self._account_of), self.visit_hooks)
        store.save_states(conn, {sid: self.engine.export_state(sid) for sid in out.touched})
        if out.flagged:
            log.info(
                "geo: %d fixes flagged (%s)",
                len(out.flagged),
                sorted({f.reason.value for f in out.flagged}),
            )

    # ------------------------------------------------------------------ transactions

    def committed(self) -> None:
        self._undo.clear()
        self._undo_revision = None
        self._undo_fences = False

    def rollback(self) -> None:
        for sid, state in self._undo.items():
            if state is None:
                self.engine.import_state(sid, _EMPTY_STATE)
            else:
                self.engine.import_state(sid, state)
        self._undo.clear()
        if self._undo_fences:
            self.revision = None  # reload fences and states on next use
            self._undo_fences = False
        self._undo_revision = None


_EMPTY_STATE: dict[str, Any] = {
    "v": 1,
    "tracks": {},
    "committed_ms": None,
    "max_seen_ms": None,
    "last": None,
    "buffer": [],
}


QUIET_CHECK_S = 5.0


class GeoStage:
    """gateway.pipeline.StageHandler: geofences for the batch's new GPS messages."""

    name = "geo"

    def __init__(
        self,
        config: EngineConfig | None = None,
        clock: Callable[[], float] = time.time,
        visit_hooks: store.VisitHooks | None = None,
    ) -> None:
        self.live = LiveGeo(config, visit_hooks)
        self.clock = clock
        self.last_events: list[GeoEvent] = []
        self._next_quiet_check_s = 0.0

    def handle(self, conn: psycopg.Connection, new: Any) -> None:
        now_s = self.clock()
        batches = [(device_id, batch.fixes) for device_id, batch in new.gps]
        events = self.live.on_batches(conn, batches, now_s) if batches else []
        if now_s >= self._next_quiet_check_s:
            self._next_quiet_check_s = now_s + QUIET_CHECK_S
            events += self.live.flush_quiet(conn, now_s)
        self.last_events = events

    def rollback(self) -> None:
        self.live.rollback()

    def committed(self) -> None:
        self.live.committed()
