"""engage's background jobs (kernel.jobs).

- `engage.send` (per mailbox, queued by `engage.send.enqueue_email`): drains the outbox.
- `engage.sms` (per outbound SMS): hands it to the SMS gateway.
- `engage.sync` (periodic, every SYNC_EVERY_S): an incremental IMAP sync of every mailbox,
  for servers without IDLE and as a safety net.
- `engage.eta` (periodic, every ETA_EVERY_S): the technicians' ETA messages from the
  newest routing plans (`engage.eta`).
- `engage.watch` (periodic, every WATCH_S): holds an IDLE session per mailbox for WATCH_S
  and syncs at once when mail arrives (what makes inbound mail reach the inbox within a
  second); the next one takes over when it ends.
"""

from __future__ import annotations

import asyncio
from typing import Any

from engage import eta, imap_sync, sms
from engage.channels import SMS_TASK
from engage.send import SEND_TASK, send_batch, send_config
from kernel.jobs import JobContext, Registry, Task

SYNC_TASK = "engage.sync"
WATCH_TASK = "engage.watch"
SYNC_EVERY_S = 60.0
WATCH_S = 300.0


async def sync(ctx: JobContext, args: dict[str, Any]) -> None:
    assert ctx.settings is not None
    await imap_sync.sync_all(ctx.pool, ctx.settings)


async def tell_etas(ctx: JobContext, args: dict[str, Any]) -> None:
    assert ctx.settings is not None
    async with ctx.pool.connection() as conn:
        await eta.notify_etas(conn, send_config(ctx.settings))


async def watch(ctx: JobContext, args: dict[str, Any]) -> None:
    assert ctx.settings is not None
    await imap_sync.watch(ctx.pool, ctx.settings, asyncio.Event(), duration_s=WATCH_S - 5)


def register(registry: Registry) -> None:
    registry.add(Task(SEND_TASK, send_batch, timeout_s=600.0, backoff_base_s=5.0))
    registry.add(Task(SMS_TASK, sms.send_job, timeout_s=60.0, backoff_base_s=2.0))
    registry.add(Task(SYNC_TASK, sync, timeout_s=600.0))
    registry.add(Task(WATCH_TASK, watch, timeout_s=WATCH_S + 60))
    registry.add(Task(eta.ETA_TASK, tell_etas, timeout_s=300.0))
    registry.every(SYNC_TASK, SYNC_EVERY_S)
    registry.every(eta.ETA_TASK, eta.ETA_EVERY_S)
    registry.every(WATCH_TASK, WATCH_S)
