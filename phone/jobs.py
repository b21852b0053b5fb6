"""phone's background jobs (kernel.jobs): the notifications a rep's phone gets pushed.

A periodic scan (`phone.notify`, every PERIOD_S) turns what changed into notifications
through `notify.service.notify_user` -- whose dedupe key makes the scan idempotent, and
whose job pushes them (notify/push.py):

* a new urgent work order assigned to the rep -> `work_order.urgent`, opens the work order;
* a re-planned route (a newer ready plan of the day in which the rep has stops) ->
  `route.replanned`, opens the day (ETAs changed);
* a reminder REMIND_BEFORE_S before the next stop's ETA -> `reminder`, opens the stop.

Mentions (and other capabilities' reminders) reach the phone the same way: whoever calls
`notify_user` for the rep gets pushed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection

from kernel.jobs import JobContext, Registry, Task
from notify.service import notify_user

NOTIFY_TASK = "phone.notify"
PERIOD_S = 10.0
REMIND_BEFORE_S = 15 * 60
LOOKBACK = "1 day"


async def urgent_work_orders(conn: AsyncConnection[Any]) -> int:
    cur = await conn.execute(
        f"""
        SELECT w.id, w.assignee_id, w.title, a.name FROM work_orders w
        JOIN accounts a ON a.id = w.account_id
        WHERE w.priority = 'urgent' AND w.assignee_id IS NOT NULL
          AND w.status IN ('new', 'assigned', 'scheduled', 'in_progress')
          AND w.updated_at > now() - interval '{LOOKBACK}'
        """
    )
    n = 0
    for wo_id, user_id, title, account in await cur.fetchall():
        nid = await notify_user(
            conn,
            user_id=int(user_id),
            kind="work_order.urgent",
            title=f"Urgent: {title}",
            body=str(account),
            link=f"/console/rep/#wo/{wo_id}",
            urgent=True,
            dedupe_key=f"wo-urgent:{wo_id}:{user_id}",
        )
        n += nid is not None
    return n


async def replanned_routes(conn: AsyncConnection[Any]) -> int:
    cur = await conn.execute(
        f"""
        SELECT p.id, s.rep_id, count(*), min(s.eta) FROM routing_plans p
        JOIN routing_stops s ON s.plan_id = p.id
        WHERE p.status = 'ready' AND p.created_at > now() - interval '{LOOKBACK}'
          AND p.plan_date >= current_date - 1 AND s.rep_id IS NOT NULL
          AND EXISTS (SELECT 1 FROM routing_plans o WHERE o.status = 'ready' AND o.id <> p.id
                      AND o.plan_date = p.plan_date AND o.territory_id IS NOT DISTINCT FROM
                      p.territory_id AND o.created_at <= p.created_at)
        GROUP BY p.id, s.rep_id
        """
    )
    n = 0
    for plan_id, rep_id, stops, first_eta in await cur.fetchall():
        nid = await notify_user(
            conn,
            user_id=int(rep_id),
            kind="route.replanned",
            title="Your route was re-planned",
            body=f"{stops} stops; first ETA {first_eta.astimezone(UTC):%H:%M} UTC",
            link="/console/rep/#day",
            dedupe_key=f"replan:{plan_id}:{rep_id}",
        )
        n += nid is not None
    return n


async def stop_reminders(conn: AsyncConnection[Any], now: datetime) -> int:
    cur = await conn.execute(
        """
        SELECT DISTINCT ON (s.rep_id) s.plan_id, s.rep_id, s.visit_key, s.eta, a.name,
               s.work_order_id, s.account_id
        FROM routing_stops s JOIN routing_plans p ON p.id = s.plan_id
        JOIN accounts a ON a.id = s.account_id
        WHERE p.status = 'ready' AND s.rep_id IS NOT NULL
          AND s.eta BETWEEN %s AND %s + make_interval(secs => %s)
          AND p.id = (SELECT p2.id FROM routing_plans p2 WHERE p2.plan_date = p.plan_date
                      AND p2.status = 'ready' AND p2.territory_id IS NOT DISTINCT FROM
                      p.territory_id ORDER BY p2.created_at DESC, p2.id DESC LIMIT 1)
        ORDER BY s.rep_id, s.eta
        """,
        (now, now, REMIND_BEFORE_S),
    )
    n = 0
    for plan_id, rep_id, key, eta, account, wo_id, account_id in await cur.fetchall():
        stop = f"wo/{wo_id}" if wo_id is not None else f"stop/acct:{account_id}"
        nid = await notify_user(
            conn,
            user_id=int(rep_id),
            kind="reminder",
            title=f"Next stop at {eta.astimezone(UTC):%H:%M} UTC",
            body=str(account),
            link=f"/console/rep/#{stop}",
            dedupe_key=f"eta:{plan_id}:{key}:{rep_id}",
        )
        n += nid is not None
    return n


async def scan(ctx: JobContext, _args: dict[str, Any]) -> None:
    async with ctx.pool.connection() as conn, conn.transaction():
        await urgent_work_orders(conn)
        await replanned_routes(conn)
        await stop_reminders(conn, datetime.now(UTC))


def register(registry: Registry) -> None:
    registry.add(Task(NOTIFY_TASK, scan, timeout_s=120.0))
    registry.every(NOTIFY_TASK, PERIOD_S)
