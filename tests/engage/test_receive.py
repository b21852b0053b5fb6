"""Receiving: a reply threads onto the timeline, a bounce marks the address, bad mail is
kept as a dead letter, an auto-reply is recognised -- against the embedded servers."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from engage import consent, imap_sync, send
from engage.errors import ConsentRefused
from kernel.settings import Settings
from tests.engage.conftest import MailWorld, send_worker
from tests.eventually import eventually_async


async def _send_and_wait(
    dsn: str, settings: Settings, w: MailWorld, key: str, **kw: Any
) -> dict[str, Any]:
    async with await AsyncConnection.connect(dsn) as conn:
        oid = await send.enqueue_email(
            conn,
            idempotency_key=key,
            config=send.send_config(settings),
            sender_mailbox_id=w.mailbox_id,
            **kw,
        )
        await conn.commit()
        async with send_worker(settings):

            async def done() -> dict[str, Any] | None:
                st = await send.outbox_state(conn, oid)
                return st if st is not None and st["state"] not in ("queued", "sending") else None

            return await eventually_async(done, what="the send finished")


async def _sync(dsn: str, settings: Settings, mailbox_id: int) -> imap_sync.SyncResult:
    async with AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False) as pool:
        return await imap_sync.sync_mailbox(pool, settings, mailbox_id)


def _smtp(settings: Settings, msg: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", settings.smtp_port) as s:
        s.send_message(msg)


async def _rows(dsn: str, query: str, params: Any) -> list[dict[str, Any]]:
    async with await AsyncConnection.connect(dsn) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query, params)
        return await cur.fetchall()


def test_the_contacts_reply_lands_threaded_on_the_timeline(
    db_dsn: str, test_settings: Settings, mail_world: MailWorld
) -> None:
    w = mail_world

    async def scenario() -> None:
        st = await _send_and_wait(
            db_dsn,
            test_settings,
            w,
            f"q:{w.tag}",
            contact_id=w.contact_id,
            subject="Your quote",
            html="<p>Hi {{contact.first_name}}, the quote is attached.</p>",
        )
        assert st["state"] == "sent"
        # the contact answers from their own mail client, by SMTP
        reply = EmailMessage()
        reply["From"] = f"Ann Lee <{w.contact_address}>"
        reply["To"] = w.rep_address
        reply["Subject"] = "RE: Your quote"
        reply["Message-ID"] = make_msgid(domain="cust.test")
        reply["In-Reply-To"] = st["message_id"]
        reply["References"] = st["message_id"]
        reply.set_content(
            "Looks good, please go ahead.\n\n-- \nAnn Lee\nBright Co\n\n"
            "On Mon, 7 Dec 2026 at 10:00, Rep One wrote:\n> Hi Ann, the quote is attached.\n"
        )
        _smtp(test_settings, reply)
        res = await _sync(db_dsn, test_settings, w.mailbox_id)
        assert res.stored == 1
        msgs = await _rows(
            db_dsn,
            "SELECT m.conversation_id, m.direction, m.body_text, m.activity_id FROM engage_messages m"
            " WHERE m.contact_id = %s ORDER BY m.id",
            (w.contact_id,),
        )
        assert [m["direction"] for m in msgs] == ["out", "in"]
        assert msgs[0]["conversation_id"] == msgs[1]["conversation_id"]  # threaded
        assert msgs[1]["body_text"] == "Looks good, please go ahead."
        acts = await _rows(
            db_dsn,
            "SELECT type, status, subject, body, account_id FROM activities"
            " WHERE contact_id = %s AND source = 'engage' ORDER BY id",
            (w.contact_id,),
        )
        assert [a["type"] for a in acts] == ["email", "email"]
        assert acts[1]["subject"] == "RE: Your quote" and acts[1]["account_id"] == w.account_id
        assert "please go ahead" in acts[1]["body"] and "> Hi Ann" not in acts[1]["body"]
        # an empty incremental sync takes in nothing more; a re-sync from scratch adds no copy
        assert (await _sync(db_dsn, test_settings, w.mailbox_id)).fetched == 0
        async with await AsyncConnection.connect(db_dsn) as conn:
            await conn.execute(
                "UPDATE engage_mailboxes SET last_uid = 0 WHERE id = %s", (w.mailbox_id,)
            )
            await conn.commit()
        again = await _sync(db_dsn, test_settings, w.mailbox_id)
        assert again.fetched >= 1 and again.stored == 0

    asyncio.run(scenario())


def test_a_bounce_marks_the_address_and_the_next_send_is_refused(
    db_dsn: str, test_settings: Settings, mail_world: MailWorld
) -> None:
    w = mail_world
    ghost = f"nobody-{w.tag}@cust-{w.tag}.test"

    async def scenario() -> None:
        st = await _send_and_wait(
            db_dsn, test_settings, w, f"b:{w.tag}", to=ghost, subject="Hello", html="<p>Hi</p>"
        )
        assert st["state"] == "sent"  # the relay accepted it; the mailbox does not exist
        await _sync(db_dsn, test_settings, w.mailbox_id)
        rows = await _rows(
            db_dsn, "SELECT status, reason FROM engage_address_status WHERE address = %s", (ghost,)
        )
        assert rows and rows[0]["status"] == "bounced" and "5.1.1" in rows[0]["reason"]
        out = await _rows(
            db_dsn, "SELECT reason FROM engage_outbox WHERE message_id = %s", (st["message_id"],)
        )
        assert "bounced 5.1.1" in out[0]["reason"]
        async with await AsyncConnection.connect(db_dsn) as conn:
            reason = await consent.refusal(
                conn, contact_id=None, channel="email", purpose="transactional", address=ghost
            )
            assert reason is not None and "bounced" in reason
            oid = await send.enqueue_email(
                conn,
                idempotency_key=f"b2:{w.tag}",
                config=send.send_config(test_settings),
                sender_mailbox_id=w.mailbox_id,
                to=ghost,
                subject="Again",
                html="<p>x</p>",
            )
            st2 = await send.outbox_state(conn, oid)
            assert st2 is not None and st2["state"] == "refused" and "bounced" in st2["reason"]

    asyncio.run(scenario())


def test_malformed_mail_is_a_dead_letter_and_auto_replies_are_recognised(
    db_dsn: str, test_settings: Settings, mail_world: MailWorld
) -> None:
    w = mail_world

    async def scenario() -> None:
        with smtplib.SMTP("127.0.0.1", test_settings.smtp_port) as s:
            # no From header at all
            s.sendmail(w.contact_address, [w.rep_address], b"Subject: broken\r\n\r\nno sender\r\n")
        ooo = EmailMessage()
        ooo["From"] = w.contact_address
        ooo["To"] = w.rep_address
        ooo["Subject"] = "Out of office: back on Monday"
        ooo["Auto-Submitted"] = "auto-replied"
        ooo["Message-ID"] = make_msgid(domain="cust.test")
        ooo.set_content("I am away.")
        _smtp(test_settings, ooo)
        res = await _sync(db_dsn, test_settings, w.mailbox_id)
        assert res.fetched == 2 and res.dead == 1
        dead = await _rows(
            db_dsn,
            "SELECT reason, raw FROM engage_dead_letters WHERE mailbox_id = %s",
            (w.mailbox_id,),
        )
        assert dead[0]["reason"] == "no From address" and b"no sender" in bytes(dead[0]["raw"])
        msgs = await _rows(
            db_dsn,
            "SELECT kind, activity_id FROM engage_messages WHERE mailbox_id = %s",
            (w.mailbox_id,),
        )
        assert msgs == [{"kind": "auto_reply", "activity_id": None}]

    asyncio.run(scenario())


def test_consent_refusal_is_an_error_naming_the_reason() -> None:
    err = ConsentRefused("contact 1 withdrew consent")
    assert err.status == 422 and "withdrew" in err.message
