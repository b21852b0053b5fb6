"""Invitations by e-mail end to end, with the embedded mail servers (Dovecot + the SMTP
relay) and Radicale: a REQUEST reaches the attendee's real mailbox through engage's
idempotent sending, the attendee's emailed REPLY sets the RSVP (a forged one from
another address does not), and a deleted meeting sends a CANCEL."""

from __future__ import annotations

import asyncio
import email
import smtplib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy

from imapclient import IMAPClient
from psycopg import AsyncConnection

from calendars import imip, reminders, service
from calendars.ical import parse_calendar, to_ics
from calendars.model import Attendee
from calendars.sync import RoundStats
from identity.auth import load_principal
from kernel.settings import Settings
from tests.calendars.test_sync import _q
from tests.engage.conftest import make_world, send_worker
from tests.eventually import eventually_async
from tests.world import People

T0 = datetime(2027, 1, 12, 9, 0, tzinfo=UTC)


def _inbox(settings: Settings, address: str, password: str) -> list[EmailMessage]:
    with IMAPClient("127.0.0.1", port=settings.imap_port, ssl=False) as c:
        c.login(address, password)
        c.select_folder("INBOX", readonly=True)
        uids = c.search(["ALL"])
        data = c.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
    out: list[EmailMessage] = []
    for u in uids:
        msg = email.message_from_bytes(data[u][b"BODY[]"], policy=default_policy)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def _calendar_part(msg: EmailMessage) -> tuple[str, str]:
    """(the method parameter of the text/calendar part, its text)."""
    for part in msg.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return str(part.get_param("method")), payload.decode()
    raise AssertionError("no text/calendar part")


def _mail_reply(settings: Settings, sender: str, to: str, ics: str) -> None:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = "Re: invitation"
    msg.set_content("See the attached answer.")
    msg.add_attachment(
        ics.encode(),
        maintype="text",
        subtype="calendar",
        filename="reply.ics",
        params={"method": "REPLY"},
    )
    with smtplib.SMTP("127.0.0.1", settings.smtp_port) as s:
        s.send_message(msg)


def test_invitation_by_mail_reply_sets_rsvp_and_deletion_cancels(
    db_dsn: str,
    test_settings: Settings,
    people: People,
    sync: Callable[[int], RoundStats],
) -> None:
    w = asyncio.run(make_world(db_dsn, test_settings, people))

    async def invite() -> tuple[int, int]:
        async with await AsyncConnection.connect(db_dsn) as conn:
            await service.opt_in(conn, test_settings, w.rep_id)
            p = await load_principal(conn, w.rep_id)
            assert p is not None
            got = await service.create_event(
                conn,
                p,
                "acme",
                service.EventInput(
                    subject=f"Site survey {w.tag}",
                    start=T0,
                    end=T0 + timedelta(hours=1),
                    tz="Europe/Berlin",
                    attendees=(Attendee(w.contact_address, "Ann Lee"),),
                ),
            )
            await conn.commit()
            return got

    activity_id, event_id = asyncio.run(invite())

    async def send_all() -> tuple[imip.SendResult, imip.SendResult]:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            first = await imip.send_pending(conn, test_settings)
            again = await imip.send_pending(conn, test_settings)  # a re-run queues nothing
        async with send_worker(test_settings):

            async def delivered() -> bool | None:
                msgs = await asyncio.to_thread(
                    _inbox, test_settings, w.contact_address, w.contact_password
                )
                return True if len(msgs) >= first.queued else None

            await eventually_async(delivered, what="the invitation in the attendee's mailbox")
        return first, again

    first, again = asyncio.run(send_all())
    assert (first.queued, again.queued) == (1, 0)
    (msg,) = _inbox(test_settings, w.contact_address, w.contact_password)
    assert msg["Subject"] == f"Invitation: Site survey {w.tag}"
    assert msg["From"].addresses[0].addr_spec == w.rep_address
    method, text = _calendar_part(msg)
    assert method == "REQUEST" and "METHOD:REQUEST" in text
    (invited,) = parse_calendar(text)
    assert invited.organizer == w.rep_address
    assert [a.email for a in invited.attendees] == [w.contact_address]
    rows = _q(
        db_dsn,
        "SELECT sent_at IS NOT NULL, outbox_id IS NOT NULL FROM cal_itip WHERE event_id = %s",
        event_id,
    )
    assert rows == [(True, True)]

    # a forged answer (another sender declining for Ann), then Ann's own acceptance
    def answer(partstat: str) -> str:
        me = Attendee(w.contact_address, "Ann Lee", partstat=partstat)
        return to_ics([replace(invited, attendees=(me,))], method="REPLY")

    _mail_reply(test_settings, f"mallory@evil-{w.tag}.test", w.rep_address, answer("DECLINED"))
    _mail_reply(test_settings, w.contact_address, w.rep_address, answer("ACCEPTED"))

    async def read() -> None:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:

            async def accepted() -> bool | None:
                await imip.read_replies(conn, test_settings)
                cur = await conn.execute(
                    "SELECT partstat FROM cal_attendees WHERE event_id = %s", (event_id,)
                )
                return True if await cur.fetchall() == [("ACCEPTED",)] else None

            await eventually_async(accepted, what="the RSVP from the emailed reply")
            assert await imip.read_replies(conn, test_settings) == 0  # read once

    asyncio.run(read())
    replies = _q(
        db_dsn,
        "SELECT count(*) FROM cal_itip WHERE event_id = %s AND method = 'REPLY' AND direction = 'in'",
        event_id,
    )
    assert replies == [(1,)]  # Ann's; the forged one changed nothing

    # the meeting goes: the sync removes it from the server and a CANCEL is mailed
    assert sync(w.rep_id).pushed >= 1  # the meeting (and the account's visit cadence)
    _q(db_dsn, "DELETE FROM activities WHERE id = %s", activity_id)
    assert sync(w.rep_id).deleted_remote == 1

    async def cancel() -> int:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            got = await imip.send_pending(conn, test_settings)
        async with send_worker(test_settings):

            async def delivered() -> bool | None:
                msgs = await asyncio.to_thread(
                    _inbox, test_settings, w.contact_address, w.contact_password
                )
                return True if len(msgs) >= 2 else None

            await eventually_async(delivered, what="the cancellation in the attendee's mailbox")
        return got.queued

    assert asyncio.run(cancel()) == 1
    msgs = _inbox(test_settings, w.contact_address, w.contact_password)
    assert len(msgs) == 2
    method, text = _calendar_part(msgs[1])
    assert method == "CANCEL" and "STATUS:CANCELLED" in text
    assert parse_calendar(text)[0].uid == invited.uid


def test_an_organizer_without_a_mailbox_keeps_the_invitation_with_the_reason(
    db_dsn: str, test_settings: Settings, make_user: Callable[..., int]
) -> None:
    user = make_user()

    async def go() -> imip.SendResult:
        async with await AsyncConnection.connect(db_dsn) as conn:
            p = await load_principal(conn, user)
            assert p is not None
            await service.create_event(
                conn,
                p,
                "acme",
                service.EventInput(
                    subject="No mailbox",
                    start=T0,
                    end=T0 + timedelta(hours=1),
                    attendees=(Attendee("someone@example.com"),),
                ),
            )
            await conn.commit()
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            return await imip.send_pending(conn, test_settings)

    got = asyncio.run(go())
    assert got.failed >= 1
    rows = _q(
        db_dsn,
        "SELECT sent_at, send_error FROM cal_itip WHERE owner_id = %s AND direction = 'out'",
        user,
    )
    assert len(rows) == 1 and rows[0][0] is None and "mailbox" in rows[0][1]


def test_a_reminder_is_mailed_once_to_a_user_with_a_mailbox(
    db_dsn: str, test_settings: Settings, people: People
) -> None:
    w = asyncio.run(make_world(db_dsn, test_settings, people))
    now = datetime.now(UTC).replace(microsecond=0)

    async def scenario() -> list[int]:
        async with await AsyncConnection.connect(db_dsn) as conn:
            cur = await conn.execute(
                "INSERT INTO activities (type, subject, start_at, end_at, owner_id)"
                " VALUES ('meeting', %s, %s, %s, %s) RETURNING id",
                (
                    f"Walk {w.tag}",
                    now + timedelta(minutes=5),
                    now + timedelta(minutes=65),
                    w.rep_id,
                ),
            )
            row = await cur.fetchone()
            assert row is not None
            await conn.execute(
                "INSERT INTO cal_reminders (user_id, activity_id, offset_min) VALUES (%s, %s, 10)",
                (w.rep_id, row[0]),
            )
            sent = [await reminders.fire_due(conn, now, test_settings) for _ in range(2)]
            await conn.commit()
            async with send_worker(test_settings):

                async def delivered() -> bool | None:
                    msgs = await asyncio.to_thread(
                        _inbox, test_settings, w.rep_address, w.rep_password
                    )
                    return True if msgs else None

                await eventually_async(delivered, what="the reminder in the rep's mailbox")
        return sent

    assert asyncio.run(scenario()) == [1, 0]
    (msg,) = _inbox(test_settings, w.rep_address, w.rep_password)
    assert msg["Subject"] == f"Reminder: Meeting: Walk {w.tag}"
    queued = _q(
        db_dsn,
        "SELECT count(*) FROM engage_outbox WHERE to_address = %s AND idempotency_key LIKE %s",
        w.rep_address,
        "calendar.reminder:%",
    )
    assert queued == [(1,)]
