"""The signed service report reaches the customer's mailbox as a PDF attachment, once."""

from __future__ import annotations

import asyncio
import hashlib

from psycopg import AsyncConnection

from engage import send
from engage.reports import ServiceReportMailer
from kernel.settings import Settings
from phone.attachments import store_for
from tests.engage.conftest import MailWorld, send_worker
from tests.engage.test_send import inbox
from tests.eventually import eventually_async

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def test_a_signed_report_is_mailed_to_the_primary_contact_once(
    db_dsn: str, test_settings: Settings, mail_world: MailWorld
) -> None:
    w = mail_world
    sha = hashlib.sha256(PDF + w.tag.encode()).hexdigest()
    store = store_for(test_settings)
    store.put(sha, PDF + w.tag.encode())
    mailer = ServiceReportMailer(send.send_config(test_settings), store.get)

    async def scenario() -> None:
        async with await AsyncConnection.connect(db_dsn) as conn:
            # what the phone package has stored when the report is signed
            cur = await conn.execute(
                "INSERT INTO work_orders (account_id, title, status) VALUES (%s, 'Boiler check',"
                " 'done') RETURNING id",
                (w.account_id,),
            )
            wo = (await cur.fetchone() or [0])[0]
            cur = await conn.execute(
                "INSERT INTO phone_attachments (sha256, size_bytes, content_type, kind, filename,"
                " account_id, work_order_id, uploaded_by, client_key) VALUES (%s, %s,"
                " 'application/pdf', 'report', 'service-report.pdf', %s, %s, %s, %s) RETURNING id",
                (sha, len(PDF), w.account_id, wo, w.rep_id, f"r-{w.tag}"),
            )
            att = (await cur.fetchone() or [0])[0]
            cur = await conn.execute(
                "INSERT INTO phone_reports (work_order_id, account_id, rep_id, attachment_id,"
                " sha256, signer_name, status, signed_at) VALUES (%s, %s, %s, %s, %s, 'Ann Lee',"
                " 'signed', now()) RETURNING id",
                (wo, w.account_id, w.rep_id, att, sha),
            )
            report = (await cur.fetchone() or [0])[0]
            await mailer.report_signed(conn, report)
            await mailer.report_signed(conn, report)  # a repeated signing call: still one
            await conn.commit()
        async with send_worker(test_settings):

            async def arrived() -> bool:
                return any(
                    "Boiler check" in str(m["Subject"])
                    for m in inbox(test_settings, w.contact_address, w.contact_password)
                )

            await eventually_async(arrived, what="the report's e-mail in the contact's mailbox")

    asyncio.run(scenario())
    mails = [
        m
        for m in inbox(test_settings, w.contact_address, w.contact_password)
        if "Boiler check" in str(m["Subject"])
    ]
    assert len(mails) == 1
    parts = [p for p in mails[0].iter_attachments() if p.get_content_type() == "application/pdf"]
    assert [p.get_filename() for p in parts] == ["service-report.pdf"]
    assert parts[0].get_content() == PDF + w.tag.encode()
    body = mails[0].get_body(("plain",))
    assert body is not None and "Boiler check" in body.get_content()
