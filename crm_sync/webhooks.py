"""Webhooks out: subscriptions, a durable outbox, signed deliveries with retries.

`enqueue` writes one outbox row per interested subscriber inside the caller's transaction,
so an event is recorded exactly when the change it reports commits. `deliver_due` claims
due rows (SKIP LOCKED, with a lease so parallel dispatchers never send a row twice),
sends them concurrently with a per-request timeout, and records each outcome: delivered,
retried later with capped exponential backoff and jitter, or dead after `max_attempts`.
A slow or dead subscriber only delays its own rows. `replay` sends a row again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psycopg
from psycopg.types.json import Jsonb

from crm_sync.errors import InvalidInput
from crm_sync.signing import HEADER, sign
from kernel import jobs

log = logging.getLogger(__name__)

EVENT_TYPES = frozenset(
    {
        "alert.raised",
        "alert.acknowledged",
        "alert.cleared",
        "work_order.created",
        "work_order.urgent",
        "visit.checked_in",
        "visit.completed",
    }
)


def validate_url(url: str) -> str:
    """An http(s) URL with a host that is not a link-local, multicast or unspecified IP."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("url", f"must be http or https, got {parts.scheme or 'no scheme'!r}")
    host = parts.hostname
    if not host:
        raise InvalidInput("url", "has no host")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        # A name: what it resolves to counts (a name for 169.254.169.254 is no safer). A
        # name that does not resolve now is accepted; every delivery checks again.
        addresses = [ipaddress.ip_address(a) for a in _resolve(host)]
    for ip in addresses:
        if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
            raise InvalidInput(
                "url", f"points at a link-local or reserved address ({host} -> {ip})"
            )
    return url


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({str(info[4][0]).split("%", 1)[0] for info in infos})


def validate_event_types(event_types: Iterable[str]) -> list[str]:
    types = sorted(set(event_types))
    if not types:
        raise InvalidInput("event_types", "choose at least one event type")
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(
            "event_types",
            f"unknown {', '.join(unknown)}; known: {', '.join(sorted(EVENT_TYPES))}",
        )
    return types


def create_subscription(
    conn: psycopg.Connection[Any], url: str, event_types: Iterable[str], secret: str | None = None
) -> tuple[int, str]:
    """A new subscription; returns its id and the signing secret (shown once)."""
    validate_url(url)
    types = validate_event_types(event_types)
    key = secret or secrets.token_hex(32)
    row = conn.execute(
        "INSERT INTO webhook_subscriptions (url, event_types, secret) VALUES (%s, %s, %s) "
        "RETURNING id",
        (url, types, key),
    ).fetchone()
    assert row is not None
    return int(row[0]), key


_ENQUEUE_SQL = """
    INSERT INTO webhook_outbox (subscription_id, event_id, event_type, payload)
    SELECT s.id, %s, %s, %s FROM webhook_subscriptions s
    WHERE s.active AND %s = ANY (s.event_types)
    ON CONFLICT (subscription_id, event_id) DO NOTHING
"""


def _enqueue_params(event_type: str, event_id: str, data: dict[str, Any]) -> tuple[Any, ...]:
    if event_type not in EVENT_TYPES:
        raise InvalidInput("event_type", f"unknown event type {event_type!r}")
    payload = {
        "id": event_id,
        "type": event_type,
        "created_at": datetime.now(UTC).isoformat(),
        "data": data,
    }
    return (event_id, event_type, Jsonb(payload), event_type)


# The job (kernel.jobs) that sends due outbox rows; one queued at a time (dedupe key).
DELIVER_TASK = "crm_sync.webhooks.deliver"


def enqueue(
    conn: psycopg.Connection[Any], event_type: str, event_id: str, data: dict[str, Any]
) -> int:
    """Record an event for every active subscriber of its type; rows added (idempotent).
    A delivery job is queued in the same transaction when there is something to send."""
    added = conn.execute(_ENQUEUE_SQL, _enqueue_params(event_type, event_id, data)).rowcount
    if added:
        jobs.enqueue_sync(conn, DELIVER_TASK, dedupe_key=DELIVER_TASK)
    return added


async def enqueue_async(
    conn: psycopg.AsyncConnection[Any], event_type: str, event_id: str, data: dict[str, Any]
) -> int:
    """`enqueue` for async callers (API handlers)."""
    cur = await conn.execute(_ENQUEUE_SQL, _enqueue_params(event_type, event_id, data))
    if cur.rowcount:
        await jobs.enqueue(conn, DELIVER_TASK, dedupe_key=DELIVER_TASK)
    return cur.rowcount


def backoff_s(attempt: int, *, base_s: float = 2.0, cap_s: float = 3600.0) -> float:
    """Delay before retry number `attempt` (1-based): capped exponential, jittered 50-100%."""
    delay: float = min(cap_s, base_s * 2.0 ** max(attempt - 1, 0))
    return delay * (0.5 + 0.5 * random.random())


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0


@dataclass(frozen=True, slots=True)
class _Claimed:
    outbox_id: int
    attempts: int
    url: str
    secret: str
    event_id: str
    body: bytes


async def _send(
    session: aiohttp.ClientSession, row: _Claimed, timeout_s: float
) -> tuple[int | None, str | None]:
    try:
        # Checked again at each delivery: the name may now resolve somewhere it must not.
        await asyncio.get_running_loop().run_in_executor(None, validate_url, row.url)
    except InvalidInput as exc:
        return None, f"refused: {exc}"[:500]
    headers = {
        "Content-Type": "application/json",
        HEADER: sign(row.secret.encode(), int(time.time()), row.body),
        "Fieldmesh-Event-Id": row.event_id,
    }
    try:
        async with session.post(
            row.url,
            data=row.body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as resp:
            await resp.read()
            if 200 <= resp.status < 300:
                return resp.status, None
            return resp.status, f"HTTP {resp.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]


async def deliver_due(
    conn: psycopg.AsyncConnection[Any],
    session: aiohttp.ClientSession,
    *,
    limit: int = 100,
    timeout_s: float = 5.0,
    max_attempts: int = 8,
    lease_s: float = 60.0,
    subscription_ids: list[int] | None = None,
) -> DeliveryStats:
    """Send the due outbox rows once (of some subscriptions only, if given); record every
    outcome."""
    async with conn.transaction():
        cur = await conn.execute(
            """
            WITH due AS (
                SELECT o.id FROM webhook_outbox o
                JOIN webhook_subscriptions s ON s.id = o.subscription_id
                WHERE o.status = 'pending' AND o.next_attempt_at <= now() AND s.active
                  AND (%s::bigint[] IS NULL OR o.subscription_id = ANY (%s::bigint[]))
                ORDER BY o.next_attempt_at, o.id
                LIMIT %s
                FOR UPDATE OF o SKIP LOCKED
            )
            UPDATE webhook_outbox o SET next_attempt_at = now() + make_interval(secs => %s)
            FROM due, webhook_subscriptions s
            WHERE o.id = due.id AND s.id = o.subscription_id
            RETURNING o.id, o.attempts, s.url, s.secret, o.event_id, o.payload
            """,
            (subscription_ids, subscription_ids, limit, lease_s),
        )
        rows = [
            _Claimed(r[0], r[1], r[2], r[3], r[4], json.dumps(r[5]).encode())
            for r in await cur.fetchall()
        ]
    if not rows:
        return DeliveryStats()
    results = await asyncio.gather(*(_send(session, r, timeout_s) for r in rows))
    delivered = retrying = dead = 0
    async with conn.transaction():
        for row, (status, error) in zip(rows, results, strict=True):
            attempts = row.attempts + 1
            if error is None:
                delivered += 1
                await conn.execute(
                    "UPDATE webhook_outbox SET status = 'delivered', attempts = %s, "
                    "last_status = %s, last_error = NULL, delivered_at = now() WHERE id = %s",
                    (attempts, status, row.outbox_id),
                )
                continue
            log.warning(
                "webhook %s to %s failed (attempt %d): %s",
                row.event_id,
                row.url,
                attempts,
                error,
            )
            if attempts >= max_attempts:
                dead += 1
                new_status, delay = "dead", 0.0
            else:
                retrying += 1
                new_status, delay = "pending", backoff_s(attempts)
            await conn.execute(
                "UPDATE webhook_outbox SET status = %s, attempts = %s, last_status = %s, "
                "last_error = %s, next_attempt_at = now() + make_interval(secs => %s) "
                "WHERE id = %s",
                (new_status, attempts, status, error, delay, row.outbox_id),
            )
    return DeliveryStats(len(rows), delivered, retrying, dead)


def replay(conn: psycopg.Connection[Any], outbox_id: int) -> None:
    """Send a delivery again (delivered or dead): back to pending, due now."""
    cur = conn.execute(
        "UPDATE webhook_outbox SET status = 'pending', attempts = 0, next_attempt_at = now() "
        "WHERE id = %s",
        (outbox_id,),
    )
    if cur.rowcount == 0:
        raise InvalidInput("outbox_id", f"no delivery {outbox_id}")
    jobs.enqueue_sync(conn, DELIVER_TASK, dedupe_key=DELIVER_TASK)


@dataclass(frozen=True, slots=True)
class Delivery:
    outbox_id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime


def deliveries(conn: psycopg.Connection[Any], subscription_id: int) -> list[Delivery]:
    rows = conn.execute(
        "SELECT id, event_id, event_type, status, attempts, last_status, last_error, "
        "next_attempt_at FROM webhook_outbox WHERE subscription_id = %s ORDER BY id",
        (subscription_id,),
    ).fetchall()
    return [Delivery(*r) for r in rows]


def make_due_now(conn: psycopg.Connection[Any], subscription_id: int) -> None:
    """Operator action: retry a subscriber's pending rows now instead of after backoff."""
    conn.execute(
        "UPDATE webhook_outbox SET next_attempt_at = now() - interval '1 second' "
        "WHERE subscription_id = %s AND status = 'pending'",
        (subscription_id,),
    )
    jobs.enqueue_sync(conn, DELIVER_TASK, dedupe_key=DELIVER_TASK)
