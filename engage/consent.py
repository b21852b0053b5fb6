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


def _decide(
    *,
    contact_id: int | None,
    channel: str,
    purpose: str,
    address: str | None,
    address_status: tuple[str, str] | None,
    row: tuple[bool, str, Any] | None,
    prefs: dict[str, Any],
) -> str | None:
    """The rule (pure): a suppressed address, then the consent row, then comm_prefs/default."""
    if address_status is not None and channel == "email":
        return f"address {address} {address_status[0]}: {address_status[1]}"
    if contact_id is None:
        return None if purpose != "marketing" else "marketing needs a contact with an opt-in"
    if row is not None:
        if row[0]:
            return None
        return (
            f"contact {contact_id} withdrew consent to {purpose} {channel}"
            f" ({row[1]}, {row[2]:%Y-%m-%d %H:%M} UTC)"
        )
    granted, source = _default(prefs, channel, purpose)
    return (
        None if granted else f"contact {contact_id}: no consent to {purpose} {channel} ({source})"
    )


async def refusals(
    conn: AsyncConnection[Any], items: list[tuple[int | None, str, str, str | None]]
) -> list[str | None]:
    """`refusal` for many (contact_id, channel, purpose, address) at once: three queries."""
    contact_ids = sorted({c for c, _ch, _pu, _a in items if c is not None})
    contacts: dict[int, tuple[str | None, dict[str, Any]]] = {}
    rows: dict[tuple[int, str, str], tuple[bool, str, Any]] = {}
    if contact_ids:
        cur = await conn.execute(
            "SELECT id, email, comm_prefs FROM contacts WHERE id = ANY(%s)", (contact_ids,)
        )
        for cid, email, prefs in await cur.fetchall():
            contacts[int(cid)] = (email, dict(prefs) if isinstance(prefs, dict) else {})
        cur = await conn.execute(
            "SELECT contact_id, channel, purpose, granted, source, updated_at FROM engage_consent"
            " WHERE contact_id = ANY(%s)",
            (contact_ids,),
        )
        for cid, ch, pu, granted, source, at in await cur.fetchall():
            rows[(int(cid), ch, pu)] = (granted, source, at)
    addresses = []
    for c, ch, _pu, a in items:
        if a is None and c is not None and ch == "email":
            a = contacts.get(c, (None, {}))[0]
        addresses.append(a.strip().lower() if a else None)
    statuses: dict[str, tuple[str, str]] = {}
    wanted = sorted({a for a in addresses if a})
    if wanted:
        cur = await conn.execute(
            "SELECT address, status, reason FROM engage_address_status WHERE address = ANY(%s)",
            (wanted,),
        )
        statuses = {a: (st, why) for a, st, why in await cur.fetchall()}
    out: list[str | None] = []
    for (c, ch, pu, _a), addr in zip(items, addresses, strict=True):
        out.append(
            _decide(
                contact_id=c,
                channel=ch,
                purpose=pu,
                address=addr,
                address_status=statuses.get(addr) if addr else None,
                row=rows.get((c, ch, pu)) if c is not None else None,
                prefs=contacts.get(c, (None, {}))[1] if c is not None else {},
            )
        )
    return out


async def refusal(
    conn: AsyncConnection[Any],
    *,
    contact_id: int | None,
    channel: str,
    purpose: str,
    address: str | None,
) -> str | None:
    """Why this send may not happen, or None when it may."""
    return (await refusals(conn, [(contact_id, channel, purpose, address)]))[0]


async def mark_address(conn: AsyncConnection[Any], address: str, status: str, reason: str) -> None:
    await conn.execute(
        "INSERT INTO engage_address_status (address, status, reason) VALUES (%s, %s, %s)"
        " ON CONFLICT (address) DO UPDATE SET status = EXCLUDED.status,"
        " reason = EXCLUDED.reason, updated_at = now()",
        (address.strip().lower(), status, reason[:500]),
    )
