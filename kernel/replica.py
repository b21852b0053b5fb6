"""Lag-tolerant reads from a streaming replica, with a bounded staleness.

A list, a report or a dashboard may be a few seconds old; a write and what its author
reads right after it may not. `ReadRouter.connection()` hands out a replica connection
only while the replica is reachable, streaming, and its replay lag is within
`max_lag_s`; otherwise (replica down, stale, or the caller wrote recently) the
primary's. The lag is measured on the replica at most once per `check_every_s`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

# Replay lag in seconds: 0 when everything received is replayed (an idle primary has no
# new transactions to time), else the age of the last replayed transaction. A replica
# whose WAL receiver is not streaming is stale whatever it says.
_LAG_SQL = """
SELECT pg_is_in_recovery(),
       (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'),
       CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0
            ELSE EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8
       END
"""


@dataclass(slots=True)
class ReplicaState:
    status: str = "unknown"  # ok | stale | down | unknown
    lag_s: float | None = None
    checked_at: float = 0.0
    replica_reads: int = 0
    primary_reads: int = 0


class ReadRouter:
    def __init__(
        self,
        primary: AsyncConnectionPool[Any],
        replica_dsn: str,
        max_lag_s: float,
        *,
        check_every_s: float = 1.0,
        down_retry_s: float = 5.0,
    ) -> None:
        self.primary = primary
        self.max_lag_s = max_lag_s
        self.check_every_s = check_every_s
        self.down_retry_s = down_retry_s
        self.state = ReplicaState()
        self._pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            replica_dsn,
            min_size=0,
            max_size=10,
            open=False,
            timeout=2.0,
            # a pooled connection to a replica that restarted is dead: test it on checkout
            # (one round trip) so that a read never fails where the primary would answer
            check=AsyncConnectionPool.check_connection,
        )

    async def open(self) -> None:
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    async def check(self) -> ReplicaState:
        """Measure the replica's lag now (and remember it)."""
        st = self.state
        try:
            async with self._pool.connection(timeout=2.0) as conn:
                cur = await conn.execute(_LAG_SQL)
                row = await cur.fetchone()
                await conn.rollback()
            assert row is not None
            recovering, streaming, lag = bool(row[0]), int(row[1]), float(row[2] or 0.0)
            st.lag_s = lag
            fresh = recovering and streaming == 1 and lag <= self.max_lag_s
            st.status = "ok" if fresh else "stale"
        except Exception as exc:  # unreachable, restarting, pool timeout: read the primary
            if st.status != "down":
                log.warning("replica unavailable, reading from the primary: %s", exc)
            st.status, st.lag_s = "down", None
        st.checked_at = time.monotonic()
        return st

    async def _usable(self) -> bool:
        st = self.state
        age = time.monotonic() - st.checked_at
        if age >= (self.down_retry_s if st.status == "down" else self.check_every_s):
            await self.check()
        return st.status == "ok"

    @contextlib.asynccontextmanager
    async def connection(self, *, primary: bool = False) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection for a read that tolerates `max_lag_s` of staleness; `primary`
        forces the primary (read-your-writes)."""
        if not primary and await self._usable():
            try:
                conn_cm = self._pool.connection(timeout=2.0)
                conn = await conn_cm.__aenter__()
            except Exception:  # went away since the check: mark it down, use the primary
                self.state.status, self.state.checked_at = "down", time.monotonic()
            else:
                self.state.replica_reads += 1
                try:
                    yield conn
                except BaseException as exc:
                    await conn_cm.__aexit__(type(exc), exc, exc.__traceback__)
                    raise
                else:
                    await conn_cm.__aexit__(None, None, None)
                return
        self.state.primary_reads += 1
        async with self.primary.connection() as conn:
            yield conn
