"""Unknown senders become leads by the mailbox's rule: one lead per address, within the
rule's daily limit, never from system addresses or auto-replies."""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from email.message import EmailMessage
from email.utils import make_msgid

import aiohttp
import psycopg
from psycopg_pool import AsyncConnectionPool

from engage import imap_sync
from engage.leads import LeadRule, eligible
from engage.timeline import Link
from kernel.settings import Settings
from tests.engage.conftest import MailWorld
from tests.world import People


def test_the_rule_skips_known_system_and_colleague_senders() -> None:
    rule = LeadRule(1, "sales@acme.test", None, 10)
    assert eligible(rule, "jo@newco.test", Link(), auto_reply=False)
    assert not eligible(rule, "jo@newco.test", Link(), auto_reply=True)
    assert not eligible(rule, "jo@newco.test", Link(account_id=3), auto_reply=False)
    assert not eligible(rule, "noreply@newco.test", Link(), auto_reply=False)
    assert not eligible(rule, "MAILER-DAEMON@newco.test", Link(), auto_reply=False)
    assert not eligible(rule, "boss@acme.test", Link(), auto_reply=False)


def _mail(settings: Settings, sender: str, to: str, subject: str, auto: bool = False) -> None:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="prospect.test")
    if auto:
        msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("Hello, we would like a quote for pump maintenance.")
    with smtplib.SMTP("127.0.0.1", settings.smtp_port) as s:
        s.send_message(msg)


def test_unknown_senders_become_leads_once_each_within_the_daily_limit(
    db_dsn: str, test_settings: Settings, people: People, app_url: str, mail_world: MailWorld
) -> None:
    w = mail_world
    tag = uuid.uuid4().hex[:8]

    async def set_rule() -> dict[str, object]:
        async with aiohttp.ClientSession() as http:
            r = await http.put(
                f"{app_url}/api/v1/engage/mailboxes/{w.mailbox_id}/lead-rule",
                json={"leads_from_unknown": True, "leads_per_day": 2},
                headers=people.headers("admin"),
            )
            assert r.status == 200, await r.text()
            bad = await http.put(
                f"{app_url}/api/v1/engage/mailboxes/{w.mailbox_id}/lead-rule",
                json={"leads_from_unknown": True, "leads_per_day": -1},
                headers=people.headers("admin"),
            )
            assert bad.status == 422
            return dict(await r.json())

    assert asyncio.run(set_rule())["leads_from_unknown"] is True
    a, b, c = (f"{n}-{tag}@prospect-{tag}.test" for n in ("ana", "ben", "cy"))
    _mail(test_settings, f"Ana Prospect <{a}>", w.rep_address, "Quote please")
    _mail(test_settings, a, w.rep_address, "Re: Quote please")
    _mail(test_settings, f"noreply@prospect-{tag}.test", w.rep_address, "Newsletter")
    _mail(test_settings, f"dd-{tag}@ooo-{tag}.test", w.rep_address, "Out of office", auto=True)
    _mail(test_settings, b, w.rep_address, "Pricing")
    _mail(test_settings, c, w.rep_address, "Pricing too")  # over the limit of 2 a day

    async def sync() -> None:
        async with AsyncConnectionPool(db_dsn, min_size=1, max_size=2, open=False) as pool:
            await imap_sync.sync_mailbox(pool, test_settings, w.mailbox_id)

    asyncio.run(sync())
    with psycopg.connect(db_dsn) as conn:
        leads = conn.execute(
            "SELECT lower(email), first_name, last_name, company, owner_id FROM leads"
            " WHERE email ILIKE %s ORDER BY email",
            (f"%{tag}%",),
        ).fetchall()
        linked = conn.execute(
            "SELECT from_addr, count(*) FILTER (WHERE c.lead_id IS NOT NULL) FROM engage_messages m"
            " JOIN engage_conversations c ON c.id = m.conversation_id"
            " WHERE m.from_addr LIKE %s GROUP BY from_addr ORDER BY from_addr",
            (f"%{tag}%",),
        ).fetchall()
    assert leads == [
        (a, "Ana", "Prospect", f"prospect-{tag}.test", w.rep_id),
        (b, None, f"ben-{tag}", f"prospect-{tag}.test", w.rep_id),
    ]
    # both of Ana's messages are on her lead's conversation; Cy's message is kept, unlinked
    assert dict(linked) == {
        a: 2,
        b: 1,
        c: 0,
        f"noreply@prospect-{tag}.test": 0,
        f"dd-{tag}@ooo-{tag}.test": 0,
    }
