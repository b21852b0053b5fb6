"""Share links: one AR scene for a customer, signed, expiring and revocable.

A link is `/ar/s/<id>.<mac>`: the row id in `ar_shares` (ar_viewer migration a1001) and an
HMAC-SHA256 over what the row names (id, kind, target, metric, expiry), keyed by a key
derived from the deployment's master secret in the state dir. The token is never stored:
a copy of the database does not give working links, and a row whose scene or expiry is
changed no longer matches its old links. Checking a link: an unknown id or a wrong MAC is
404 (as for any unknown URL); a revoked or expired link is 410.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import class_row

from kernel.broker import master_key
from kernel.errors import ApiError, NotFound
from kernel.settings import Settings

ShareKind = Literal["territory", "asset"]
_KEY_LABEL = b"fieldmesh/ar_viewer/share-links/v1"
TOKEN_RE = re.compile(r"^(\d{1,18})\.([A-Za-z0-9_-]{43})$")
TOKEN_PATTERN = TOKEN_RE.pattern


class Gone(ApiError):
    """A share link that existed but no longer opens (410)."""

    status = 410

    def __init__(self, message: str) -> None:
        super().__init__(message, code="gone")


def share_key(settings: Settings) -> bytes:
    """The links' own key, derived from the deployment's master secret
    (`<state_dir>/secrets/master.key`, kernel.broker) so that it signs nothing else."""
    return hmac.new(master_key(settings), _KEY_LABEL, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class Share:
    id: int
    kind: str
    territory_id: int | None
    territory: str | None
    device_id: str | None
    metric: str
    note: str
    created_by: int | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    @property
    def target(self) -> str:
        return str(self.territory_id) if self.kind == "territory" else str(self.device_id)


def sign(key: bytes, share: Share) -> str:
    """The link token of a share row."""
    expires = int(share.expires_at.timestamp())
    message = f"{share.id}|{share.kind}|{share.target}|{share.metric}|{expires}".encode()
    mac = hmac.new(key, message, hashlib.sha256).digest()
    return f"{share.id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


_SELECT = """
SELECT s.id, s.kind, s.territory_id, t.name AS territory, s.device_id, s.metric, s.note,
       s.created_by, s.created_at, s.expires_at, s.revoked_at
FROM ar_shares s LEFT JOIN territories t ON t.id = s.territory_id
"""


async def create(
    conn: AsyncConnection[Any],
    *,
    kind: ShareKind,
    territory_id: int | None,
    device_id: str | None,
    metric: str,
    note: str,
    created_by: int,
    expires_in_s: int,
) -> Share:
    # whole seconds: the MAC signs the expiry as an integer
    cur = await conn.execute(
        "INSERT INTO ar_shares (kind, territory_id, device_id, metric, note, created_by,"
        " expires_at) VALUES (%s, %s, %s, %s, %s, %s,"
        " date_trunc('second', now()) + make_interval(secs => %s)) RETURNING id",
        (kind, territory_id, device_id, metric, note, created_by, expires_in_s),
    )
    row = await cur.fetchone()
    assert row is not None
    share = await get(conn, int(row[0]))
    assert share is not None
    return share


async def get(conn: AsyncConnection[Any], share_id: int) -> Share | None:
    cur = conn.cursor(row_factory=class_row(Share))
    await cur.execute(_SELECT + " WHERE s.id = %s", (share_id,))
    return await cur.fetchone()


async def listed(
    conn: AsyncConnection[Any], created_by: list[int] | None, limit: int, before_id: int | None
) -> list[Share]:
    """Shares newest first; those created by `created_by` users only, unless None."""
    cur = conn.cursor(row_factory=class_row(Share))
    await cur.execute(
        _SELECT + " WHERE (%s::bigint[] IS NULL OR s.created_by = ANY(%s))"
        " AND (%s::bigint IS NULL OR s.id < %s) ORDER BY s.id DESC LIMIT %s",
        (created_by, created_by, before_id, before_id, limit),
    )
    return await cur.fetchall()


async def revoke(conn: AsyncConnection[Any], share_id: int, by: int) -> None:
    await conn.execute(
        "UPDATE ar_shares SET revoked_at = coalesce(revoked_at, now()),"
        " revoked_by = coalesce(revoked_by, %s) WHERE id = %s",
        (by, share_id),
    )


async def open_link(conn: AsyncConnection[Any], key: bytes, token: str) -> Share:
    """The share a link token opens, or 404 (unknown, forged) / 410 (revoked, expired)."""
    m = TOKEN_RE.match(token)
    share = await get(conn, int(m.group(1))) if m else None
    if share is None or not hmac.compare_digest(sign(key, share), token):
        raise NotFound("no such share link", field="token")
    if share.revoked_at is not None:
        raise Gone("this share link was revoked")
    if datetime.now(UTC) >= share.expires_at:
        raise Gone("this share link has expired")
    return share
