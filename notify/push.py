"""Web Push delivery (RFC 8030/8291/8292): a user's notifications pushed to each of their
subscribed devices, encrypted for that device, signed with this installation's VAPID key.

* Keys: one P-256 VAPID key per installation, generated once under
  `state_dir/secrets/vapid_private.pem` (mode 600); its public half is the
  `applicationServerKey` browsers subscribe with (`GET /api/v1/notifications/push/key`).
* Subscriptions: one per device of a user (`device_key`: the phone's device id or a
  browser's own id); subscribing again from a device replaces its old subscription.
  A subscription's endpoint is where this server will POST, so it is untrusted input:
  https only, to public addresses; `FIELDMESH_PUSH_ALLOW` names networks (a local push
  service) that may be reached although not public, over http too.
* Delivery (`deliver`, run by the `notify.push` job that `notify_user` enqueues in its own
  transaction): each (notification, subscription) is pushed once, recorded in
  `push_deliveries`; a 404 or 410 answer means the subscription expired: it is deleted.
  429, 5xx and network failures raise, so the job retries with backoff, skipping what
  was delivered.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives import serialization
from psycopg import AsyncConnection
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush_async

from kernel.settings import Settings

log = logging.getLogger(__name__)

TTL_S = 24 * 3600
TIMEOUT_S = 10.0
MAX_PAYLOAD_BYTES = 3000  # push services take about 4 KiB after encryption


class PushError(ValueError):
    """A subscription that cannot be accepted (names the field)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class PushUnavailable(RuntimeError):
    """A push service that failed in a way worth retrying (429, 5xx, network)."""


def vapid_path(settings: Settings) -> Path:
    return settings.state_dir / "secrets" / "vapid_private.pem"


def vapid_key(settings: Settings) -> Vapid02:
    """This installation's VAPID key, generated on first use (the first writer wins)."""
    path = vapid_path(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        v = Vapid02()
        v.generate_keys()
        # a file of this call's own (mode 0600): the API asks from several threads of one
        # process at once, so a name per process was truncated or unlinked under another
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".vapid-", suffix=".tmp")
        tmp = Path(name)
        with os.fdopen(fd, "wb") as fh:
            fh.write(v.private_pem())
        try:
            os.link(tmp, path)  # atomic and never overwrites another writer's key
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return Vapid02.from_file(str(path))


def application_server_key(settings: Settings) -> str:
    """The VAPID public key as browsers want it: base64url of the uncompressed point."""
    raw = vapid_key(settings).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _subject(settings: Settings) -> str:
    return f"mailto:push@{settings.tenant}.fieldmesh.invalid"


def _allowed(addr: str, settings: Settings) -> bool:
    ip = ipaddress.ip_address(addr)
    if any(ip in net for net in settings.push_allow):
        return True
    return ip.is_global


def check_endpoint(endpoint: str, settings: Settings) -> None:
    """Raise PushError unless this server may POST to `endpoint` (see the module doc)."""
    try:
        parts = urlsplit(endpoint)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise PushError("endpoint: not a URL", "endpoint") from None
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        raise PushError("endpoint: must be an http(s) URL with a host", "endpoint")
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise PushError(f"endpoint: host {host[:100]!r} does not resolve", "endpoint") from None
    addrs = {i[4][0] for i in infos}
    if not all(_allowed(str(a), settings) for a in addrs):
        raise PushError("endpoint: not a public address (FIELDMESH_PUSH_ALLOW)", "endpoint")
    allowed_plain = all(
        any(ipaddress.ip_address(str(a)) in n for n in settings.push_allow) for a in addrs
    )
    if parts.scheme == "http" and not allowed_plain:
        raise PushError("endpoint: must be https", "endpoint")


@dataclass(frozen=True, slots=True)
class Subscription:
    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str


async def subscribe(
    conn: AsyncConnection[Any],
    user_id: int,
    device_key: str,
    endpoint: str,
    p256dh: str,
    auth: str,
) -> int:
    """Store the device's subscription (replacing its earlier one); its id."""
    await conn.execute(
        "DELETE FROM push_subscriptions WHERE endpoint = %s AND user_id <> %s", (endpoint, user_id)
    )
    cur = await conn.execute(
        """
        INSERT INTO push_subscriptions (user_id, device_key, endpoint, p256dh, auth)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (user_id, device_key) DO UPDATE SET endpoint = EXCLUDED.endpoint,
            p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth, created_at = now(), failures = 0
        RETURNING subscription_id
        """,
        (user_id, device_key, endpoint, p256dh, auth),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def unsubscribe(conn: AsyncConnection[Any], user_id: int, device_key: str) -> bool:
    cur = await conn.execute(
        "DELETE FROM push_subscriptions WHERE user_id = %s AND device_key = %s",
        (user_id, device_key),
    )
    return cur.rowcount > 0


async def has_subscription(conn: AsyncConnection[Any], user_id: int) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM push_subscriptions WHERE user_id = %s LIMIT 1", (user_id,)
    )
    return await cur.fetchone() is not None


def payload(row: tuple[Any, ...]) -> str:
    nid, kind, title, body, link, urgent = row
    msg = {
        "id": nid,
        "kind": kind,
        "title": title,
        "body": body,
        "link": link,
        "urgent": urgent,
        "sent_ms": int(time.time() * 1000),
    }
    text = json.dumps(msg, separators=(",", ":"))
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        msg["body"] = body[:500] + "…"
        text = json.dumps(msg, separators=(",", ":"))
    return text


async def send(
    session: aiohttp.ClientSession,
    settings: Settings,
    sub: Subscription,
    data: str,
    *,
    urgent: bool,
) -> int:
    """POST one encrypted message; the push service's status code."""
    check_endpoint(sub.endpoint, settings)
    try:
        resp = await webpush_async(
            {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
            data=data,
            vapid_private_key=vapid_key(settings),
            vapid_claims={"sub": _subject(settings)},
            ttl=TTL_S,
            timeout=TIMEOUT_S,
            headers={"Urgency": "high" if urgent else "normal"},
            aiohttp_session=session,
        )
    except WebPushException as exc:
        status = exc.response.status if exc.response is not None else None
        if status is None:
            raise PushUnavailable(f"push to {urlsplit(sub.endpoint).hostname}: {exc}") from exc
        return int(status)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise PushUnavailable(f"push to {urlsplit(sub.endpoint).hostname}: {exc}") from exc
    return int(getattr(resp, "status", 201))


async def deliver(conn: AsyncConnection[Any], settings: Settings, notification_id: int) -> int:
    """Push one notification to every subscription of its user not yet pushed to; how
    many were delivered now. Raises PushUnavailable when some should be retried."""
    cur = await conn.execute(
        "SELECT notification_id, kind, title, body, link, urgent, user_id FROM notifications"
        " WHERE notification_id = %s",
        (notification_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return 0
    data = payload(row[:6])
    urgent = bool(row[5])
    cur = await conn.execute(
        "SELECT s.subscription_id, s.endpoint, s.p256dh, s.auth FROM push_subscriptions s"
        " WHERE s.user_id = %s AND NOT EXISTS (SELECT 1 FROM push_deliveries d"
        " WHERE d.notification_id = %s AND d.subscription_id = s.subscription_id)",
        (row[6], notification_id),
    )
    subs = [Subscription(*r) for r in await cur.fetchall()]
    delivered = 0
    retry: list[str] = []
    async with aiohttp.ClientSession() as session:
        for sub in subs:
            try:
                status = await send(session, settings, sub, data, urgent=urgent)
            except PushError as exc:  # an endpoint no longer allowed: drop it
                log.warning("push: subscription %d refused: %s", sub.subscription_id, exc)
                status = 410
            except PushUnavailable as exc:
                retry.append(str(exc))
                await _failed(conn, sub)
                continue
            if status in (404, 410):
                log.info("push: subscription %d expired (%d): pruned", sub.subscription_id, status)
                await conn.execute(
                    "DELETE FROM push_subscriptions WHERE subscription_id = %s",
                    (sub.subscription_id,),
                )
            elif status == 429 or status >= 500:
                retry.append(f"push service answered {status}")
                await _failed(conn, sub)
            else:
                await conn.execute(
                    "INSERT INTO push_deliveries (notification_id, subscription_id, status)"
                    " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    (notification_id, sub.subscription_id, status),
                )
                await conn.execute(
                    "UPDATE push_subscriptions SET last_sent_at = now(), failures = 0"
                    " WHERE subscription_id = %s",
                    (sub.subscription_id,),
                )
                delivered += 1 if status < 300 else 0
            await conn.commit()
    if retry:
        raise PushUnavailable("; ".join(retry)[:500])
    return delivered


async def _failed(conn: AsyncConnection[Any], sub: Subscription) -> None:
    await conn.execute(
        "UPDATE push_subscriptions SET failures = failures + 1 WHERE subscription_id = %s",
        (sub.subscription_id,),
    )
    await conn.commit()
