"""Consent by contact, channel and purpose, and the addresses that bounced.

The record is `engage_consent` (contact, channel, purpose, granted, source, when). Where a
contact has no row for a channel and purpose, the CRM's older `contacts.comm_prefs`
decides: `{"email": false}` refuses every e-mail, `{"sms": true}` grants SMS for every
purpose. Without either, transactional and service messages are allowed (the customer
relationship is their basis) and marketing is refused (it needs an explicit opt-in).
An address that hard-bounced is refused on every purpose until it is cleared.

`refusal` returns the reason a send may not happen, or None; the sending path calls it
when a message is queued and again right before it goes out, so a withdrawal (the RFC 8058
one-click unsubscribe) stops even messages already queued.
"""

from __future__ import annotations

from typing import Any, Literal

from psycopg import AsyncConnection

Channel = Literal["email", "sms", "chat"]
Purpose = Literal["transactional", "marketing", "service"]
CHANNELS: tuple[str, ...] = ("email", "sms", "chat")
PURPOSES: tuple[str, ...] = ("transactional", "marketing", "service")


async def set_consent(
    conn: AsyncConnection[Any],
    contact_id: int,
    channel: str,
    purpose: str,
    granted: bool,
    source: str,
) -> None:
    await conn.execute(
        "INSERT INTO engage_consent (contact_id, channel, purpose, granted, source)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (contact_id, channel, purpose) DO UPDATE"
        " SET granted = EXCLUDED.granted, source = EXCLUDED.source, updated_at = now()",
        (contact_id, channel, purpose, granted, source[:200]),
    )


async def consents(conn: AsyncConnection[Any], contact_id: int) -> list[dict[str, Any]]:
    """Every channel and purpose with the decision and where it comes from."""
    cur = await conn.execute(
        "SELECT channel, purpose, granted, source, updated_at FROM engage_consent"
        " WHERE contact_id = %s",
        (contact_id,),
    )
    rows = {(r[0], r[1]): r for r in await cur.fetchall()}
    prefs = await _comm_prefs(conn, contact_id)
    out = []
    for ch in CHANNELS:
        for pu in PURPOSES:
            r = rows.get((ch, pu))
            if r is not None:
                out.append(
                    {
                        "channel": ch,
                        "purpose": pu,
                        "granted": r[2],
                        "source": r[3],
                        "updated_at": r[4],
                    }
                )
            else:
                granted, source = _default(prefs, ch, pu)
                out.append(
                    {
                        "channel": ch,
                        "purpose": pu,
                        "granted": granted,
                        "source": source,
                        "updated_at": None,
                    }
                )
    return out


async def _comm_prefs(conn: AsyncConnection[Any], contact_id: int) -> dict[str, Any]:
    cur = await conn.execute("SELECT comm_prefs FROM contacts WHERE id = %s", (contact_id,))
    row = await cur.fetchone()
    return dict(row[0]) if row and isinstance(row[0], dict) else {}


def _default(prefs: dict[str, Any], channel: str, purpose: str) -> tuple[bool, str]:
    pref = prefs.get(channel)
    if pref is False:
        return False, f"comm_prefs: {channel} refused"
    if pref is True:
        return True, f"comm_prefs: {channel} accepted"
    if purpose == "marketing":
        return False, "default: marketing needs an opt-in"
    return True, f"default: {purpose} messages to a customer"


async def refusal(
    conn: AsyncConnection[Any],
    *,
    contact_id: int | None,
    channel: str,
    purpose: str,
    address: str | None,
) -> str | None:
    """Why this send may not happen, or None when it may."""
    if address is None and contact_id is not None and channel == "email":
        cur = await conn.execute("SELECT email FROM contacts WHERE id = %s", (contact_id,))
        row = await cur.fetchone()
        address = str(row[0]) if row and row[0] else None
    if address is not None and channel == "email":
        cur = await conn.execute(
            "SELECT status, reason FROM engage_address_status WHERE address = %s",
            (address.strip().lower(),),
        )
        row = await cur.fetchone()
        if row is not None:
            return f"address {address} {row[0]}: {row[1]}"
    if contact_id is None:
        return None if purpose != "marketing" else "marketing needs a contact with an opt-in"
    cur = await conn.execute(
        "SELECT granted, source, updated_at FROM engage_consent"
        " WHERE contact_id = %s AND channel = %s AND purpose = %s",
        (contact_id, channel, purpose),
    )
    row = await cur.fetchone()
    if row is not None:
        if row[0]:
            return None
        return (
            f"contact {contact_id} withdrew consent to {purpose} {channel}"
            f" ({row[1]}, {row[2]:%Y-%m-%d %H:%M} UTC)"
        )
    granted, source = _default(await _comm_prefs(conn, contact_id), channel, purpose)
    return (
        None if granted else f"contact {contact_id}: no consent to {purpose} {channel} ({source})"
    )


async def mark_address(conn: AsyncConnection[Any], address: str, status: str, reason: str) -> None:
    await conn.execute(
        "INSERT INTO engage_address_status (address, status, reason) VALUES (%s, %s, %s)"
        " ON CONFLICT (address) DO UPDATE SET status = EXCLUDED.status,"
        " reason = EXCLUDED.reason, updated_at = now()",
        (address.strip().lower(), status, reason[:500]),
    )
