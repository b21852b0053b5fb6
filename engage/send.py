"""Sending e-mail: the outbox and the send job.

`enqueue_email` (the service other packages call) writes one `engage_outbox` row in the
caller's transaction: the sender's mailbox, the recipient, the rendered MIME message with
its Message-ID (decided here, before any attempt) and a signed unsubscribe link, and
enqueues the mailbox's `engage.send` job. The job (`send_batch`) claims due rows of one
mailbox (`FOR UPDATE SKIP LOCKED`, state `sending` with a lease, committed before the
first byte goes out), checks consent again, sends them over a few SMTP connections at once
within the mailbox's rate limit (messages per minute), and marks them sent (or failed /
refused with the reason) once the server accepted them: recorder tasks (one per share of
the recipients) commit what was accepted while their previous commit ran, so the CRM and
conversation bookkeeping overlaps the SMTP round trips instead of adding to them.

The guarantee: a message is never sent twice to the embedded relay, however the worker
dies. A row left `sending` by a dead worker is sent again after its lease with the same
bytes and Message-ID, and the relay acknowledges without delivering a (Message-ID,
recipient) it already delivered. Against an external server (SMTP_URL) the same re-send
happens only for rows whose worker died between the server's acceptance and the commit of
`sent` (one SMTP round trip); such a duplicate carries the same Message-ID, which receiving
mail clients and our own IMAP sync collapse. Nothing is ever lost: a row is `sent` only
after the server accepted it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from engage import consent, engagement, links, render, timeline
from engage.render import Attachment
from engage.smtp import SmtpRefused, SmtpTarget, open_smtp, send_raw
from kernel.errors import NotFound, Unprocessable
from kernel.jobs import JobContext, enqueue
from kernel.settings import Settings

log = logging.getLogger(__name__)

SEND_TASK = "engage.send"
BATCH = 200
LEASE_S = 30.0
JOB_BUDGET_S = 120.0  # a job sends for at most this long, then queues its successor
SEND_CONNECTIONS = 4  # SMTP connections a batch is spread over (the server works in parallel)
MARK_BATCH = 100  # at most this many sent rows per commit
RECORDERS = 3  # concurrent recorders (database connections) marking accepted rows sent


@dataclass(frozen=True, slots=True)
class SendConfig:
    """Where links point and how messages are signed (from the deployment's settings)."""

    base_url: str
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_key_pem: bytes | None = None


def send_config(settings: Settings) -> SendConfig:
    """Links point at the deployment's HTTP address; FIELDMESH_DKIM (selector:domain:key
    file) signs every message when set."""
    base_url = f"http://{settings.http_host}:{settings.http_port}"
    if settings.dkim is None:
        return SendConfig(base_url=base_url)
    selector, domain, key_file = settings.dkim.split(":", 2)
    return SendConfig(
        base_url=base_url,
        dkim_selector=selector,
        dkim_domain=domain,
        dkim_key_pem=Path(key_file).read_bytes(),
    )


async def _mailbox(
    conn: AsyncConnection[Any], sender_user_id: int | None, sender_mailbox_id: int | None
) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    if sender_mailbox_id is not None:
        await cur.execute("SELECT * FROM engage_mailboxes WHERE id = %s", (sender_mailbox_id,))
    elif sender_user_id is not None:
        await cur.execute(
            "SELECT * FROM engage_mailboxes WHERE owner_user_id = %s AND kind = 'user'"
            " ORDER BY id LIMIT 1",
            (sender_user_id,),
        )
    else:
        raise Unprocessable(
            "a sender is needed: sender_user_id or sender_mailbox_id", field="sender"
        )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("the sender has no connected mailbox", field="sender")
    return row


async def enqueue_email(
    conn: AsyncConnection[Any],
    *,
    idempotency_key: str,
    config: SendConfig,
    sender_user_id: int | None = None,
    sender_mailbox_id: int | None = None,
    to: str | None = None,
    contact_id: int | None = None,
    template: str | None = None,
    subject: str | None = None,
    html: str | None = None,
    text: str | None = None,
    merge: Mapping[str, Any] | None = None,
    attachments: Sequence[Attachment] = (),
    purpose: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    conversation_id: int | None = None,
    send_at: datetime | None = None,
    at_learned_hour: bool | None = None,
) -> int:
    """Queue one e-mail in the caller's transaction; the outbox row's id.

    - sender: `sender_user_id` (that user's mailbox) or `sender_mailbox_id` (a team's).
    - recipient: `contact_id` (its e-mail, and its CRM record for merge fields and
      consent) and/or `to` (an address; given alone, no contact is linked).
    - content: `template` (a template's name) or `subject` + `html` (+ `text`); merge
      fields `{{contact.first_name}}`, `{{account.name}}`, `{{sender.name}}`,
      `{{unsubscribe_url}}`, plus whatever `merge` adds (values are escaped in HTML).
    - `purpose`: transactional (default), service or marketing (a template's own);
      decides which consent applies.
    - `in_reply_to` / `references`: Message-IDs this replies to (threading).
    - `idempotency_key`: the same key returns the same row and never queues a second
      message (a retried request, a re-run automation step).
    - when: `send_at` (not before then), else the contact's learned hour
      (`engage.engagement`) when `at_learned_hour` says so; by default (None) marketing
      e-mails wait for it and every other purpose goes at once.

    A contact without consent (or a bounced address) gets a row in state `refused` with
    the reason instead of a message; callers that want an error use `consent.refusal`
    first. The send itself happens in the `engage.send` job.
    """
    cur = await conn.execute(
        "SELECT id FROM engage_outbox WHERE idempotency_key = %s", (idempotency_key,)
    )
    existing = await cur.fetchone()
    if existing is not None:
        return int(existing[0])
    box = await _mailbox(conn, sender_user_id, sender_mailbox_id)
    values: dict[str, Any] = {}
    to_name: str | None = None
    if contact_id is not None:
        ctx = await timeline.contact_merge_values(conn, contact_id)
        values.update(ctx)
        to = to or ctx["contact"].get("email")
        to_name = ctx["contact"].get("name")
    if not to or "@" not in to or any(c in to for c in "\r\n<>,; "):
        raise Unprocessable("the recipient has no valid e-mail address", field="to")
    values["sender"] = {"name": box["display_name"] or box["address"], "email": box["address"]}
    tmpl_id: int | None = None
    if template is not None:
        tc = conn.cursor(row_factory=dict_row)
        await tc.execute("SELECT * FROM engage_templates WHERE name = %s", (template,))
        t = await tc.fetchone()
        if t is None:
            raise NotFound(f"template {template!r} not found", field="template")
        tmpl_id, subject, html, text = t["id"], t["subject"], t["html"], t["text_body"]
        purpose = purpose or t["purpose"]
    if subject is None or html is None:
        raise Unprocessable("a template, or a subject and html, is needed", field="template")
    purpose = purpose or "transactional"
    track_id = secrets.token_urlsafe(12)
    key = await links.link_key(conn)
    unsub = links.unsubscribe_url(config.base_url, key, track_id)
    values["unsubscribe_url"] = unsub
    if merge:
        values.update(merge)
    domain = box["address"].split("@", 1)[1]
    message_id = render.make_message_id(domain)
    try:
        body = render.render(subject, html, text, values)
        body = render.Rendered(
            body.subject,
            links.rewrite_links(body.html, config.base_url, key, track_id),
            body.text,
            body.missing,
        )
        env = render.Envelope(
            from_addr=box["address"],
            from_name=box["display_name"],
            to_addr=to.strip(),
            to_name=to_name,
            message_id=message_id,
            in_reply_to=in_reply_to,
            references=tuple(references),
            unsubscribe_url=unsub,
        )
        raw = render.build_message(env, body, attachments).as_bytes()
    except render.RenderError as exc:
        raise Unprocessable(str(exc), field="html") from exc
    if config.dkim_key_pem and config.dkim_selector and config.dkim_domain:
        raw = render.dkim_sign(
            raw,
            selector=config.dkim_selector,
            domain=config.dkim_domain,
            private_key_pem=config.dkim_key_pem,
        )
    reason = await consent.refusal(
        conn, contact_id=contact_id, channel="email", purpose=purpose, address=to
    )
    if at_learned_hour is None:
        at_learned_hour = purpose == "marketing"
    not_before = send_at
    if not_before is None and at_learned_hour and contact_id is not None:
        hour = (await engagement.preferred(conn, contact_id)).hour_utc
        if hour is not None:
            not_before = engagement.next_at_hour(datetime.now(UTC), hour)
    cur = await conn.execute(
        "INSERT INTO engage_outbox (idempotency_key, mailbox_id, sender_address, to_address,"
        " contact_id, template_id, conversation_id, purpose, subject, message_id, track_id,"
        " raw, state, reason, not_before) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s, %s, %s, %s) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        (
            idempotency_key,
            box["id"],
            box["address"],
            to.strip().lower(),
            contact_id,
            tmpl_id,
            conversation_id,
            purpose,
            body.subject,
            message_id,
            track_id,
            raw,
            "refused" if reason else "queued",
            reason,
            not_before,
        ),
    )
    row = await cur.fetchone()
    if row is None:  # a concurrent caller with the same key won
        cur = await conn.execute(
            "SELECT id FROM engage_outbox WHERE idempotency_key = %s", (idempotency_key,)
        )
        got = await cur.fetchone()
        assert got is not None
        return int(got[0])
    if reason is None:
        delay_s = (not_before - datetime.now(UTC)).total_seconds() if not_before else 0.0
        if delay_s > 1.0:  # its own job at that time (one per mailbox and minute)
            await enqueue(
                conn,
                SEND_TASK,
                {"mailbox_id": box["id"]},
                delay_s=delay_s,
                dedupe_key=f"{SEND_TASK}:{box['id']}:at:{not_before:%Y%m%d%H%M}",
            )
        else:
            await enqueue(
                conn, SEND_TASK, {"mailbox_id": box["id"]}, dedupe_key=f"{SEND_TASK}:{box['id']}"
            )
    return int(row[0])


async def outbox_state(conn: AsyncConnection[Any], outbox_id: int) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT id, state, reason, message_id, to_address, sender_address, subject, attempts,"
        " sent_at, opened_at, clicked_at, contact_id FROM engage_outbox WHERE id = %s",
        (outbox_id,),
    )
    return await cur.fetchone()


# --------------------------------------------------------------------------- the job

_CLAIM = """
UPDATE engage_outbox SET state = 'sending', attempts = attempts + 1,
       locked_until = now() + make_interval(secs => %s)
WHERE id IN (
    SELECT id FROM engage_outbox
    WHERE mailbox_id = %s
      AND (state = 'queued' OR (state = 'sending' AND locked_until < now()))
      AND (not_before IS NULL OR not_before <= now())
    ORDER BY id
    FOR UPDATE SKIP LOCKED
    LIMIT %s)
RETURNING id, sender_address, to_address, contact_id, purpose, raw, message_id, subject,
          conversation_id, attempts
"""


async def _allowance(conn: AsyncConnection[Any], mailbox_id: int) -> tuple[int, float]:
    """How many more may go in this minute, and when the oldest of the last minute ages out."""
    cur = await conn.execute(
        "SELECT m.rate_per_min, count(o.id),"
        " extract(epoch FROM (min(o.sent_at) + interval '60 seconds' - now()))"
        " FROM engage_mailboxes m LEFT JOIN engage_outbox o ON o.mailbox_id = m.id"
        " AND o.sent_at > now() - interval '60 seconds' WHERE m.id = %s GROUP BY m.rate_per_min",
        (mailbox_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return 0, 0.0
    return int(row[0]) - int(row[1]), float(row[2] or 0.0)


async def send_batch(ctx: JobContext, args: dict[str, Any]) -> None:
    """Drain one mailbox's outbox within its rate limit (the `engage.send` job)."""
    mailbox_id = int(args["mailbox_id"])
    assert ctx.settings is not None, "the jobs worker passes the deployment's settings"
    target = SmtpTarget.from_settings(ctx.settings)
    started = time.monotonic()
    while time.monotonic() - started < JOB_BUDGET_S:
        async with ctx.pool.connection() as conn:
            allowance, wait_s = await _allowance(conn, mailbox_id)
            if allowance <= 0:
                await enqueue(
                    conn,
                    SEND_TASK,
                    {"mailbox_id": mailbox_id},
                    delay_s=max(wait_s, 1.0),
                    dedupe_key=f"{SEND_TASK}:{mailbox_id}",
                )
                log.info(
                    "engage: mailbox %s at its rate limit; again in %.0f s", mailbox_id, wait_s
                )
                return
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_CLAIM, (LEASE_S, mailbox_id, min(allowance, BATCH)))
            rows = await cur.fetchall()
        if not rows:
            return
        await _send_rows(ctx, target, rows)
    async with ctx.pool.connection() as conn:
        await enqueue(
            conn, SEND_TASK, {"mailbox_id": mailbox_id}, dedupe_key=f"{SEND_TASK}:{mailbox_id}"
        )


async def _send_rows(ctx: JobContext, target: SmtpTarget, rows: list[dict[str, Any]]) -> None:
    """Send claimed rows over SEND_CONNECTIONS SMTP connections while a recorder commits
    the accepted ones (group commit: whatever was accepted while the last commit ran goes
    in the next), so the database work overlaps the SMTP round trips."""
    # consent again, right before sending: a withdrawal since queueing wins
    sendable: list[dict[str, Any]] = []
    async with ctx.pool.connection() as conn:
        reasons = await consent.refusals(
            conn, [(r["contact_id"], "email", r["purpose"], r["to_address"]) for r in rows]
        )
        refused = [(reason, r["id"]) for r, reason in zip(rows, reasons, strict=True) if reason]
        sendable = [r for r, reason in zip(rows, reasons, strict=True) if not reason]
        if refused:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "UPDATE engage_outbox SET state = 'refused', reason = %s, locked_until = NULL"
                    " WHERE id = %s AND state = 'sending'",
                    refused,
                )
    if not sendable:
        return
    todo = iter(sendable)
    queues: list[asyncio.Queue[dict[str, Any] | None]] = [asyncio.Queue() for _ in range(RECORDERS)]
    failed: list[tuple[int, str, str]] = []

    async def sender() -> None:
        async with open_smtp(target) as client:
            for r in todo:  # one shared iterator: each row goes out on one connection
                try:
                    await send_raw(client, r["sender_address"], r["to_address"], bytes(r["raw"]))
                except SmtpRefused as exc:  # the server refused this one message for good
                    failed.append((r["id"], r["to_address"], str(exc)[:500]))
                    continue
                # one person's rows always go to the same recorder: two recorders never
                # touch the same conversation (no lock waits, no duplicate conversations)
                queues[hash(r["contact_id"] or r["to_address"]) % RECORDERS].put_nowait(r)

    recorders = [asyncio.create_task(_record(ctx, q)) for q in queues]
    renewer = asyncio.create_task(_renew_leases(ctx, [r["id"] for r in sendable]))
    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(min(SEND_CONNECTIONS, len(sendable))):
                tg.create_task(sender())
    except BaseExceptionGroup as eg:
        # the first cause (the SMTP server gone, ...) is what the job's retry reports
        raise eg.exceptions[0] from None
    finally:
        renewer.cancel()
        for q in queues:
            q.put_nowait(None)
        # every accepted message is marked sent before the job moves on
        await asyncio.gather(*recorders)
        if failed:
            async with ctx.pool.connection() as conn:
                for oid, addr, why in failed:
                    await conn.execute(
                        "UPDATE engage_outbox SET state = 'failed', reason = %s, locked_until = NULL"
                        " WHERE id = %s",
                        (why, oid),
                    )
                    await consent.mark_address(conn, addr, "bounced", f"refused at send: {why}")


async def _record(ctx: JobContext, accepted: asyncio.Queue[dict[str, Any] | None]) -> None:
    """Mark accepted rows sent, in as few commits as the senders allow, until None."""
    done = False
    while not done:
        batch: list[dict[str, Any]] = []
        item = await accepted.get()
        while True:
            if item is None:
                done = True
            else:
                batch.append(item)
            if accepted.empty() or len(batch) >= MARK_BATCH:
                break
            item = accepted.get_nowait()
        await _mark_sent(ctx, batch)


async def _renew_leases(ctx: JobContext, ids: list[int]) -> None:
    while True:
        await asyncio.sleep(LEASE_S / 3)
        async with ctx.pool.connection() as conn:
            await conn.execute(
                "UPDATE engage_outbox SET locked_until = now() + make_interval(secs => %s)"
                " WHERE id = ANY(%s) AND state = 'sending'",
                (LEASE_S, ids),
            )


async def _mark_sent(ctx: JobContext, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    async with ctx.pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE engage_outbox SET state = 'sent', sent_at = now(), locked_until = NULL,"
            " reason = NULL WHERE id = ANY(%s) AND state = 'sending'",
            ([r["id"] for r in rows],),
        )
        await timeline.log_outbound_emails(conn, rows)


async def wait_sent(conn: AsyncConnection[Any], outbox_id: int, timeout_s: float = 30.0) -> str:
    """Poll until the row leaves queued/sending (CLI and demo helper)."""
    deadline = time.monotonic() + timeout_s
    while True:
        st = await outbox_state(conn, outbox_id)
        if st is None or st["state"] not in ("queued", "sending") or time.monotonic() > deadline:
            return "missing" if st is None else str(st["state"])
        await asyncio.sleep(0.2)
