"""Self-booking links: a public page per rep or team, signed, expiring and revocable.

As the AR viewer's share links (ar_viewer/shares.py): the link is `/book/<id>.<mac>`, the
row id in `cal_booking_links` and an HMAC-SHA256 over what the row names (id, users,
duration, window, account, expiry), keyed by a key derived from the deployment's master
secret. The token is never stored; a row whose users or expiry change no longer matches
its old links. An unknown id or a wrong MAC is 404, a revoked or expired link 410.

The public endpoints are untrusted input: every field is bounded and checked, and a
sliding-window counter in the database (`cal_rate_windows`, shared by every API worker)
limits requests per source address and per link (429 with Retry-After).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from kernel.broker import master_key
from kernel.errors import ApiError, NotFound
from kernel.settings import Settings

_KEY_LABEL = b"fieldmesh/calendars/booking-links/v1"
TOKEN_RE = re.compile(r"^(\d{1,18})\.([A-Za-z0-9_-]{43})$")
TOKEN_PATTERN = TOKEN_RE.pattern


class Gone(ApiError):
    status = 410

    def __init__(self, message: str) -> None:
        super().__init__(message, code="gone")


class TooMany(ApiError):
    status = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(
            message, code="rate_limited", headers={"Retry-After": str(max(retry_after_s, 1))}
        )


def link_key(settings: Settings) -> bytes:
    return hmac.new(master_key(settings), _KEY_LABEL, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class Link:
    id: int
    user_ids: list[int]
    title: str
    duration_min: int
    window_days: int
    account_id: int | None
    created_by: int | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        return "revoked" if self.revoked_at else ("expired" if now >= self.expires_at else "active")


def sign(key: bytes, link: Link) -> str:
    users = ",".join(str(u) for u in link.user_ids)
    message = (
        f"{link.id}|{users}|{link.duration_min}|{link.window_days}|{link.account_id}"
        f"|{int(link.expires_at.timestamp())}"
    ).encode()
    mac = hmac.new(key, message, hashlib.sha256).digest()
    return f"{link.id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


_COLS = (
    "id, user_ids, title, duration_min, window_days, account_id, created_by, created_at,"
    " expires_at, revoked_at"
)


async def create(
    conn: AsyncConnection[Any],
    *,
    user_ids: list[int],
    title: str,
    duration_min: int,
    window_days: int,
    account_id: int | None,
    created_by: int,
    expires_in_s: int,
) -> Link:
    cur = conn.cursor(row_factory=class_row(Link))
    await cur.execute(
        "INSERT INTO cal_booking_links (user_ids, title, duration_min, window_days, account_id,"
        " created_by, expires_at) VALUES (%s, %s, %s, %s, %s, %s,"
        f" date_trunc('second', now()) + make_interval(secs => %s)) RETURNING {_COLS}",
        (user_ids, title, duration_min, window_days, account_id, created_by, expires_in_s),
    )
    link = await cur.fetchone()
    assert link is not None
    return link


async def get(conn: AsyncConnection[Any], link_id: int) -> Link | None:
    cur = conn.cursor(row_factory=class_row(Link))
    await cur.execute(f"SELECT {_COLS} FROM cal_booking_links WHERE id = %s", (link_id,))
    return await cur.fetchone()


async def listed(
    conn: AsyncConnection[Any], created_by: list[int] | None, limit: int
) -> list[Link]:
    cur = conn.cursor(row_factory=class_row(Link))
    await cur.execute(
        f"SELECT {_COLS} FROM cal_booking_links"
        " WHERE (%s::bigint[] IS NULL OR created_by = ANY(%s)) ORDER BY id DESC LIMIT %s",
        (created_by, created_by, limit),
    )
    return await cur.fetchall()


async def revoke(conn: AsyncConnection[Any], link_id: int) -> None:
    await conn.execute(
        "UPDATE cal_booking_links SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s",
        (link_id,),
    )


async def open_link(conn: AsyncConnection[Any], key: bytes, token: str) -> Link:
    m = TOKEN_RE.match(token)
    link = await get(conn, int(m.group(1))) if m else None
    if link is None or not hmac.compare_digest(sign(key, link), token):
        raise NotFound("no such booking link", field="token")
    if link.revoked_at is not None:
        raise Gone("this booking link was revoked")
    if datetime.now(UTC) >= link.expires_at:
        raise Gone("this booking link has expired")
    return link


async def rate_limit(conn: AsyncConnection[Any], key: str, limit: int, window_s: int) -> None:
    """Count one request against `key` over a sliding window; 429 beyond `limit`.

    The sliding-window approximation: the previous fixed window's hits weigh by the part
    of it still inside the last `window_s` seconds, so a refused client stays refused
    across a window boundary and no span of `window_s` sees much more than `limit`.
    """
    cur = await conn.execute(
        """
        WITH t AS (
            SELECT to_timestamp(floor(extract(epoch FROM now()) / %(w)s) * %(w)s) AS start
        )
        INSERT INTO cal_rate_windows AS w (key, window_start, hits, prev_hits)
        SELECT %(key)s, t.start, 1, 0 FROM t
        ON CONFLICT (key) DO UPDATE SET
            prev_hits = CASE
                WHEN w.window_start = EXCLUDED.window_start THEN w.prev_hits
                WHEN w.window_start = EXCLUDED.window_start - make_interval(secs => %(w)s)
                    THEN w.hits
                ELSE 0 END,
            hits = CASE WHEN w.window_start = EXCLUDED.window_start THEN w.hits + 1 ELSE 1 END,
            window_start = EXCLUDED.window_start
        RETURNING hits, prev_hits,
            extract(epoch FROM now() - window_start) / %(w)s,
            extract(epoch FROM window_start + make_interval(secs => %(w)s) - now())
        """,
        {"key": key[:200], "w": window_s},
    )
    row = await cur.fetchone()
    assert row is not None
    hits, prev, elapsed, left = int(row[0]), int(row[1]), float(row[2]), float(row[3])
    if hits + prev * max(0.0, 1.0 - elapsed) > limit:
        # Retry-After: when the weighted count falls under the limit again, in this
        # window (the previous one's weight fading) or in the next (this one's hits
        # becoming the fading previous)
        if hits < limit and prev:
            wait = window_s * (1.0 - (limit - hits) / prev - elapsed)
        else:
            wait = left + window_s * max(0.0, 1.0 - limit / hits)
        raise TooMany("too many requests; try again later", max(1, int(wait) + 1))
