"""Calendar sync as background jobs (kernel.jobs).

`calendars.sync` runs one round for one user (calendars.sync) on a connection of its own;
`calendars.sync_all` runs every SYNC_EVERY_S and enqueues a round for every user who
opted in (deduplicated per user, so a slow round is never queued twice). A round that
fails (server down) is retried with the queue's capped backoff; the account keeps its
last error for the user to see.

`calendars.imip_send` (every IMIP_EVERY_S) queues the unsent invitations and
cancellations as e-mails through engage; `calendars.imip_read` (as often) reads the
organizers' mailboxes for replies (calendars.imip).
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg import AsyncConnection

from calendars import imip
from calendars.sync import ClientPool, sync_user
from kernel.jobs import JobContext, Registry, Task, enqueue
from kernel.settings import load_settings

log = logging.getLogger(__name__)

SYNC_TASK = "calendars.sync"
SYNC_ALL_TASK = "calendars.sync_all"
IMIP_SEND_TASK = "calendars.imip_send"
IMIP_READ_TASK = "calendars.imip_read"
IMIP_EVERY_S = 30.0
SYNC_EVERY_S = 300.0
BUSY_RETRY_S = 5.0  # a round asked for while another runs comes again after this


async def enqueue_sync(conn: AsyncConnection[Any], user_id: int, delay_s: float = 0.0) -> int:
    return await enqueue(
        conn,
        SYNC_TASK,
        {"user_id": user_id},
        delay_s=delay_s,
        dedupe_key=f"{SYNC_TASK}:{user_id}",
        max_attempts=5,
    )


def _sync_handler() -> Any:
    pools: dict[int, ClientPool] = {}  # the worker's, for its life: rounds reuse connections

    async def sync(ctx: JobContext, args: dict[str, Any]) -> None:
        user_id = int(args["user_id"])
        settings = ctx.settings if ctx.settings is not None else load_settings()
        tenant = settings.tenant
        clients = pools.get(id(settings))
        if clients is None:  # its settings open the sealed passwords
            clients = pools[id(settings)] = ClientPool(settings=settings)
        async with await AsyncConnection.connect(ctx.dsn, autocommit=True) as conn:
            stats = await sync_user(conn, user_id, tenant, clients=clients)
            if stats.busy:  # the running round may have missed what this one was for
                async with conn.transaction():
                    await enqueue_sync(conn, user_id, delay_s=BUSY_RETRY_S)
        log.info("calendar sync of user %s: %s", user_id, stats)

    return sync


async def _sync_all(ctx: JobContext, args: dict[str, Any]) -> None:
    async with ctx.pool.connection() as conn, conn.transaction():
        cur = await conn.execute("SELECT user_id FROM cal_accounts WHERE enabled ORDER BY user_id")
        for (user_id,) in await cur.fetchall():
            await enqueue_sync(conn, int(user_id))


async def _imip_send(ctx: JobContext, args: dict[str, Any]) -> None:
    settings = ctx.settings if ctx.settings is not None else load_settings()
    async with await AsyncConnection.connect(ctx.dsn, autocommit=True) as conn:
        got = await imip.send_pending(conn, settings)
    if got.queued or got.failed:
        log.info("calendar invitations: %s queued, %s without a mailbox", got.queued, got.failed)


async def _imip_read(ctx: JobContext, args: dict[str, Any]) -> None:
    settings = ctx.settings if ctx.settings is not None else load_settings()
    async with await AsyncConnection.connect(ctx.dsn, autocommit=True) as conn:
        n = await imip.read_replies(conn, settings)
    if n:
        log.info("calendar replies by e-mail: %s events updated", n)


def register(registry: Registry) -> None:
    from crm import hooks

    hooks.install()  # the CRM's rules for the activities the sync writes
    registry.add(Task(SYNC_TASK, _sync_handler(), timeout_s=1800.0, backoff_base_s=10.0))
    registry.add(Task(SYNC_ALL_TASK, _sync_all, timeout_s=60.0))
    registry.every(SYNC_ALL_TASK, SYNC_EVERY_S)
    registry.add(Task(IMIP_SEND_TASK, _imip_send, timeout_s=120.0))
    registry.every(IMIP_SEND_TASK, IMIP_EVERY_S)
    registry.add(Task(IMIP_READ_TASK, _imip_read, timeout_s=120.0))
    registry.every(IMIP_READ_TASK, IMIP_EVERY_S)
