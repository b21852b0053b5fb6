"""One conversation model for every channel.

A conversation belongs to a contact (or a lead, or an unknown visitor's address) and holds
messages of any channel: e-mail in and out, SMS, chat, internal notes. Where a message
goes (`conversation_for`):

1. an e-mail that replies (In-Reply-To, References) to a message we know goes to that
   message's conversation;
2. an e-mail whose normalised subject ("Re: Fwd: x" -> "x") matches a conversation of
   the same person in the last 90 days goes there;
3. an SMS or chat message goes to the person's latest conversation that is not resolved
   (one running conversation per customer across channels);
4. otherwise a new conversation starts.

Statuses: open (waiting on us), pending (waiting on the customer), resolved. A customer's
message reopens a pending or resolved conversation. SLA: the first reply is due
FIRST_RESPONSE_SLA_S after the first customer message that finds no reply; `sla_breached`
is derived when read. While a service answers the customer by itself (the assistant's
chat bot, `set_handling`), no clock runs: the SLA of a conversation it hands over counts
from the handover. Every new message is announced with `pg_notify('engage_inbox', ...)`
in the writing transaction, so the live inbox hears of it at commit.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from engage.parse import normalise_subject
from engage.timeline import Link

INBOX_CHANNEL = "engage_inbox"
FIRST_RESPONSE_SLA_S = 4 * 3600
SUBJECT_WINDOW_DAYS = 90


def _who(link: Link, address: str | None) -> tuple[str, list[Any]]:
    if link.contact_id is not None:
        return "contact_id = %s", [link.contact_id]
    if link.lead_id is not None:
        return "lead_id = %s", [link.lead_id]
    # an address that links to nothing (yet): its own conversations, also one linked since
    # to the lead it became (an anonymous chat visitor the bot qualified keeps its key)
    return "visitor_email = %s", [(address or "").lower()]


async def conversation_for(
    conn: AsyncConnection[Any],
    *,
    link: Link,
    channel: str,
    subject: str | None,
    refs: list[str],
    address: str | None,
) -> int:
    if refs:
        cur = await conn.execute(
            "SELECT conversation_id FROM engage_messages WHERE channel = 'email'"
            " AND external_id = ANY(%s) AND conversation_id IS NOT NULL"
            " ORDER BY id DESC LIMIT 1",
            (refs,),
        )
        row = await cur.fetchone()
        if row is not None:
            return int(row[0])
    where, params = _who(link, address)
    if channel == "email" and subject:
        cur = await conn.execute(
            f"SELECT id FROM engage_conversations WHERE {where}"
            " AND subject = %s"
            " AND last_message_at > now() - make_interval(days => %s)"
            " ORDER BY last_message_at DESC LIMIT 1",
            [*params, normalise_subject(subject), SUBJECT_WINDOW_DAYS],
        )
        row = await cur.fetchone()
        if row is not None:
            return int(row[0])
    elif channel != "email":
        cur = await conn.execute(
            f"SELECT id FROM engage_conversations WHERE {where} AND status <> 'resolved'"
            " ORDER BY last_message_at DESC LIMIT 1",
            params,
        )
        row = await cur.fetchone()
        if row is not None:
            return int(row[0])
    cur = await conn.execute(
        "INSERT INTO engage_conversations (contact_id, lead_id, account_id, visitor_email,"
        " subject, last_channel) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (
            link.contact_id,
            link.lead_id,
            link.account_id,
            (address or "").lower() or None,
            normalise_subject(subject) if subject else None,
            channel,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def add_message(
    conn: AsyncConnection[Any],
    *,
    conversation_id: int,
    channel: str,
    direction: str,
    contact_id: int | None = None,
    author_user_id: int | None = None,
    from_addr: str | None = None,
    to_addr: str | None = None,
    subject: str | None = None,
    body_text: str = "",
    body_full: str | None = None,
    external_id: str | None = None,
    in_reply_to: str | None = None,
    refs: list[str] | None = None,
    mailbox_id: int | None = None,
    uid: int | None = None,
    outbox_id: int | None = None,
    activity_id: int | None = None,
    kind: str = "message",
    created_at: datetime | None = None,
) -> int | None:
    """The new message's id; None when a message with this channel and external id is
    already stored (a re-synced e-mail, a re-delivered SMS)."""
    cur = await conn.execute(
        "INSERT INTO engage_messages (conversation_id, channel, direction, contact_id,"
        " author_user_id, from_addr, to_addr, subject, body_text, body_full, external_id,"
        " in_reply_to, refs, mailbox_id, uid, outbox_id, activity_id, kind, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " coalesce(%s, now()))"
        " ON CONFLICT (channel, external_id) WHERE external_id IS NOT NULL DO NOTHING"
        " RETURNING id",
        (
            conversation_id,
            channel,
            direction,
            contact_id,
            author_user_id,
            from_addr,
            to_addr,
            subject,
            body_text,
            body_full,
            external_id,
            in_reply_to,
            refs or [],
            mailbox_id,
            uid,
            outbox_id,
            activity_id,
            kind,
            created_at,
        ),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    msg_id = int(row[0])
    if direction == "in" and kind == "message":
        await conn.execute(
            "UPDATE engage_conversations SET last_message_at = now(), last_channel = %s,"
            " status = 'open', resolved_at = NULL,"
            " waiting_since = coalesce(waiting_since, now()),"
            " first_response_due_at = CASE WHEN first_response_at IS NULL"
            "   THEN coalesce(first_response_due_at, now() + make_interval(secs => %s))"
            "   ELSE first_response_due_at END"
            " WHERE id = %s",
            (channel, FIRST_RESPONSE_SLA_S, conversation_id),
        )
    elif direction == "out":
        await conn.execute(
            "UPDATE engage_conversations SET last_message_at = now(), last_channel = %s,"
            " waiting_since = NULL,"
            " first_response_at = CASE WHEN %s AND first_response_at IS NULL"
            "   AND first_response_due_at IS NOT NULL THEN now() ELSE first_response_at END,"
            " status = CASE WHEN %s AND status = 'open' THEN 'pending' ELSE status END"
            " WHERE id = %s",
            (channel, author_user_id is not None, author_user_id is not None, conversation_id),
        )
    else:
        await conn.execute(
            "UPDATE engage_conversations SET last_message_at = now() WHERE id = %s",
            (conversation_id,),
        )
    await conn.execute(
        "SELECT pg_notify(%s, %s)",
        (
            INBOX_CHANNEL,
            json.dumps(
                {
                    "conversation_id": conversation_id,
                    "message_id": msg_id,
                    "channel": channel,
                    "direction": direction,
                    "kind": kind,
                }
            ),
        ),
    )
    return msg_id


async def set_handling(
    conn: AsyncConnection[Any],
    conversation_id: int,
    *,
    assignee_user_id: int | None = None,
    waiting_on_us: bool,
) -> None:
    """For a service answering customers by itself (the assistant's chat bot):
    `waiting_on_us` puts the conversation in the agents' open queue (a handover, assigned
    when an assignee is given) with the first-response SLA counting from now, else it waits
    on the customer (pending) while the service handles it, and no SLA clock runs (a
    visitor's message the service answered is no reply an agent owes)."""
    await conn.execute(
        "UPDATE engage_conversations SET assignee_user_id = coalesce(%s, assignee_user_id),"
        " status = CASE WHEN %s THEN 'open' ELSE 'pending' END,"
        " waiting_since = CASE WHEN %s THEN coalesce(waiting_since, now()) END,"
        " first_response_due_at = CASE WHEN first_response_at IS NOT NULL"
        "   THEN first_response_due_at"
        "   WHEN %s THEN now() + make_interval(secs => %s) END"
        " WHERE id = %s",
        (
            assignee_user_id,
            waiting_on_us,
            waiting_on_us,
            waiting_on_us,
            FIRST_RESPONSE_SLA_S,
            conversation_id,
        ),
    )


async def link_lead(conn: AsyncConnection[Any], conversation_id: int, lead_id: int) -> None:
    """The conversation is this lead's (a visitor a service qualified into a lead): it shows
    on the lead and to whoever may see the lead. A conversation already linked to a contact
    or a lead keeps that link."""
    await conn.execute(
        "UPDATE engage_conversations SET lead_id = %s"
        " WHERE id = %s AND contact_id IS NULL AND lead_id IS NULL",
        (lead_id, conversation_id),
    )


CONV_COLUMNS = (
    "c.id, c.contact_id, c.lead_id, c.account_id, c.visitor_email, c.subject, c.status,"
    " c.assignee_user_id, c.team_mailbox_id, c.last_channel, c.last_message_at, c.first_response_due_at,"
    " c.first_response_at, c.waiting_since, c.resolved_at, c.created_at,"
    " (c.first_response_at IS NULL AND c.first_response_due_at < now()"
    "  AND c.status <> 'resolved') AS sla_breached"
)


async def get_conversation(
    conn: AsyncConnection[Any], conversation_id: int
) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"SELECT {CONV_COLUMNS} FROM engage_conversations c WHERE c.id = %s", (conversation_id,)
    )
    return await cur.fetchone()


async def messages(
    conn: AsyncConnection[Any], conversation_id: int, limit: int = 200
) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT id, conversation_id, channel, direction, kind, contact_id, author_user_id,"
        " from_addr, to_addr, subject, body_text, external_id, created_at"
        " FROM engage_messages WHERE conversation_id = %s ORDER BY created_at, id LIMIT %s",
        (conversation_id, limit),
    )
    return await cur.fetchall()


async def message(conn: AsyncConnection[Any], message_id: int) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT id, conversation_id, channel, direction, kind, contact_id, author_user_id,"
        " from_addr, to_addr, subject, body_text, external_id, created_at"
        " FROM engage_messages WHERE id = %s",
        (message_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return row
