"""Where e-mail and SMS steps go: one small interface, plugged by the composition root.

A `Channel` gets the step's connection inside the step's transaction and an idempotency
key per (run, step): it records the message in its own outbox in that transaction, so the
message exists exactly when the step is journaled as done (and a retried step finds its
key and sends nothing twice). Delivery happens later, outside the transaction, by the
channel's own worker.

`OutboxChannel` is the built-in one (table `automation_messages`); engage's e-mail/SMS
service replaces it at merge through `automation.jobs.register(..., channel=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from psycopg import AsyncConnection


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
