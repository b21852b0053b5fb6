"""Login throttling per account and per source address, shared by every API worker.

Policy (ThrottlePolicy's defaults):
- Per account (the e-mail as typed, lower-cased, whether or not such a user exists, so the
  answer does not tell): after 5 failed logins with no gap longer than 15 minutes, the
  account is locked for 30 s; each further failure (after the lock ends) doubles the lock,
  up to 15 minutes. A successful login clears the account's counter.
- Per source address: the same rule with a budget of 20 failures (a flood of wrong
  passwords from one address costs at most 20 hashes per lock). A success does not clear
  it (one valid account must not buy an attacker more guesses at others).
- While a key is locked, a login answers 429 with Retry-After at once, without looking at
  the password (so a flood costs no hashing) and without counting the attempt.
- The source is the peer address of the connection (`request.remote`); a reverse proxy in
  front would have to be trusted explicitly before X-Forwarded-For could be used.

The counters live in PostgreSQL (table login_throttle) because API workers are separate
processes; each failure is one atomic upsert. `lock_s` is the pure rule.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from kernel.errors import ApiError


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    account_failures: int = 5
    source_failures: int = 20
    window_s: float = 15 * 60  # failures further apart than this start a new count
    first_lock_s: float = 30.0
    max_lock_s: float = 15 * 60


class TooManyAttempts(ApiError):
    """429 with Retry-After (whole seconds, at least 1)."""

    status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(
            message,
            code="too_many_requests",
            headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
        )
        self.retry_after_s = retry_after_s


def lock_s(failures: int, limit: int, policy: ThrottlePolicy) -> float:
    """How long a key is locked after its `failures`-th consecutive failure (0: not locked)."""
    if failures < limit:
        return 0.0
    return min(policy.first_lock_s * 2.0 ** min(failures - limit, 32), policy.max_lock_s)


def account_key(email: str) -> str:
    return "account:" + email.strip().lower()[:320]


def source_key(address: str | None) -> str:
    return "source:" + (address or "unknown")[:64]


def raise_if_locked(locked_s: float | None) -> None:
    """Raise TooManyAttempts for a lock with `locked_s` seconds left (None: no lock)."""
    if locked_s is not None and locked_s > 0:
        raise TooManyAttempts("too many failed logins; try again later", locked_s)


# The seconds left on the longest lock of the keys, NULL when none is locked: a subquery a
# login's user lookup embeds, so that both take one round trip.
LOCKED_S_SQL = (
    "(SELECT extract(epoch FROM max(locked_until) - now())::float8 FROM login_throttle "
    "WHERE key = ANY(%(keys)s) AND locked_until > now())"
)


async def record_failure(
    conn: AsyncConnection[Any], keys: list[tuple[str, int]], policy: ThrottlePolicy
) -> float:
    """Count one failure for each (key, limit); returns the longest lock it started (s).
    One statement for all keys; a second one only when a lock starts."""
    cur = await conn.execute(
        """
        INSERT INTO login_throttle AS t (key, failures, last_failure_at)
        SELECT k, 1, now() FROM unnest(%(keys)s::text[]) AS k
        ON CONFLICT (key) DO UPDATE SET
            failures = CASE WHEN t.last_failure_at < now() - %(window)s THEN 1
                            ELSE t.failures + 1 END,
            last_failure_at = now()
        RETURNING key, failures
        """,
        {"keys": [k for k, _ in keys], "window": dt.timedelta(seconds=policy.window_s)},
    )
    counts = dict(await cur.fetchall())
    locks = {k: lock_s(int(counts[k]), limit, policy) for k, limit in keys}
    locks = {k: v for k, v in locks.items() if v > 0}
    if locks:
        await conn.execute(
            "UPDATE login_throttle t SET locked_until = now() + make_interval(secs => l.s) "
            "FROM unnest(%s::text[], %s::float8[]) AS l(k, s) WHERE t.key = l.k",
            (list(locks), list(locks.values())),
        )
    return max(locks.values(), default=0.0)


async def record_success(conn: AsyncConnection[Any], key: str) -> None:
    await conn.execute("DELETE FROM login_throttle WHERE key = %s", (key,))


async def prune(conn: AsyncConnection[Any], policy: ThrottlePolicy) -> None:
    """Forget counters whose window has passed and whose lock has ended."""
    await conn.execute(
        "DELETE FROM login_throttle WHERE last_failure_at < now() - %s "
        "AND (locked_until IS NULL OR locked_until < now())",
        (dt.timedelta(seconds=policy.window_s),),
    )
