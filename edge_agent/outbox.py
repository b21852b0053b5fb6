"""SQLite store-and-forward outbox: every unsent message survives restarts and days offline.

A message's life: `pending` (stored, not yet handed to the broker) -> `inflight` (published,
waiting for the broker's PUBACK) -> `sent` (the broker has it) -> deleted when the gateway's
receipt says it is durably stored. A PUBACK alone is not enough: a broker crash can lose
messages it already acknowledged, so `sent` rows whose receipt does not come within a
timeout go back to `pending` and are published again (the gateway deduplicates on seq).

When full (`max_messages`), the stated policy is: evict the oldest telemetry batches first
(they are the least valuable one by one), then the oldest GPS batches; events and command
acks are never evicted — appending one to an outbox holding only those raises OutboxFull.
Every eviction is counted in `evicted`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

PENDING, INFLIGHT, SENT = 0, 1, 2
_EVICTION_ORDER = ("telemetry", "gps")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq     INTEGER PRIMARY KEY,
    kind    TEXT    NOT NULL,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    state   INTEGER NOT NULL DEFAULT 0,
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class OutboxError(RuntimeError):
    """The outbox cannot take the message."""


class OutboxFull(OutboxError):
    """Full of messages the policy never evicts."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    kind: str
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    inflight: int
    sent: int
    evicted: int
    next_seq: int

    @property
    def total(self) -> int:
        return self.pending + self.inflight + self.sent


class Outbox:
    """Not shared across processes; a lock makes it safe across an agent's threads."""

    def __init__(self, path: Path | str, max_messages: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        # WAL + synchronous=NORMAL: durable across process crashes, cheap commits.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('next_seq', 1), ('evicted', 0)")
        # After a restart nothing is in flight any more.
        self._db.execute("UPDATE outbox SET state = ? WHERE state = ?", (PENDING, INFLIGHT))
        self.max_messages = max_messages
        self._count = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _meta(self, key: str) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    def advance_seq(self, at_least: int) -> None:
        """Number the next message no lower than `at_least` (a device enrolled again under
        an id the platform has messages of: lower seqs would be taken for duplicates)."""
        with self._lock:
            self._db.execute(
                "UPDATE meta SET value = max(value, ?) WHERE key = 'next_seq'", (at_least,)
            )
            self._db.commit()

    def append(self, kind: str, topic: str, make_payload: Callable[[int], bytes]) -> int:
        """Allocate the next seq, build the payload with it, and store both atomically."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._count >= self.max_messages:
                    self._evict_one()
                seq = self._meta("next_seq")
                payload = make_payload(seq)
                self._db.execute(
                    "INSERT INTO outbox (seq, kind, topic, payload) VALUES (?, ?, ?, ?)",
                    (seq, kind, topic, payload),
                )
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (seq + 1,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count += 1
            return seq

    def _evict_one(self) -> None:
        for kind in _EVICTION_ORDER:
            row = self._db.execute(
                "SELECT seq FROM outbox WHERE kind = ? ORDER BY seq LIMIT 1", (kind,)
            ).fetchone()
            if row:
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (row[0],))
                self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'evicted'")
                self._count -= 1
                return
        raise OutboxFull(f"outbox holds {self._count} events/acks, which are never evicted")

    def next_to_send(self, limit: int) -> list[OutboxRow]:
        """Oldest pending messages first, marked in flight."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, topic, payload FROM outbox WHERE state = ? ORDER BY seq LIMIT ?",
                (PENDING, limit),
            ).fetchall()
            if rows:
                self._db.executemany(
                    "UPDATE outbox SET state = ? WHERE seq = ?", [(INFLIGHT, r[0]) for r in rows]
                )
        return [OutboxRow(*r) for r in rows]

    def mark_sent(self, seq: int, now_s: float) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET state = ?, sent_at = ? WHERE seq = ? AND state = ?",
                (SENT, now_s, seq, INFLIGHT),
            )

    def mark_pending(self, seqs: Iterable[int]) -> None:
        with self._lock:
            self._db.executemany(
                "UPDATE outbox SET state = ? WHERE seq = ?", [(PENDING, s) for s in seqs]
            )

    def requeue_inflight(self) -> int:
        """After a lost connection, what was in flight must be published again."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE outbox SET state = ? WHERE state = ?", (PENDING, INFLIGHT)
            )
            return cur.rowcount

    def requeue_unconfirmed(self, older_than_s: float) -> int:
        """Sent but never confirmed by a receipt: publish again."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE outbox SET state = ? WHERE state = ? AND sent_at < ?",
                (PENDING, SENT, older_than_s),
            )
            return cur.rowcount

    def confirm(self, seqs: Iterable[int]) -> int:
        """The gateway stored these: forget them."""
        with self._lock:
            before = self._db.total_changes
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
            removed = self._db.total_changes - before
            self._count -= removed
            return removed

    def stats(self) -> OutboxStats:
        with self._lock:
            counts = dict(
                self._db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
            )
            return OutboxStats(
                pending=counts.get(PENDING, 0),
                inflight=counts.get(INFLIGHT, 0),
                sent=counts.get(SENT, 0),
                evicted=self._meta("evicted"),
                next_seq=self._meta("next_seq"),
            )
