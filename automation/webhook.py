"""The webhook step's request: crm_sync's SSRF guard (public addresses only, the checked
address pinned) and its signature, plus an `Idempotency-Key` per (run, step) so a receiver
can drop the repeat a crash between sending and journaling may cause."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from crm_sync.errors import InvalidInput
from crm_sync.signing import HEADER, sign
from crm_sync.webhooks import MAX_ADDRESSES_TRIED, RefusedTarget, resolve_target
from kernel.settings import IPNetwork


class WebhookRefused(Exception):
    """The URL may never be called (private address, bad URL): the step fails for good."""


class WebhookFailed(Exception):
    """The receiver did not accept it this time: retried."""


async def post(
    url: str,
    secret: str,
    body: bytes,
    idempotency_key: str,
    *,
    allow: tuple[IPNetwork, ...] = (),
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    try:
        target = await resolve_target(url, allow)
    except RefusedTarget as exc:
        raise WebhookRefused(str(exc)) from None
    except InvalidInput as exc:
        raise WebhookFailed(str(exc)) from None
    headers = {
        "Content-Type": "application/json",
        "Host": target.host_header,
        HEADER: sign(secret.encode(), int(time.time()), body),
        "Idempotency-Key": idempotency_key,
    }
    last = "no address"
    async with aiohttp.ClientSession() as session:
        for ip in target.addresses[:MAX_ADDRESSES_TRIED]:
            try:
                async with session.post(
                    target.pinned_url(ip),
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout_s),
                    allow_redirects=False,
                    server_hostname=target.parsed.host if target.parsed.scheme == "https" else None,
                ) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        return {"status": resp.status}
                    raise WebhookFailed(f"HTTP {resp.status}")
            except aiohttp.ClientConnectorError as exc:
                last = f"{type(exc).__name__}: {exc}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise WebhookFailed(f"{type(exc).__name__}: {exc}"[:500]) from None
    raise WebhookFailed(last[:500])
