"""Invitations by e-mail (iMIP, RFC 6047), through engage.

Out: every outbound iTIP message in `cal_itip` (a REQUEST when attendees are set or the
event changes, a CANCEL when it goes) becomes one e-mail from the organizer's connected
mailbox with the object attached as `text/calendar; method=REQUEST|CANCEL`, queued with
`engage.send.enqueue_email` in the same transaction that marks the message sent. The
idempotency key is the iTIP message's id, so a retried job never queues a second mail,
and engage's sender sends each queued mail once. An organizer without a connected
mailbox keeps the message unsent with the reason (`send_error`), tried again hourly.

In: `read_replies` reads each organizer mailbox's INBOX (through engage's IMAP account,
read-only, from the last UID seen; engage's own reading is untouched), fetches the mails
whose structure has a `text/calendar` part, takes those parts and hands them to `itip.ingest_reply` with the mail's From
address: only that attendee's answer is taken. The RSVP then reaches the CalDAV server
at the next sync. Replies arriving through the CalDAV server are the sync's (itip.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import logging
from dataclasses import dataclass
from email.message import Message
from email.policy import default as default_policy
from email.utils import parseaddr
from typing import Any

from imapclient.exceptions import IMAPClientError
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from calendars import itip
from calendars.ical import parse_calendar
from calendars.model import CalendarError
from engage import imap_sync
from engage.errors import EngageError
from engage.render import Attachment
from engage.send import enqueue_email, send_config
from kernel.errors import ApiError
from kernel.settings import Settings

log = logging.getLogger(__name__)

SEND_BATCH = 100
RETRY_AFTER = "1 hour"  # an organizer without a mailbox: when to try again
MAX_REPLY_BYTES = 1_000_000  # a reply bigger than this is not an iTIP answer
READ_BATCH = 200

_SUBJECT = {"REQUEST": "Invitation: {summary}", "CANCEL": "Cancelled: {summary}"}
_TEXT = {
    "REQUEST": "{organizer} invites you to {summary}, {when}.\n\n"
    "Your calendar shows the invitation attached; accepting or declining it answers.",
    "CANCEL": "{organizer} cancelled {summary} ({when}).",
}


@dataclass(frozen=True, slots=True)
class SendResult:
    queued: int
    failed: int


async def send_pending(conn: AsyncConnection[Any], settings: Settings) -> SendResult:
    """Queue the unsent outbound iTIP messages as e-mails (one transaction)."""
    queued = failed = 0
    async with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"""
            SELECT i.id, i.method, i.recipient, i.ics, i.owner_id, e.summary, e.start_at,
                   e.tz, u.name AS organizer
            FROM cal_itip i
            LEFT JOIN cal_events e ON e.id = i.event_id
            LEFT JOIN users u ON u.id = i.owner_id
            WHERE i.direction = 'out' AND i.sent_at IS NULL AND i.owner_id IS NOT NULL
              AND (i.attempted_at IS NULL OR i.attempted_at < now() - interval '{RETRY_AFTER}')
            ORDER BY i.id LIMIT %s
            FOR UPDATE OF i SKIP LOCKED
            """,
            (SEND_BATCH,),
        )
        for row in await cur.fetchall():
            method = str(row["method"])
            summary = row["summary"] or _summary_of(row["ics"]) or "a meeting"
            when = row["start_at"].strftime("%Y-%m-%d %H:%M UTC") if row["start_at"] else ""
            words = {"summary": summary, "when": when, "organizer": row["organizer"] or ""}
            text = _TEXT[method].format(**words)
            try:
                async with conn.transaction():
                    outbox = await enqueue_email(
                        conn,
                        idempotency_key=f"calendars.itip:{row['id']}",
                        config=send_config(settings),
                        sender_user_id=int(row["owner_id"]),
                        to=str(row["recipient"]),
                        subject=_SUBJECT[method].format(**words),
                        html=f"<p>{_escape(text)}</p>",
                        text=text,
                        attachments=[
                            Attachment(
                                "invite.ics",
                                f"text/calendar; method={method}; charset=utf-8",
                                str(row["ics"]).encode("utf-8"),
                            )
                        ],
                        purpose="transactional",
                    )
                    await conn.execute(
                        "UPDATE cal_itip SET sent_at = now(), attempted_at = now(), "
                        "outbox_id = %s, send_error = NULL WHERE id = %s",
                        (outbox, row["id"]),
                    )
                queued += 1
            except ApiError as exc:  # no connected mailbox, an address engage refuses
                await conn.execute(
                    "UPDATE cal_itip SET attempted_at = now(), send_error = %s WHERE id = %s",
                    (str(exc)[:500], row["id"]),
                )
                failed += 1
    return SendResult(queued, failed)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _summary_of(ics: str) -> str | None:
    try:
        events = parse_calendar(ics)
    except CalendarError:
        return None
    return events[0].summary if events else None


# ----------------------------------------------------------------- replies by IMAP


def calendar_parts(raw: bytes) -> list[str]:
    """The text/calendar parts of a mail (at most MAX_REPLY_BYTES of mail)."""
    if len(raw) > MAX_REPLY_BYTES:
        return []
    msg: Message = email.message_from_bytes(raw, policy=default_policy)
    out: list[str] = []
    for part in msg.walk():
        if part.get_content_type() != "text/calendar":
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            out.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return out


def _fetch_replies(
    acct: imap_sync.ImapAccount, uidvalidity: int | None, last_uid: int
) -> tuple[int, int, list[tuple[int, bytes]]]:
    client = imap_sync.connect(acct)
    try:
        info = client.select_folder(acct.folder, readonly=True)
        validity = int(info.get(b"UIDVALIDITY", 0))
        start = last_uid + 1 if validity == uidvalidity else 1
        uids = sorted(u for u in client.search(["UID", f"{start}:*"]) if u >= start)
        uids = uids[:READ_BATCH]
        got: list[tuple[int, bytes]] = []
        if uids:
            # only mails with a text/calendar part and of a sensible size are fetched whole
            shapes = client.fetch(uids, ["BODYSTRUCTURE", "RFC822.SIZE"])
            wanted = [
                u
                for u in uids
                if "'calendar'" in repr(shapes.get(u, {}).get(b"BODYSTRUCTURE")).lower()
                and int(shapes.get(u, {}).get(b"RFC822.SIZE", 0)) <= MAX_REPLY_BYTES
            ]
            data = client.fetch(wanted, ["BODY.PEEK[]"]) if wanted else {}
            for u in wanted:
                raw = data.get(u, {}).get(b"BODY[]")
                if isinstance(raw, bytes):
                    got.append((u, raw))
        top = uids[-1] if uids else (last_uid if validity == uidvalidity else 0)
        return validity, top, got
    finally:
        with contextlib.suppress(IMAPClientError, OSError):
            client.logout()


async def read_replies(conn: AsyncConnection[Any], settings: Settings) -> int:
    """Read the organizers' mailboxes for iTIP replies; how many events were updated."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT m.*, c.uidvalidity AS cal_uidvalidity, c.last_uid AS cal_last_uid
        FROM engage_mailboxes m
        LEFT JOIN cal_imip_cursor c ON c.mailbox_id = m.id
        WHERE m.owner_user_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM cal_itip i WHERE i.owner_id = m.owner_user_id
              AND i.direction = 'out' AND i.method = 'REQUEST' AND i.sent_at IS NOT NULL)
        ORDER BY m.id
        """
    )
    updated = 0
    for box in await cur.fetchall():
        acct = imap_sync.account_of(box, settings)
        try:
            validity, top, mails = await asyncio.to_thread(
                _fetch_replies, acct, box["cal_uidvalidity"], int(box["cal_last_uid"] or 0)
            )
        except (EngageError, IMAPClientError, OSError) as exc:
            log.warning("calendars: replies of mailbox %s not read: %s", box["id"], exc)
            continue
        async with conn.transaction():
            for _uid, raw in mails:
                sender = parseaddr(
                    str(email.message_from_bytes(raw[:65536], policy=default_policy)["From"] or "")
                )[1]
                for ics in calendar_parts(raw):
                    try:
                        updated += await itip.ingest_reply(
                            conn, int(box["owner_user_id"]), ics, sender=sender or "-"
                        )
                    except CalendarError as exc:
                        log.info("calendars: an unreadable iTIP reply in %s: %s", box["id"], exc)
            await conn.execute(
                "INSERT INTO cal_imip_cursor (mailbox_id, uidvalidity, last_uid) "
                "VALUES (%s, %s, %s) ON CONFLICT (mailbox_id) DO UPDATE SET "
                "uidvalidity = EXCLUDED.uidvalidity, last_uid = EXCLUDED.last_uid, "
                "updated_at = now()",
                (box["id"], validity, top),
            )
    return updated
