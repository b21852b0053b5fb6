"""Connected mailboxes: a user's or a team's address, where it sends from and what is synced.

With the embedded mail servers (no SMTP_URL) connecting a mailbox also creates it in the
embedded Dovecot with a random password; with real servers the caller gives the IMAP
account (host, port, TLS, user, password), or IMAP_URL's server is used with the given
user and password. The IMAP password is stored sealed (`kernel.secretbox`, under a key kept
outside the database) and opened only to log in.
"""

from __future__ import annotations

import secrets
from typing import Any

from psycopg import AsyncConnection, errors
from psycopg.rows import dict_row

from engage import accounts
from kernel import secretbox
from kernel.errors import Conflict, Unprocessable
from kernel.settings import Settings

_COLUMNS = (
    "id, address, display_name, kind, owner_user_id, imap_host, imap_port, imap_tls,"
    " imap_user, folder, uidvalidity, last_uid, rate_per_min, last_sync_at, last_error, created_at,"
    " leads_from_unknown, leads_per_day"
)


async def connect_mailbox(
    conn: AsyncConnection[Any],
    settings: Settings,
    *,
    address: str,
    display_name: str | None = None,
    kind: str = "user",
    owner_user_id: int | None = None,
    imap_host: str | None = None,
    imap_port: int | None = None,
    imap_tls: bool = False,
    imap_user: str | None = None,
    imap_password: str | None = None,
    rate_per_min: int = 600,
    leads_from_unknown: bool = False,
    leads_per_day: int = 50,
) -> dict[str, Any]:
    addr = address.strip().lower()
    if addr.count("@") != 1 or any(c in addr for c in " \t\r\n:<>,;/"):
        raise Unprocessable(f"not an e-mail address: {address!r}", field="address")
    password = imap_password
    if settings.embedded_mail and imap_host is None:
        password = password or secrets.token_urlsafe(18)
        try:
            accounts.add_mailbox(settings, addr, password)
        except accounts.AccountError as exc:
            raise Unprocessable(str(exc), field="address") from exc
    elif password is None:
        raise Unprocessable("an IMAP password is needed for a real server", field="imap_password")
    cur = conn.cursor(row_factory=dict_row)
    try:
        async with conn.transaction():
            await cur.execute(
                "INSERT INTO engage_mailboxes (address, display_name, kind, owner_user_id,"
                " imap_host, imap_port, imap_tls, imap_user, imap_password, rate_per_min,"
                " leads_from_unknown, leads_per_day)"
                f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                (
                    addr,
                    display_name,
                    kind,
                    owner_user_id,
                    imap_host,
                    imap_port,
                    imap_tls,
                    imap_user,
                    secretbox.seal(settings, password),
                    rate_per_min,
                    leads_from_unknown,
                    leads_per_day,
                ),
            )
    except errors.UniqueViolation:
        raise Conflict(f"mailbox {addr} is already connected", field="address") from None
    row = await cur.fetchone()
    assert row is not None
    return row


async def list_mailboxes(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"SELECT {_COLUMNS} FROM engage_mailboxes ORDER BY id")
    return await cur.fetchall()


async def set_lead_rule(
    conn: AsyncConnection[Any], mailbox_id: int, *, enabled: bool, per_day: int
) -> dict[str, Any] | None:
    """Turn the unknown-sender lead rule of a mailbox on or off (`engage.leads`)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "UPDATE engage_mailboxes SET leads_from_unknown = %s, leads_per_day = %s"
        f" WHERE id = %s RETURNING {_COLUMNS}",
        (enabled, per_day, mailbox_id),
    )
    return await cur.fetchone()
