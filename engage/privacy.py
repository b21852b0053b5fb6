"""Data-subject requests for a contact: everything engage holds, and its erasure.

`export_contact` returns the contact's consent decisions, every message of every channel,
the e-mails sent (without their raw bytes) and the tracking events. `erase_contact`
deletes them, deletes the e-mail activities engage logged on the CRM timeline (through the
CRM's own delete), and leaves one suppression row for the address (`erased`, a hash is not
enough to stop a later import from mailing them) so that nothing is sent to it again by
accident; the CRM contact itself is the CRM's to delete.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from crm.entities import ACTIVITIES, CONTACTS
from crm.store import delete_record, etag, get_record
from engage import consent
from engage.timeline import engage_principal


async def export_contact(conn: AsyncConnection[Any], contact_id: int) -> dict[str, Any]:
    contact = await get_record(conn, CONTACTS, engage_principal(), contact_id)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT id, conversation_id, channel, direction, kind, from_addr, to_addr, subject,"
        " body_text, created_at FROM engage_messages WHERE contact_id = %s ORDER BY id",
        (contact_id,),
    )
    messages = await cur.fetchall()
    await cur.execute(
        "SELECT id, sender_address, to_address, subject, purpose, state, reason, created_at,"
        " sent_at, opened_at, clicked_at FROM engage_outbox WHERE contact_id = %s ORDER BY id",
        (contact_id,),
    )
    emails = await cur.fetchall()
    await cur.execute(
        "SELECT kind, url, at FROM engage_events WHERE contact_id = %s ORDER BY id", (contact_id,)
    )
    events = await cur.fetchall()
    return {
        "contact": {k: contact.get(k) for k in ("id", "first_name", "last_name", "email", "phone")},
        "consent": await consent.consents(conn, contact_id),
        "messages": messages,
        "emails": emails,
        "events": events,
    }


async def erase_contact(conn: AsyncConnection[Any], contact_id: int) -> dict[str, int]:
    contact = await get_record(conn, CONTACTS, engage_principal(), contact_id)
    counts: dict[str, int] = {}
    cur = await conn.execute(
        "SELECT id FROM activities WHERE contact_id = %s AND source = 'engage'", (contact_id,)
    )
    activity_ids = [int(r[0]) for r in await cur.fetchall()]
    for aid in activity_ids:
        current = await get_record(conn, ACTIVITIES, engage_principal(), aid)
        await delete_record(conn, ACTIVITIES, engage_principal(), aid, etag(current))
    counts["activities"] = len(activity_ids)
    for table, key in (
        ("engage_events", "events"),
        ("engage_messages", "messages"),
        ("engage_outbox", "emails"),
        ("engage_consent", "consent"),
    ):
        cur = await conn.execute(f"DELETE FROM {table} WHERE contact_id = %s", (contact_id,))
        counts[key] = cur.rowcount
    cur = await conn.execute(
        "DELETE FROM engage_conversations WHERE contact_id = %s", (contact_id,)
    )
    counts["conversations"] = cur.rowcount
    if contact.get("email"):
        await consent.mark_address(conn, contact["email"], "erased", "data-subject erasure")
    return counts
