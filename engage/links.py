"""Signed links: the open pixel, click redirects and the unsubscribe link.

A token is `<track_id>.<mac>` where the MAC is HMAC-SHA256 (truncated to 128 bits,
base64url) over the link's kind, the message's track id and, for a click, the target URL,
with a key the package keeps in `engage_keys`. A forged or altered link is refused (404),
so the redirect cannot be turned into an open redirect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import secrets
from typing import Any
from urllib.parse import quote

from psycopg import AsyncConnection

KEY_NAME = "links"
_HREF = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)


async def link_key(conn: AsyncConnection[Any]) -> bytes:
    await conn.execute(
        "INSERT INTO engage_keys (name, secret) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
        (KEY_NAME, secrets.token_bytes(32)),
    )
    cur = await conn.execute("SELECT secret FROM engage_keys WHERE name = %s", (KEY_NAME,))
    row = await cur.fetchone()
    assert row is not None
    return bytes(row[0])


def _mac(key: bytes, *parts: str) -> str:
    d = hmac.new(key, "\x00".join(parts).encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(d).rstrip(b"=").decode()


def sign(key: bytes, kind: str, track_id: str, url: str = "") -> str:
    return f"{track_id}.{_mac(key, kind, track_id, url)}"


def verify(key: bytes, kind: str, token: str, url: str = "") -> str | None:
    """The track id when the token is genuine, else None."""
    track_id, _, mac = token.partition(".")
    if not track_id or not mac or len(token) > 200:
        return None
    return track_id if hmac.compare_digest(mac, _mac(key, kind, track_id, url)) else None


def open_url(base: str, key: bytes, track_id: str) -> str:
    return f"{base}/e/o/{sign(key, 'open', track_id)}.gif"


def click_url(base: str, key: bytes, track_id: str, target: str) -> str:
    return f"{base}/e/c/{sign(key, 'click', track_id, target)}?u={quote(target, safe='')}"


def unsubscribe_url(base: str, key: bytes, track_id: str) -> str:
    return f"{base}/e/u/{sign(key, 'unsub', track_id)}"


def rewrite_links(html_text: str, base: str, key: bytes, track_id: str) -> str:
    """Every http(s) href through the click redirect, and the open pixel before </body>."""

    def sub(m: re.Match[str]) -> str:
        target = html.unescape(m.group(1))
        if target.startswith(base + "/e/"):
            return m.group(0)  # our own links (unsubscribe) stay as they are
        return f'href="{html.escape(click_url(base, key, track_id, target), quote=True)}"'

    out = _HREF.sub(sub, html_text)
    pixel = f'<img src="{html.escape(open_url(base, key, track_id))}" width="1" height="1" alt="">'
    if "</body>" in out:
        return out.replace("</body>", pixel + "</body>", 1)
    return out + pixel
