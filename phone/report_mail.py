"""The signed service report e-mailed to the customer, through engage's outbox.

Called in the signing transaction (`ReportHooks.report_signed`), so the e-mail is queued
exactly when the signature commits, once (the outbox's idempotency key is the report's).
The recipient is the address the customer gave at signing, else a contact of the account
named like the signer, else the account's primary contact. Without an address or a
sender mailbox the signing still succeeds and the report says why nothing was sent
(`email_state`); engage's own consent and bounce rules apply (a refusal is recorded).
"""

from __future__ import annotations

import asyncio
import html
from typing import Any

from psycopg import AsyncConnection

from engage.render import Attachment
from engage.send import enqueue_email, send_config
from kernel.errors import ApiError
from kernel.settings import Settings
from phone import attachments
from phone.verify_routes import verify_path

SUBJECT = "Your service report: {title}"


async def _recipient(
    conn: AsyncConnection[Any], given: str | None, account_id: int, signer: str
) -> tuple[str | None, int | None]:
    """(address, contact id) of whom the report goes to."""
    if given:
        cur = await conn.execute(
            "SELECT c.id FROM contacts c JOIN account_contacts ac ON ac.contact_id = c.id"
            " WHERE ac.account_id = %s AND c.email_normalized = lower(btrim(%s)) LIMIT 1",
            (account_id, given),
        )
        row = await cur.fetchone()
        return given, int(row[0]) if row else None
    cur = await conn.execute(
        """
        SELECT c.id, c.email FROM contacts c JOIN account_contacts ac ON ac.contact_id = c.id
        WHERE ac.account_id = %s AND c.email IS NOT NULL AND c.email <> ''
        ORDER BY lower(btrim(concat_ws(' ', c.first_name, c.last_name))) = lower(btrim(%s))
                 DESC, ac.role = 'primary' DESC, c.id
        LIMIT 1
        """,
        (account_id, signer),
    )
    row = await cur.fetchone()
    if row is None:
        return None, None
    return str(row[1]), int(row[0])


async def _sender(conn: AsyncConnection[Any], rep_id: int | None) -> int | None:
    """The rep's own mailbox, else the team's first one."""
    cur = await conn.execute(
        "SELECT id FROM engage_mailboxes WHERE (owner_user_id = %s AND kind = 'user')"
        " OR kind = 'team' ORDER BY (owner_user_id = %s AND kind = 'user') DESC NULLS LAST, id"
        " LIMIT 1",
        (rep_id, rep_id),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else None


class EngageReportMailer:
    """`phone.reports.ReportHooks` over engage: queue the PDF to the customer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def report_signed(self, conn: AsyncConnection[Any], report_id: int) -> None:
        cur = await conn.execute(
            "SELECT r.account_id, r.rep_id, r.signer_name, r.customer_email, r.sha256,"
            " w.title, a.name, att.sha256 FROM phone_reports r"
            " JOIN work_orders w ON w.id = r.work_order_id JOIN accounts a ON a.id = r.account_id"
            " JOIN phone_attachments att ON att.id = r.attachment_id WHERE r.id = %s",
            (report_id,),
        )
        row = await cur.fetchone()
        if row is None:
            return
        account_id, rep_id, signer, given, sha, title, account, blob = row
        to, contact_id = await _recipient(conn, given, int(account_id), str(signer))
        state: str
        outbox_id: int | None = None
        mailbox = await _sender(conn, rep_id)
        if to is None:
            state = "no_address"
        elif mailbox is None:
            state = "no_mailbox"
        else:
            store = attachments.store_for(self.settings)
            pdf = await asyncio.to_thread(store.get, str(blob))
            config = send_config(self.settings)
            link = f"{config.base_url}{verify_path(str(sha))}"
            body = (
                f"<p>Dear {html.escape(str(signer))},</p>"
                f"<p>attached is the service report of <b>{html.escape(str(title))}</b> at "
                f"{html.escape(str(account))}, as you signed it.</p>"
                "<p>Its fingerprint (SHA-256) is anchored on a public blockchain: anyone can "
                f'check that the attached file is the one signed at <a href="{link}">{link}</a>'
                " (your browser computes the fingerprint; the file is not uploaded).</p>"
                f"<p><small>SHA-256: {sha}</small></p>"
            )
            try:
                async with conn.transaction():  # a refusal must not undo the signature
                    outbox_id = await enqueue_email(
                        conn,
                        idempotency_key=f"phone-service-report:{report_id}",
                        config=config,
                        sender_mailbox_id=mailbox,
                        to=to,
                        contact_id=contact_id,
                        subject=SUBJECT.format(title=str(title))[:200],
                        html=body,
                        attachments=(
                            [Attachment(f"service-report-{report_id}.pdf", "application/pdf", pdf)]
                            if pdf
                            else []
                        ),
                        purpose="service",
                    )
                cur = await conn.execute(
                    "SELECT state, reason FROM engage_outbox WHERE id = %s", (outbox_id,)
                )
                sent = await cur.fetchone()
                state = f"refused: {sent[1]}"[:300] if sent and sent[0] == "refused" else "queued"
            except ApiError as exc:
                state = f"refused: {exc.message}"[:300]
        await conn.execute(
            "UPDATE phone_reports SET email_state = %s, email_outbox_id = %s WHERE id = %s",
            (state, outbox_id, report_id),
        )
