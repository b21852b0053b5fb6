"""An inbound e-mail into fieldmesh: a conversation message, a CRM activity, or a dead letter.

`take_in` runs in the caller's transaction (the sync commits once per batch of messages
together with the mailbox's new position, so a crash re-reads a batch and the unique
(channel, external id) of a message makes the second reading a no-op). What happens:

- unparseable or oversized mail: kept whole (up to the limit) in `engage_dead_letters`
  with the reason;
- a bounce (DSN): each permanently failed recipient's address is marked `bounced` (sends
  to it are refused with the diagnostic), the bounced outbox row records the reason, the
  bounce lands as a `bounce` message in the original's conversation;
- an auto-reply: stored as `auto_reply` (it neither reopens the conversation nor counts
  as the customer's answer, and is not put on the CRM timeline);
- anything else: linked to its contact / lead / account (an unknown sender becomes a lead
  when the mailbox's rule says so: `engage.leads`), threaded into a conversation and
  logged as an `email` activity with the reply's own words (quotes and signature removed).
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg import AsyncConnection

from engage import consent, conversations, timeline
from engage.leads import LeadRule, eligible, lead_for_unknown_sender
from engage.parse import BadMail, Parsed, parse_mail

log = logging.getLogger(__name__)

DEAD_LETTER_MAX_BYTES = 1024 * 1024


async def dead_letter(
    conn: AsyncConnection[Any],
    *,
    mailbox_id: int | None,
    uid: int | None,
    reason: str,
    raw: bytes,
    channel: str = "email",
) -> None:
    if len(raw) > DEAD_LETTER_MAX_BYTES:
        reason = f"{reason} (kept the first {DEAD_LETTER_MAX_BYTES} of {len(raw)} bytes)"
    await conn.execute(
        "INSERT INTO engage_dead_letters (mailbox_id, uid, channel, reason, raw)"
        " VALUES (%s, %s, %s, %s, %s)",
        (mailbox_id, uid, channel, reason[:1000], raw[:DEAD_LETTER_MAX_BYTES]),
    )


async def take_in(
    conn: AsyncConnection[Any],
    *,
    mailbox_id: int,
    mailbox_address: str,
    uid: int,
    uidvalidity: int,
    raw: bytes,
    links: dict[str, timeline.Link] | None = None,
    lead_rule: LeadRule | None = None,
    team_mailbox: bool = False,
) -> str:
    """What became of it: stored, duplicate, dead, bounce, own. With `lead_rule` (the
    mailbox's rule is on), an unknown sender becomes a lead (`engage.leads`)."""
    try:
        p = parse_mail(raw)
    except BadMail as exc:
        log.info("engage: mailbox %s uid %s is a dead letter: %s", mailbox_id, uid, exc)
        await dead_letter(conn, mailbox_id=mailbox_id, uid=uid, reason=str(exc), raw=raw)
        return "dead"
    external_id = p.message_id or f"<uid.{mailbox_id}.{uidvalidity}.{uid}@fieldmesh.invalid>"
    if p.bounces:
        return await _bounce(conn, p, external_id, mailbox_id, uid)
    if p.from_addr == mailbox_address:
        return "own"  # our own message (a copy in the mailbox): the outbox logged it
    if links is None or p.from_addr not in links:
        links = await timeline.link_addresses(conn, [p.from_addr])
    link = links.get(p.from_addr, timeline.Link())
    if lead_rule is not None and eligible(lead_rule, p.from_addr, link, auto_reply=p.auto_reply):
        made = await lead_for_unknown_sender(
            conn,
            lead_rule,
            address=p.from_addr,
            display_name=p.from_name,
            message_id=external_id,
        )
        if made is not None:
            link = made
            links[p.from_addr] = made  # the batch's next message from them links to it
    refs = [r for r in (p.in_reply_to, *p.references) if r]
    conv = await conversations.conversation_for(
        conn, link=link, channel="email", subject=p.subject, refs=refs, address=p.from_addr
    )
    if team_mailbox:  # mail to a team's address goes to that team's queue
        await conn.execute(
            "UPDATE engage_conversations SET team_mailbox_id = %s WHERE id = %s"
            " AND team_mailbox_id IS NULL",
            (mailbox_id, conv),
        )
    activity = None
    if not p.auto_reply:
        activity = await timeline.log_email_activity(
            conn,
            link=link,
            subject=p.subject,
            body=p.reply_text,
            message_id=external_id,
            occurred_at=p.date,
            direction="received",
        )
    mid = await conversations.add_message(
        conn,
        conversation_id=conv,
        channel="email",
        direction="in",
        contact_id=link.contact_id,
        from_addr=p.from_addr,
        to_addr=", ".join(p.to_addrs)[:1000],
        subject=p.subject,
        body_text=p.reply_text,
        body_full=p.text,
        external_id=external_id,
        in_reply_to=p.in_reply_to,
        refs=list(p.references),
        mailbox_id=mailbox_id,
        uid=uid,
        activity_id=activity,
        kind="auto_reply" if p.auto_reply else "message",
    )
    if mid is None:
        return "duplicate"
    if p.in_reply_to and not p.auto_reply:
        await conn.execute(
            "INSERT INTO engage_events (outbox_id, contact_id, kind)"
            " SELECT id, contact_id, 'reply' FROM engage_outbox WHERE message_id = %s",
            (p.in_reply_to,),
        )
    return "stored"


async def _bounce(
    conn: AsyncConnection[Any], p: Parsed, external_id: str, mailbox_id: int, uid: int
) -> str:
    original = p.in_reply_to or (p.references[-1] if p.references else None)
    for b in p.bounces:
        if not b.permanent:
            continue
        why = f"bounced {b.status}: {b.diagnostic}" if b.diagnostic else f"bounced {b.status}"
        await consent.mark_address(conn, b.recipient, "bounced", why)
        if original:
            await conn.execute(
                "UPDATE engage_outbox SET reason = %s WHERE message_id = %s",
                (why[:500], original),
            )
            await conn.execute(
                "INSERT INTO engage_events (outbox_id, contact_id, kind)"
                " SELECT id, contact_id, 'bounce' FROM engage_outbox WHERE message_id = %s",
                (original,),
            )
    conv_id = None
    if original:
        cur = await conn.execute(
            "SELECT conversation_id FROM engage_messages WHERE channel = 'email'"
            " AND external_id = %s",
            (original,),
        )
        row = await cur.fetchone()
        conv_id = row[0] if row else None
    if conv_id is not None:
        await conversations.add_message(
            conn,
            conversation_id=int(conv_id),
            channel="email",
            direction="in",
            from_addr=p.from_addr,
            subject=p.subject,
            body_text="; ".join(f"{b.recipient}: {b.status} {b.diagnostic}" for b in p.bounces),
            external_id=external_id,
            mailbox_id=mailbox_id,
            uid=uid,
            kind="bounce",
        )
    return "bounce"
