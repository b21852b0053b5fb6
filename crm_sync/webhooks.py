"""Webhooks out: subscriptions, a durable outbox, signed deliveries with retries.

`enqueue` writes one outbox row per interested subscriber inside the caller's transaction,
so an event is recorded exactly when the change it reports commits. `deliver_due` claims
due rows (SKIP LOCKED, with a lease so parallel dispatchers never send a row twice),
sends them concurrently with a per-request timeout, and records each outcome: delivered,
retried later with capped exponential backoff and jitter, or dead after `max_attempts`.
A slow, dead or malformed subscriber only fails its own rows. `replay` sends a row again.

Outbound requests go to public addresses only: each delivery resolves the host once,
refuses the URL if any address is loopback, private, link-local, CGNAT, multicast,
reserved or unspecified (IPv4-mapped IPv6 forms included) unless the admin's allow-list
(FIELDMESH_WEBHOOK_ALLOW) names it, and connects to one of the checked addresses
(pinned: no second lookup that DNS rebinding could answer differently). URLs are at most
2,048 characters, host names 253. Delivery runs as a job (crm_sync.jobs); `health`
reports on the outbox and the delivery jobs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
import re
import secrets
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import psycopg
from psycopg.types.json import Jsonb

from crm_sync.errors import InvalidInput
from crm_sync.signing import HEADER, sign
from kernel import jobs
from kernel.settings import IPNetwork

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


MAX_URL_LENGTH = 2048
MAX_HOST_LENGTH = 253  # RFC 1035: a name's text form, without the trailing dot
MAX_ADDRESSES_TRIED = 3  # a name's checked addresses tried in turn when one refuses
_LABEL_RE = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPAT = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible ::a.b.c.d

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Networks = Sequence[IPNetwork]


class RefusedTarget(InvalidInput):
    """A webhook URL that can never be delivered to: malformed, or an address the policy
    refuses. Its deliveries fail at once (dead), never retried."""


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form reaches (mapped, compatible, 6to4, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress, allow: Networks = ()) -> str | None:
    """Why a webhook may not connect to `ip` (e.g. "loopback"), or None when it may.

    Only public unicast addresses are reachable, unless a network of `allow` (the admin's
    FIELDMESH_WEBHOOK_ALLOW) names the address. IPv6 forms that carry an IPv4 address
    (::ffff:169.254.169.254) are judged by the IPv4 address they reach."""
    target: IPAddress = _embedded_ipv4(ip) or ip
    for net in allow:
        if (ip.version == net.version and ip in net) or (
            target.version == net.version and target in net
        ):
            return None
    if target.is_unspecified:
        return "unspecified"
    if target.is_loopback:
        return "loopback"
    if target.is_link_local:
        return "link-local"
    if target.is_multicast:
        return "multicast"
    if isinstance(target, ipaddress.IPv4Address) and target in _CGNAT:
        return "carrier-grade NAT (100.64.0.0/10)"
    if target.is_private:
        return "private"
    if target.is_reserved:
        return "reserved"
    if not target.is_global:
        return "non-public"
    return None


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    url: str
    scheme: str
    host: str  # lowercase; an IP literal without brackets
    port: int
    literal: IPAddress | None  # the host, when it is an IP address


def parse_url(url: str) -> ParsedUrl:
    """Syntax only (no DNS): an http(s) URL of bounded length with a well-formed host."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedTarget("url", f"is longer than {MAX_URL_LENGTH} characters")
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise RefusedTarget("url", "contains spaces or control characters")
    try:
        parts = urlsplit(url)
        scheme = parts.scheme
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise RefusedTarget("url", f"is malformed: {exc}") from None
    if scheme not in ("http", "https"):
        raise RefusedTarget("url", f"must be http or https, got {scheme or 'no scheme'!r}")
    if not host:
        raise RefusedTarget("url", "has no host")
    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is None:
        host = host.removesuffix(".")
        if len(host) > MAX_HOST_LENGTH:
            raise RefusedTarget(
                "url", f"host name is longer than {MAX_HOST_LENGTH} characters ({len(host)})"
            )
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise RefusedTarget("url", "host name is not a valid DNS name") from None
        if len(ascii_host) > MAX_HOST_LENGTH or not all(
            _LABEL_RE.match(label) for label in ascii_host.split(".")
        ):
            raise RefusedTarget(
                "url", "host name is not a valid DNS name (labels of 1-63 letters, digits, '-')"
            )
        host = ascii_host
    return ParsedUrl(url, scheme, host, port or (443 if scheme == "https" else 80), literal)


def _check_addresses(parsed: ParsedUrl, addresses: Iterable[IPAddress], allow: Networks) -> None:
    for ip in addresses:
        problem = address_problem(ip, allow)
        if problem is not None:
            raise RefusedTarget(
                "url",
                f"points at a {problem} address ({parsed.host} -> {ip}); webhooks reach "
                "public addresses only, unless FIELDMESH_WEBHOOK_ALLOW names the network",
            )


def validate_url(url: str, allow: Networks = ()) -> str:
    """An http(s) URL whose host is, or resolves only to, addresses the policy allows.

    A name that does not resolve now is accepted: every delivery resolves it again,
    checks every address and connects to a checked one (see `resolve_target`)."""
    parsed = parse_url(url)
    if parsed.literal is not None:
        addresses: list[IPAddress] = [parsed.literal]
    else:
        # A name for 169.254.169.254 is no safer than the address itself.
        addresses = [ipaddress.ip_address(a) for a in _resolve(parsed.host)]
    _check_addresses(parsed, addresses, allow)
    return url


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    return sorted({str(info[4][0]).split("%", 1)[0] for info in infos})


@dataclass(frozen=True, slots=True)
class Target:
    """Where one delivery connects: the URL's host resolved once, every address checked."""

    parsed: ParsedUrl
    addresses: tuple[IPAddress, ...]

    def pinned_url(self, ip: IPAddress) -> str:
        """The URL with its host replaced by `ip` (user info, port, path, query kept)."""
        parts = urlsplit(self.parsed.url)
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        netloc = host if parts.port is None else f"{host}:{parts.port}"
        userinfo, at, _ = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{netloc}"))

    @property
    def host_header(self) -> str:
        default = 443 if self.parsed.scheme == "https" else 80
        host = f"[{self.parsed.host}]" if ":" in self.parsed.host else self.parsed.host
        return host if self.parsed.port == default else f"{host}:{self.parsed.port}"


async def resolve_target(url: str, allow: Networks = ()) -> Target:
    """Resolve once and check every address; the connection then goes to one of these very
    addresses (the URL's host replaced by the IP, the name kept for Host and TLS), so a
    name cannot resolve to an allowed address for the check and to another for the
    connection (DNS rebinding). RefusedTarget: never deliverable; InvalidInput: the name
    does not resolve now (retried later)."""
    parsed = parse_url(url)
    if parsed.literal is not None:
        addresses: list[IPAddress] = [parsed.literal]
    else:
        found = await asyncio.get_running_loop().run_in_executor(None, _resolve, parsed.host)
        addresses = [ipaddress.ip_address(a) for a in found]
        if not addresses:
            raise InvalidInput("url", f"{parsed.host} does not resolve")
    _check_addresses(parsed, addresses, allow)
    return Target(parsed, tuple(addresses))


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
    conn: psycopg.Connection[Any],
    url: str,
    event_types: Iterable[str],
    secret: str | None = None,
    *,
    allow: Networks = (),
) -> tuple[int, str]:
    """A new subscription; returns its id and the signing secret (shown once)."""
    validate_url(url, allow)
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


_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _reason(text: str) -> str:
    """An error as the outbox stores it: at most 500 characters, no control characters
    (a NUL from a hostile server would make the row unstorable)."""
    return _CONTROL_RE.sub("?", text)[:500]


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: int | None = None
    error: str | None = None  # None: delivered
    permanent: bool = False  # the URL can never be delivered to: dead at once


async def _post(
    session: aiohttp.ClientSession, row: _Claimed, target: Target, timeout_s: float
) -> _Outcome:
    headers = {
        "Content-Type": "application/json",
        "Host": target.host_header,
        HEADER: sign(row.secret.encode(), int(time.time()), row.body),
        "Fieldmesh-Event-Id": row.event_id,
    }
    failure = _Outcome(error="no address")
    for ip in target.addresses[:MAX_ADDRESSES_TRIED]:
        try:
            async with session.post(
                target.pinned_url(ip),
                data=row.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
                # TLS checks the certificate against the name, not the pinned address
                server_hostname=target.parsed.host if target.parsed.scheme == "https" else None,
            ) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    return _Outcome(resp.status)
                return _Outcome(resp.status, f"HTTP {resp.status}")
        except aiohttp.ClientConnectorError as exc:
            # nothing was sent: the next checked address of the same name may answer
            failure = _Outcome(error=_reason(f"{type(exc).__name__}: {exc}"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _Outcome(error=_reason(f"{type(exc).__name__}: {exc}"))
    return failure


async def _send(
    session: aiohttp.ClientSession, row: _Claimed, timeout_s: float, allow: Networks
) -> _Outcome:
    """One delivery; whatever goes wrong fails this row only, never the round."""
    try:
        target = await resolve_target(row.url, allow)
    except RefusedTarget as exc:
        return _Outcome(error=_reason(f"refused: {exc}"), permanent=True)
    except InvalidInput as exc:
        return _Outcome(error=_reason(str(exc)))
    try:
        return await _post(session, row, target, timeout_s)
    except Exception as exc:  # one subscriber's failure is its own (logged)
        log.exception("webhook %s to %s failed unexpectedly", row.event_id, row.url[:200])
        return _Outcome(error=_reason(f"{type(exc).__name__}: {exc}"))


async def deliver_due(
    conn: psycopg.AsyncConnection[Any],
    session: aiohttp.ClientSession,
    *,
    limit: int = 100,
    timeout_s: float = 5.0,
    max_attempts: int = 8,
    lease_s: float = 60.0,
    subscription_ids: list[int] | None = None,
    allow: Networks = (),
) -> DeliveryStats:
    """Send the due outbox rows once (of some subscriptions only, if given); record every
    outcome. `allow` is the admin's allow-list of otherwise refused networks."""
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
    results = await asyncio.gather(*(_send(session, r, timeout_s, allow) for r in rows))
    delivered = retrying = dead = 0
    for row, outcome in zip(rows, results, strict=True):
        attempts = row.attempts + 1
        if outcome.error is None:
            new_status, delay = "delivered", 0.0
        else:
            log.warning(
                "webhook %s to %s failed (attempt %d): %s",
                row.event_id,
                row.url[:200],
                attempts,
                outcome.error,
            )
            if outcome.permanent or attempts >= max_attempts:
                new_status, delay = "dead", 0.0
            else:
                new_status, delay = "pending", backoff_s(attempts)
        try:
            # one transaction per row: a row that cannot be recorded fails alone (its
            # lease runs out and it is sent again), never the others' outcomes
            async with conn.transaction():
                await _record(conn, row.outbox_id, new_status, attempts, outcome, delay)
        except psycopg.DataError:
            log.exception("webhook %s: outcome not recorded", row.event_id)
            continue
        if new_status == "delivered":
            delivered += 1
        elif new_status == "dead":
            dead += 1
        else:
            retrying += 1
    return DeliveryStats(len(rows), delivered, retrying, dead)


async def _record(
    conn: psycopg.AsyncConnection[Any],
    outbox_id: int,
    status: str,
    attempts: int,
    outcome: _Outcome,
    delay_s: float,
) -> None:
    if status == "delivered":
        await conn.execute(
            "UPDATE webhook_outbox SET status = 'delivered', attempts = %s, "
            "last_status = %s, last_error = NULL, delivered_at = now() WHERE id = %s",
            (attempts, outcome.status, outbox_id),
        )
        return
    await conn.execute(
        "UPDATE webhook_outbox SET status = %s, attempts = %s, last_status = %s, "
        "last_error = %s, next_attempt_at = now() + make_interval(secs => %s) "
        "WHERE id = %s",
        (status, attempts, outcome.status, outcome.error, delay_s, outbox_id),
    )


# --------------------------------------------------------------------------- the dispatcher


@dataclass(frozen=True, slots=True)
class DispatcherHealth:
    ok: bool
    running: bool
    started_at: datetime | None
    last_run_at: datetime | None
    last_ok_at: datetime | None
    rounds: int
    errors: int
    last_error: str | None
    delivered: int
    pending: int
    due: int  # pending and due now
    dead: int
    oldest_due_s: float | None  # how late the most overdue pending delivery is


async def health(conn: psycopg.AsyncConnection[Any], *, stale_s: float = 60.0) -> DispatcherHealth:
    """The delivery's health: the outbox as the database holds it, and the recent delivery
    jobs (kernel.jobs, the `jobs` role of `fieldmesh run`). `ok` is false when due rows wait
    longer than `stale_s`, or the last delivery job failed."""
    cur = await conn.execute(
        """
        SELECT count(*) FILTER (WHERE status = 'pending'),
               count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()),
               count(*) FILTER (WHERE status = 'dead'),
               count(*) FILTER (WHERE status = 'delivered'),
               extract(epoch FROM now() - min(next_attempt_at)
                       FILTER (WHERE status = 'pending' AND next_attempt_at <= now()))::float8
        FROM webhook_outbox
        """
    )
    row = await cur.fetchone()
    assert row is not None
    pending, due, dead, delivered, oldest = (
        int(row[0]),
        int(row[1]),
        int(row[2]),
        int(row[3]),
        row[4],
    )
    late = oldest is not None and float(oldest) > stale_s
    cur = await conn.execute(
        """SELECT min(created_at), max(finished_at) FILTER (WHERE status = 'done'),
                  max(finished_at), count(*) FILTER (WHERE status = 'done'),
                  count(*) FILTER (WHERE status = 'failed'),
                  (array_agg(last_error ORDER BY finished_at DESC)
                      FILTER (WHERE status = 'failed'))[1],
                  bool_or(status IN ('queued', 'running')),
                  (array_agg(status ORDER BY finished_at DESC NULLS LAST)
                      FILTER (WHERE finished_at IS NOT NULL))[1]
           FROM jobs WHERE task = %s""",
        (DELIVER_TASK,),
    )
    j = await cur.fetchone()
    assert j is not None
    last_failed = j[7] == "failed"
    return DispatcherHealth(
        ok=not late and not last_failed,
        running=bool(j[6]) or due == 0,
        started_at=j[0],
        last_run_at=j[2],
        last_ok_at=j[1],
        rounds=int(j[3]) + int(j[4]),
        errors=int(j[4]),
        last_error=j[5],
        delivered=delivered,
        pending=pending,
        due=due,
        dead=dead,
        oldest_due_s=None if oldest is None else round(float(oldest), 3),
    )


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
