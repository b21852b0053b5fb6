"""notify's background jobs (kernel.jobs): Web Push delivery.

`notify_user` enqueues `notify.push` in the caller's transaction when the user has a push
subscription, so the push exists exactly when the notification does; a sweep every minute
retries what the last hour left undelivered (a lost job, a push service that was down).
"""

from __future__ import annotations

from typing import Any

from kernel.jobs import JobContext, Registry, Task
from notify import push
from notify.service import PUSH_TASK

SWEEP_TASK = "notify.push.sweep"


async def deliver_push(ctx: JobContext, args: dict[str, Any]) -> None:
    if ctx.settings is None:
        raise RuntimeError("notify.push needs the deployment's settings (the VAPID key)")
    async with ctx.pool.connection() as conn:
        await push.deliver(conn, ctx.settings, int(args["notification_id"]))


async def sweep(ctx: JobContext, _args: dict[str, Any]) -> None:
    if ctx.settings is None:
        return
    async with ctx.pool.connection() as conn:
        cur = await conn.execute(
            """
            SELECT n.notification_id FROM notifications n
            JOIN push_subscriptions s ON s.user_id = n.user_id
            WHERE n.created_at > now() - interval '1 hour' AND n.read_at IS NULL
              AND s.created_at <= n.created_at + interval '1 hour'
              AND NOT EXISTS (SELECT 1 FROM push_deliveries d WHERE d.notification_id =
                  n.notification_id AND d.subscription_id = s.subscription_id)
            GROUP BY n.notification_id ORDER BY n.notification_id LIMIT 500
            """
        )
        ids = [int(r[0]) for r in await cur.fetchall()]
        await conn.commit()
        for nid in ids:
            try:
                await push.deliver(conn, ctx.settings, nid)
            except push.PushUnavailable:
                continue  # its own job retries it; the next sweep too


def register(registry: Registry) -> None:
    registry.add(
        Task(PUSH_TASK, deliver_push, timeout_s=120.0, backoff_base_s=2.0, backoff_cap_s=300.0)
    )
    registry.add(Task(SWEEP_TASK, sweep, timeout_s=600.0))
    registry.every(SWEEP_TASK, 60.0)
