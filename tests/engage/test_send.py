"""Sending through the embedded relay into the contact's real IMAP mailbox."""

from __future__ import annotations

import asyncio
import email
from email.policy import default as default_policy

from imapclient import IMAPClient
from psycopg import AsyncConnection

from engage import send
from engage.render import Attachment
from kernel.settings import Settings
from tests.engage.conftest import MailWorld, send_worker
from tests.eventually import eventually_async

HTML = """<html><head><style>p.hi { color: #c00; font-weight: bold }</style></head>
<body><p class="hi">Hello {{contact.first_name}},</p>
<p>your service for {{account.name}} is booked. <a href="https://example.test/booking?id=7">Details</a></p>
<p>{{sender.name}}</p><p><a href="{{unsubscribe_url}}">Unsubscribe</a></p></body></html>"""


def inbox(settings: Settings, address: str, password: str) -> list[email.message.EmailMessage]:
    with IMAPClient("127.0.0.1", port=settings.imap_port, ssl=False) as c:
        c.login(address, password)
        c.select_folder("INBOX", readonly=True)
        uids = c.search(["ALL"])
        data = c.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
    return [email.message_from_bytes(data[u][b"BODY[]"], policy=default_policy) for u in uids]


async def make_template(dsn: str, name: str, purpose: str = "transactional") -> None:
    async with await AsyncConnection.connect(dsn) as conn:
        await conn.execute(
            "INSERT INTO engage_templates (name, purpose, subject, html) VALUES (%s, %s, %s, %s)",
            (name, purpose, "Your booking, {{contact.first_name}}", HTML),
        )
        await conn.commit()


def test_template_email_is_delivered_to_the_contacts_mailbox_with_merge_fields(
    db_dsn: str, test_settings: Settings, mail_world: MailWorld
) -> None:
    w = mail_world

    async def scenario() -> int:
        await make_template(db_dsn, f"booking-{w.tag}")
        async with await AsyncConnection.connect(db_dsn) as conn:
            oid = await send.enqueue_email(
                conn,
                idempotency_key=f"booking:{w.tag}",
                config=send.send_config(test_settings),
                sender_user_id=w.rep_id,
                contact_id=w.contact_id,
                template=f"booking-{w.tag}",
                attachments=[Attachment("report.pdf", "application/pdf", b"%PDF-1.4 test")],
            )
            again = await send.enqueue_email(
                conn,
                idempotency_key=f"booking:{w.tag}",
                config=send.send_config(test_settings),
                sender_user_id=w.rep_id,
                contact_id=w.contact_id,
                template=f"booking-{w.tag}",
            )
            assert again == oid  # the same idempotency key: the same message
            await conn.commit()
            async with send_worker(test_settings):

                async def sent() -> bool:
                    st = await send.outbox_state(conn, oid)
                    return st is not None and st["state"] == "sent"

                await eventually_async(sent, what="the outbox row sent")
        return oid

    asyncio.run(scenario())
    msgs = inbox(test_settings, w.contact_address, w.contact_password)
    assert len(msgs) == 1
    m = msgs[0]
    assert m["Subject"] == "Your booking, Ann"
    assert m["From"].addresses[0].addr_spec == w.rep_address
    html = m.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    text = m.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Hello Ann," in html and "Hello Ann," in text
    # merge values are escaped in HTML, plain in text; CSS is inlined
    assert f"Bright &amp; &lt;Co&gt; {w.tag}" in html and f"Bright & <Co> {w.tag}" in text
    assert 'class="hi" style="color:#c00; font-weight:bold"' in html and "<style" not in html
    # links go through the signed click redirect; the unsubscribe header is one-click
    assert "/e/c/" in html and "https%3A%2F%2Fexample.test%2Fbooking" in html
    assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/e/u/" in m["List-Unsubscribe"]
    assert [p.get_filename() for p in m.iter_attachments()] == ["report.pdf"]
