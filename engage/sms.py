"""SMS through an HTTP gateway speaking Kannel's `sendsms` interface (aiohttp client).

Outbound: the `engage.sms` job sends one stored outbound message (`engage_messages`, channel
sms) and records `sent_at`; a message already sent is left alone, so a retried job does not
send twice once the gateway's answer was recorded (the window is one HTTP round trip: the
gateway has no idempotency key, so SMS is at least once in that window). Kannel answers 202
"0: Accepted for delivery" when it queued the message; anything else is retried.

Inbound: Kannel's smsbox calls `GET /engage/sms/inbound?from=..&to=..&text=..&id=..&key=..`
(`engage.channel_routes`); `key` is the deployment's inbound key (`inbound_key`), kept in
`state_dir/sms/inbound.key` (mode 600) and written into Kannel's get-url.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
from psycopg.rows import dict_row

from engage.errors import ChannelUnavailable
from kernel.jobs import JobContext
from kernel.settings import Settings

SENDSMS_USER = "fieldmesh"
TIMEOUT_S = 15.0


def sms_dir(settings: Settings) -> Path:
    return settings.state_dir / "sms"


def inbound_key(settings: Settings) -> str:
    """The shared secret of inbound SMS calls (made on first use)."""
    path = sms_dir(settings) / "inbound.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def sendsms_password(settings: Settings) -> str:
    path = sms_dir(settings) / "sendsms.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(18))
    return path.read_text().strip()


@dataclass(frozen=True, slots=True)
class Gateway:
    url: str  # .../cgi-bin/sendsms
    username: str
    password: str
    sender: str = "fieldmesh"

    @classmethod
    def from_settings(cls, settings: Settings) -> Gateway:
        if settings.sms_gateway_url is None:
            return cls(
                f"http://127.0.0.1:{settings.sms_port + 2}/cgi-bin/sendsms",
                SENDSMS_USER,
                sendsms_password(settings),
            )
        u = urlsplit(settings.sms_gateway_url)
        clean = u._replace(
            netloc=u.hostname + (f":{u.port}" if u.port else "") if u.hostname else ""
        )
        return cls(clean.geturl(), unquote(u.username or ""), unquote(u.password or ""))


async def send_sms(gw: Gateway, to: str, text: str) -> str:
    params = {
        "username": gw.username,
        "password": gw.password,
        "from": gw.sender,
        "to": to,
        "text": text,
        "charset": "UTF-8",
        "coding": "2" if any(ord(c) > 127 for c in text) else "0",
    }
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as s,
            s.get(gw.url, params=params) as r,
        ):
            body = (await r.text())[:200]
            if r.status not in (200, 202):
                raise ChannelUnavailable(f"SMS gateway answered {r.status}: {body}")
            return body
    except aiohttp.ClientError as exc:
        raise ChannelUnavailable(f"SMS gateway {gw.url}: {exc}") from exc


async def send_job(ctx: JobContext, args: dict[str, Any]) -> None:
    assert ctx.settings is not None
    mid = int(args["message_id"])
    async with ctx.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT id, to_addr, body_text, sent_at FROM engage_messages"
            " WHERE id = %s AND channel = 'sms' AND direction = 'out'",
            (mid,),
        )
        row = await cur.fetchone()
    if row is None or row["sent_at"] is not None:
        return
    await send_sms(Gateway.from_settings(ctx.settings), row["to_addr"], row["body_text"])
    async with ctx.pool.connection() as conn:
        await conn.execute(
            "UPDATE engage_messages SET sent_at = now(), send_error = NULL WHERE id = %s", (mid,)
        )
