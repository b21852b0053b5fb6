"""crm_sync's background jobs (kernel.jobs): webhook delivery.

`webhooks.enqueue` queues one `crm_sync.webhooks.deliver` job (deduplicated) in the
transaction that records an event; the job sends every due outbox row, then queues itself
again for the earliest retry still pending. A periodic sweep covers anything else (a
delivery made due by hand in SQL). The outbox's own lease keeps two workers from sending
a row twice.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from crm_sync import predictions, webhooks
from kernel.jobs import JobContext, Registry, Task, enqueue

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 60.0


async def deliver(ctx: JobContext, args: dict[str, Any]) -> None:
    allow = ctx.settings.webhook_allow if ctx.settings is not None else ()
    async with aiohttp.ClientSession() as session:
        while True:
            async with ctx.pool.connection() as conn:
                stats = await webhooks.deliver_due(conn, session, allow=allow)
            if not stats.claimed:
                break
            log.info(
                "webhooks: %d delivered, %d retrying, %d dead",
                stats.delivered,
                stats.retrying,
                stats.dead,
            )
    async with ctx.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT extract(epoch FROM min(o.next_attempt_at) - now()) FROM webhook_outbox o"
            " JOIN webhook_subscriptions s ON s.id = o.subscription_id"
            " WHERE o.status = 'pending' AND s.active"
        )
        row = await cur.fetchone()
        if row is not None and row[0] is not None:
            await enqueue(
                conn,
                webhooks.DELIVER_TASK,
                delay_s=max(float(row[0]), 0.0),
                dedupe_key=webhooks.DELIVER_TASK,
            )


def register(registry: Registry) -> None:
    registry.add(Task(webhooks.DELIVER_TASK, deliver, timeout_s=600.0))
    registry.every(webhooks.DELIVER_TASK, SWEEP_EVERY_S)
    predictions.register(registry)  # the failure model on live assets -> work orders
