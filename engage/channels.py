"""Channels other than e-mail, and replies from the inbox on any channel.

A channel takes a customer's message in (`take_in_sms`, `take_in_chat`) and sends ours
out. SMS goes through an HTTP SMS gateway (Kannel's `sendsms` interface: the embedded
Kannel with its fake SMS centre, or SMS_GATEWAY_URL's real one) from the `engage.sms` job,
so a gateway that is down only delays it; chat goes to the visitor's open widget sockets
through the same `engage_inbox` notification the console listens to.

Who an inbound message is: an SMS by the sender's phone number (the CRM's normalised
phone), a chat visitor by the e-mail address they give (else an anonymous visitor key).
Both land in the person's running conversation (`conversations.conversation_for`), the
same one their e-mails thread into when it is still open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from crm.entities import normalize_phone
from engage import consent, conversations, render, send
from engage.timeline import Link, link_addresses
from kernel.errors import NotFound, Unprocessable
from kernel.jobs import enqueue
from kernel.settings import Settings

SMS_TASK = "engage.sms"
MAX_SMS_CHARS = 1600
MAX_CHAT_CHARS = 4000
_PHONE = re.compile(r"^\+?[0-9]{3,20}$")


def normalise_phone(raw: str) -> str | None:
    """The CRM's normalised form (digits, a leading + kept), when it is a phone number."""
    digits = normalize_phone(raw)
    return digits if digits is not None and _PHONE.match(digits) else None


async def link_phone(conn: AsyncConnection[Any], phone: str) -> Link:
    cur = await conn.execute(
        "SELECT coalesce(c.merged_into_id, c.id),"
        " (SELECT ac.account_id FROM account_contacts ac WHERE ac.contact_id ="
        "  coalesce(c.merged_into_id, c.id) ORDER BY (ac.role = 'primary') DESC LIMIT 1)"
        " FROM contacts c WHERE c.phone_normalized = %s OR c.phone_normalized = %s"
        " ORDER BY (c.merged_into_id IS NULL) DESC, c.id LIMIT 1",
        (phone, phone.lstrip("+")),
    )
    row = await cur.fetchone()
    if row is not None:
        return Link(contact_id=int(row[0]), account_id=row[1])
    cur = await conn.execute(
        "SELECT id FROM leads WHERE phone_normalized IN (%s, %s) AND status <> 'converted'"
        " ORDER BY id LIMIT 1",
        (phone, phone.lstrip("+")),
    )
    row = await cur.fetchone()
    return Link(lead_id=int(row[0])) if row else Link()


async def take_in_sms(
    conn: AsyncConnection[Any], *, sender: str, receiver: str, text: str, gateway_id: str
) -> int | None:
    """An inbound SMS; the message's id (None when this gateway id was already taken in)."""
    phone = normalise_phone(sender)
    if phone is None:
        raise Unprocessable(f"not a phone number: {sender[:40]!r}", field="from")
    link = await link_phone(conn, phone)
    conv = await conversations.conversation_for(
        conn, link=link, channel="sms", subject=None, refs=[], address=phone
    )
    return await conversations.add_message(
        conn,
        conversation_id=conv,
        channel="sms",
        direction="in",
        contact_id=link.contact_id,
        from_addr=phone,
        to_addr=receiver[:40],
        body_text=text[:MAX_SMS_CHARS],
        external_id=f"sms:{gateway_id}"[:200],
    )


async def take_in_chat(
    conn: AsyncConnection[Any],
    *,
    visitor_key: str,
    email: str | None,
    text: str,
    client_msg_id: str,
) -> tuple[int, int | None]:
    """A widget message: (conversation id, message id or None for a repeat)."""
    link = Link()
    address = None
    if email:
        address = email.strip().lower()
        link = (await link_addresses(conn, [address])).get(address, Link())
    conv = await conversations.conversation_for(
        conn,
        link=link,
        channel="chat",
        subject=None,
        refs=[],
        address=address or f"visitor:{visitor_key}",
    )
    mid = await conversations.add_message(
        conn,
        conversation_id=conv,
        channel="chat",
        direction="in",
        contact_id=link.contact_id,
        from_addr=address or f"visitor:{visitor_key}",
        body_text=text[:MAX_CHAT_CHARS],
        external_id=f"chat:{visitor_key}:{client_msg_id}"[:200],
    )
    return conv, mid


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True, slots=True)
class ReplyResult:
    channel: str
    message_id: int | None
    email_id: int | None


async def _template_text(
    conn: AsyncConnection[Any], name: str, channel: str, values: dict[str, Any]
) -> tuple[str, str, str | None]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM engage_templates WHERE name = %s", (name,))
    t = await cur.fetchone()
    if t is None:
        raise NotFound(f"template {name!r} not found", field="template")
    if channel == "sms" and t["sms_body"]:
        text, _ = render.merge(t["sms_body"], values, escape=False)
    elif t["text_body"]:
        text, _ = render.merge(t["text_body"], values, escape=False)
    else:
        text = render.html_to_text(render.merge(t["html"], values, escape=True)[0])
    return text.strip(), str(t["purpose"]), str(t["name"])


async def reply(
    conn: AsyncConnection[Any],
    settings: Settings,
    *,
    conversation_id: int,
    user_id: int,
    text: str | None,
    template: str | None,
    channel: str | None,
    idempotency_key: str,
) -> ReplyResult:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM engage_conversations WHERE id = %s", (conversation_id,))
    conv = await cur.fetchone()
    if conv is None:
        raise NotFound(f"no conversation {conversation_id}", field="conversation_id")
    await cur.execute(
        "SELECT * FROM engage_messages WHERE conversation_id = %s AND direction = 'in'"
        " AND kind = 'message' ORDER BY id DESC LIMIT 1",
        (conversation_id,),
    )
    last_in = await cur.fetchone()
    ch = channel or (last_in["channel"] if last_in else conv["last_channel"]) or "email"
    values: dict[str, Any] = {}
    if conv["contact_id"] is not None:
        from engage.timeline import contact_merge_values

        values = await contact_merge_values(conn, conv["contact_id"])
    purpose = "service"
    if template is not None:
        text, purpose, _ = await _template_text(conn, template, ch, values)
    assert text is not None
    reason = await consent.refusal(
        conn,
        contact_id=conv["contact_id"],
        channel=ch,
        purpose=purpose,
        address=last_in["from_addr"] if (last_in and ch == "email") else None,
    )
    if reason is not None:
        from engage.errors import ConsentRefused

        raise ConsentRefused(reason)
    if ch == "email":
        to = last_in["from_addr"] if last_in and last_in["channel"] == "email" else None
        refs = list(last_in["refs"] or []) if last_in and last_in["channel"] == "email" else []
        irt = last_in["external_id"] if last_in and last_in["channel"] == "email" else None
        subject = conv["subject"] or "Your message"
        html = (
            "<p>"
            + "</p><p>".join(
                render.merge("{{t}}", {"t": para}, escape=True)[0].replace("\n", "<br>")
                for para in text.split("\n\n")
            )
            + "</p>"
        )
        oid = await send.enqueue_email(
            conn,
            idempotency_key=idempotency_key,
            config=send.send_config(settings),
            sender_user_id=user_id,
            to=to,
            contact_id=conv["contact_id"] if to is None else None,
            subject=subject if subject.lower().startswith("re:") else f"Re: {subject}",
            html=html,
            text=text,
            purpose=purpose,
            in_reply_to=irt,
            references=refs,
            conversation_id=conversation_id,
        )
        return ReplyResult("email", None, oid)
    if ch == "sms":
        await cur.execute(
            "SELECT from_addr FROM engage_messages WHERE conversation_id = %s AND channel = 'sms'"
            " AND direction = 'in' ORDER BY id DESC LIMIT 1",
            (conversation_id,),
        )
        row = await cur.fetchone()
        phone = row["from_addr"] if row else None
        if phone is None and conv["contact_id"] is not None:
            await cur.execute("SELECT phone FROM contacts WHERE id = %s", (conv["contact_id"],))
            c = await cur.fetchone()
            phone = normalise_phone(c["phone"]) if c and c["phone"] else None
        if phone is None:
            raise Unprocessable("the customer has no phone number for SMS", field="channel")
        mid = await conversations.add_message(
            conn,
            conversation_id=conversation_id,
            channel="sms",
            direction="out",
            contact_id=conv["contact_id"],
            author_user_id=user_id,
            to_addr=phone,
            body_text=text[:MAX_SMS_CHARS],
            external_id=f"sms-out:{idempotency_key}"[:200],
        )
        if mid is not None:
            await enqueue(conn, SMS_TASK, {"message_id": mid}, max_attempts=8)
        return ReplyResult("sms", mid, None)
    mid = await conversations.add_message(
        conn,
        conversation_id=conversation_id,
        channel="chat",
        direction="out",
        contact_id=conv["contact_id"],
        author_user_id=user_id,
        body_text=text[:MAX_CHAT_CHARS],
        external_id=f"chat-out:{idempotency_key}"[:200],
    )
    return ReplyResult("chat", mid, None)
