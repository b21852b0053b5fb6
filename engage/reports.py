"""The signed service report e-mailed to the customer when the rep's phone signs it.

`ServiceReportMailer` is what the phone package calls in its signing transaction
(`phone.reports.ReportHooks.report_signed`; the composition root plugs it in): it queues
one e-mail (idempotency key `service-report:<id>`, so a repeated signing call never sends
twice) from the rep's mailbox (else the first team mailbox) to the work order's account's
primary contact, with the PDF attached and purpose `service`. Consent is the outbox's as
for any e-mail: a refused contact gets a `refused` row with the reason. The PDF's bytes
come through `read_blob` (the phone's blob store, by SHA-256), so engage knows no storage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from engage import send
from engage.render import Attachment

log = logging.getLogger(__name__)

_REPORT = """
SELECT r.id, r.work_order_id, r.rep_id, a.sha256, a.filename, w.title,
       (SELECT ac.contact_id FROM account_contacts ac WHERE ac.account_id = r.account_id
        ORDER BY (ac.role = 'primary') DESC, ac.contact_id LIMIT 1) AS contact_id
FROM phone_reports r
JOIN phone_attachments a ON a.id = r.attachment_id
JOIN work_orders w ON w.id = r.work_order_id
WHERE r.id = %s
"""


class ServiceReportMailer:
    def __init__(self, config: send.SendConfig, read_blob: Callable[[str], bytes | None]) -> None:
        self.config = config
        self.read_blob = read_blob

    async def report_signed(self, conn: AsyncConnection[Any], report_id: int) -> None:
        """Queue the report's e-mail in the caller's (the signing) transaction."""
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_REPORT, (report_id,))
        r = await cur.fetchone()
        if r is None or r["contact_id"] is None:
            log.info("engage: service report %s has no contact to e-mail", report_id)
            return
        box = await cur.execute(
            "SELECT id FROM engage_mailboxes WHERE (owner_user_id = %s AND kind = 'user')"
            " OR kind = 'team' ORDER BY (owner_user_id = %s) DESC NULLS LAST, id LIMIT 1",
            (r["rep_id"], r["rep_id"]),
        )
        mailbox = await box.fetchone()
        if mailbox is None:
            log.warning("engage: no mailbox to e-mail service report %s from", report_id)
            return
        pdf = await asyncio.to_thread(self.read_blob, str(r["sha256"]))
        if pdf is None:
            log.warning("engage: service report %s: its PDF is not in the store", report_id)
            return
        await send.enqueue_email(
            conn,
            idempotency_key=f"service-report:{report_id}",
            config=self.config,
            sender_mailbox_id=int(mailbox["id"]),
            contact_id=int(r["contact_id"]),
            subject=f"Your service report: {r['title']}"[:200],
            html="<p>Hello {{contact.first_name}},</p><p>attached is the signed report of"
            " today's visit ({{work_order.title}}). Thank you.</p><p>{{sender.name}}</p>",
            text="Hello {{contact.first_name}},\n\nattached is the signed report of today's"
            " visit ({{work_order.title}}). Thank you.\n\n{{sender.name}}\n",
            merge={"work_order": {"id": r["work_order_id"], "title": r["title"]}},
            attachments=[Attachment(str(r["filename"]), "application/pdf", pdf)],
            purpose="service",
        )
