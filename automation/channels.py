"""Where e-mail and SMS steps go: one small interface, plugged by the composition root.

A `Channel` gets the step's connection inside the step's transaction and an idempotency
key per (run, step): it records the message in its own outbox in that transaction, so the
message exists exactly when the step is journaled as done (and a retried step finds its
key and sends nothing twice). Delivery happens later, outside the transaction, by the
channel's own worker.

`EngageChannel` (the one `automation.jobs.register` plugs in) hands e-mail to engage's
idempotent send (`engage.send.enqueue_email`: the run's key becomes the outbox row's
idempotency key, so a replayed step finds the row and queues nothing) from the workflow
owner's connected mailbox, and SMS to engage's conversation with the person (an outbound
message keyed by the same key, sent by engage's `engage.sms` job through the SMS gateway);
consent is engage's (a refused send is journaled as `refused` with the reason).
`OutboxChannel` keeps messages in `automation_messages` only (engine tests, deployments
without engage).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Protocol

from psycopg import AsyncConnection

from kernel.errors import Unprocessable


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Message:
    channel: str  # "email" | "sms"
    to_object: str | None  # the record it goes to (contacts, leads), for replies and consent
    to_id: str | None
    to_address: str | None  # e-mail address or phone number
    subject: str
    body: str
    idempotency_key: str
    run_id: int
    sender_user_id: int | None = None  # the workflow's owner: whose mailbox sends
    template: str | None = None  # engage's template (its subject and body) instead of body
    purpose: str | None = None  # transactional | service | marketing (decides the consent)
    attachments: tuple[Attachment, ...] = ()


class Channel(Protocol):
    async def send(self, conn: AsyncConnection[Any], message: Message) -> dict[str, Any]:
        """Record `message` in the caller's transaction; what to journal as the step's output."""
        ...


class OutboxChannel:
    async def send(self, conn: AsyncConnection[Any], message: Message) -> dict[str, Any]:
        cur = await conn.execute(
            """
            INSERT INTO automation_messages
                (idempotency_key, channel, to_object, to_id, to_address, subject, body, run_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (idempotency_key) DO UPDATE SET idempotency_key = EXCLUDED.idempotency_key
            RETURNING id
            """,
            (
                message.idempotency_key,
                message.channel,
                message.to_object,
                message.to_id,
                message.to_address,
                message.subject[:500],
                message.body[:20000],
                message.run_id,
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        return {"message_id": int(row[0]), "channel": message.channel, "to": message.to_address}


def _html(text: str) -> str:
    paras = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()] or [""]
    return "".join("<p>" + html.escape(p).replace("\n", "<br>") + "</p>" for p in paras)


async def _sms_template(conn: AsyncConnection[Any], name: str, contact_id: int | None) -> str:
    """engage's template as SMS text (its SMS body, else its text body), merged."""
    from engage import render
    from engage.timeline import contact_merge_values

    cur = await conn.execute(
        "SELECT coalesce(nullif(sms_body, ''), nullif(text_body, '')), html FROM engage_templates"
        " WHERE name = %s",
        (name,),
    )
    row = await cur.fetchone()
    if row is None:
        raise Unprocessable(f"template {name!r} not found", field="template")
    values = await contact_merge_values(conn, contact_id) if contact_id is not None else {}
    if row[0]:
        return str(render.merge(row[0], values, escape=False)[0]).strip()
    return str(render.html_to_text(render.merge(row[1], values, escape=True)[0])).strip()


class EngageChannel:
    """E-mail and SMS through engage (see the module's text). `config`: engage's send
    configuration (link base URL, DKIM); by default the deployment's settings."""

    def __init__(self, config: Any | None = None) -> None:
        self._config = config

    def config(self) -> Any:
        if self._config is None:
            from engage.send import send_config
            from kernel.settings import load_settings

            self._config = send_config(load_settings())
        return self._config

    async def send(self, conn: AsyncConnection[Any], message: Message) -> dict[str, Any]:
        if message.channel == "sms":
            return await self._sms(conn, message)
        return await self._email(conn, message)

    async def _email(self, conn: AsyncConnection[Any], m: Message) -> dict[str, Any]:
        from engage import render, send

        contact_id = int(m.to_id) if m.to_object == "contacts" and m.to_id else None
        oid = await send.enqueue_email(
            conn,
            idempotency_key=m.idempotency_key,
            config=self.config(),
            sender_user_id=m.sender_user_id,
            to=m.to_address,
            contact_id=contact_id,
            template=m.template,
            subject=None if m.template else m.subject,
            html=None if m.template else _html(m.body),
            text=None if m.template else m.body,
            purpose=m.purpose,
            attachments=[
                render.Attachment(a.filename, a.content_type, a.data) for a in m.attachments
            ],
        )
        st = await send.outbox_state(conn, oid)
        state = st["state"] if st else "queued"
        out: dict[str, Any] = {
            "channel": "email",
            "outbox_id": oid,
            "to": m.to_address,
            "state": state,
        }
        if st and st.get("reason"):
            out["reason"] = st["reason"]
        return out

    async def _sms(self, conn: AsyncConnection[Any], m: Message) -> dict[str, Any]:
        from engage import channels, consent, conversations
        from engage.timeline import Link

        phone = channels.normalise_phone(m.to_address or "")
        if phone is None:
            raise Unprocessable(f"{m.to_address!r} is not a phone number", field="channel")
        external_id = f"sms-out:{m.idempotency_key}"[:200]
        cur = await conn.execute(
            "SELECT id, sent_at FROM engage_messages WHERE channel = 'sms' AND external_id = %s",
            (external_id,),
        )
        row = await cur.fetchone()
        if row is not None:  # the step replayed: engage has it already
            return {"channel": "sms", "message_id": int(row[0]), "to": phone, "state": "queued"}
        link = Link(
            contact_id=int(m.to_id) if m.to_object == "contacts" and m.to_id else None,
            lead_id=int(m.to_id) if m.to_object == "leads" and m.to_id else None,
        )
        purpose = m.purpose or "transactional"
        reason = await consent.refusal(
            conn, contact_id=link.contact_id, channel="sms", purpose=purpose, address=phone
        )
        if reason is not None:
            return {
                "channel": "sms",
                "message_id": None,
                "to": phone,
                "state": "refused",
                "reason": reason,
            }
        text = m.body
        if m.template:
            text = await _sms_template(conn, m.template, link.contact_id)
        conv = await conversations.conversation_for(
            conn, link=link, channel="sms", subject=None, refs=[], address=phone
        )
        mid = await conversations.add_message(
            conn,
            conversation_id=conv,
            channel="sms",
            direction="out",
            contact_id=link.contact_id,
            author_user_id=m.sender_user_id,
            to_addr=phone,
            body_text=text[: channels.MAX_SMS_CHARS],
            external_id=external_id,
        )
        if mid is not None:
            from kernel.jobs import enqueue

            await enqueue(conn, channels.SMS_TASK, {"message_id": mid}, max_attempts=8)
        return {"channel": "sms", "message_id": mid, "to": phone, "state": "queued"}
