"""Closing the loop: a rep's visit to the site works the alert's work orders.

Check-in at the account (from the geofences) starts the rep's open alert work orders
there (`in_progress`, taking unassigned ones); the visit's completion finishes them
(`done`), logs an activity per work order on the account's timeline, and emits the
`visit.checked_in` / `visit.completed` webhook events. Both are idempotent: a replayed
check-in or check-out changes nothing the second time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from crm_sync import webhooks
from crm_sync.visits import log_visit_activity
from crm_sync.workorders import SOURCE


def on_check_in(
    conn: psycopg.Connection[Any],
    *,
    visit_id: int,
    account_id: int,
    rep_id: int | None,
    arrived_at: datetime,
) -> list[int]:
    """Start the alert work orders the rep can work at this account; their ids."""
    if rep_id is None:
        return []
    rows = conn.execute(
        """
        SELECT id, status FROM work_orders
        WHERE account_id = %s AND source = %s AND status IN ('new', 'assigned', 'scheduled')
          AND (assignee_id = %s OR assignee_id IS NULL)
        ORDER BY id FOR UPDATE
        """,
        (account_id, SOURCE, rep_id),
    ).fetchall()
    started: list[int] = []
    for wo_id, status in rows:
        if status == "new":  # new -> assigned -> in_progress (the allowed transitions)
            conn.execute(
                "UPDATE work_orders SET status = 'assigned', assignee_id = %s, "
                "updated_at = now(), version = version + 1 WHERE id = %s",
                (rep_id, wo_id),
            )
        conn.execute(
            "UPDATE work_orders SET status = 'in_progress', scheduled_start = coalesce("
            "scheduled_start, %s), updated_at = now(), version = version + 1 WHERE id = %s",
            (arrived_at, wo_id),
        )
        started.append(int(wo_id))
    webhooks.enqueue(
        conn,
        "visit.checked_in",
        f"visit.checked_in:{visit_id}",
        {
            "visit_id": visit_id,
            "account_id": account_id,
            "rep_id": rep_id,
            "arrived_at": arrived_at.isoformat(),
            "work_orders_started": started,
        },
    )
    return started


def on_visit_completed(
    conn: psycopg.Connection[Any],
    *,
    visit_id: int,
    account_id: int,
    rep_id: int | None,
    departed_at: datetime,
) -> list[int]:
    """Finish the rep's in-progress alert work orders at this account; their ids."""
    done: list[int] = []
    if rep_id is not None:
        rows = conn.execute(
            """
            UPDATE work_orders SET status = 'done', completed_at = %s, scheduled_end = %s,
                   updated_at = now(), version = version + 1
            WHERE account_id = %s AND source = %s AND status = 'in_progress' AND assignee_id = %s
            RETURNING id, title, territory_id
            """,
            (departed_at, departed_at, account_id, SOURCE, rep_id),
        ).fetchall()
        for wo_id, title, territory_id in rows:
            conn.execute(
                """
                INSERT INTO activities (type, subject, body, status, start_at, account_id,
                                        work_order_id, owner_id, territory_id, source,
                                        source_ref, completed_at)
                VALUES ('task', %s, %s, 'done', %s, %s, %s, %s, %s, 'crm_sync', %s, %s)
                ON CONFLICT (source, source_ref) WHERE source_ref IS NOT NULL DO NOTHING
                """,
                (
                    f"Work order #{wo_id} completed on site"[:500],
                    f"{title}\nCompleted during visit {visit_id}.",
                    departed_at,
                    account_id,
                    wo_id,
                    rep_id,
                    territory_id,
                    f"visit:{visit_id}:work_order:{wo_id}",
                    departed_at,
                ),
            )
            done.append(int(wo_id))
    webhooks.enqueue(
        conn,
        "visit.completed",
        f"visit.completed:{visit_id}",
        {
            "visit_id": visit_id,
            "account_id": account_id,
            "rep_id": rep_id,
            "departed_at": departed_at.isoformat(),
            "work_orders_completed": done,
        },
    )
    return done


class CrmVisitHooks:
    """geo.store.VisitHooks: a visit logs its activity and works the alert work orders."""

    def checked_in(
        self,
        conn: psycopg.Connection[Any],
        *,
        visit_id: int,
        account_id: int,
        rep_id: int | None,
        arrived_at: datetime,
    ) -> None:
        on_check_in(
            conn, visit_id=visit_id, account_id=account_id, rep_id=rep_id, arrived_at=arrived_at
        )

    def completed(
        self,
        conn: psycopg.Connection[Any],
        *,
        visit_id: int,
        account_id: int,
        rep_id: int | None,
        arrived_at: datetime,
        departed_at: datetime,
        device_id: str,
    ) -> int | None:
        activity_id = log_visit_activity(
            conn,
            visit_id=visit_id,
            account_id=account_id,
            rep_id=rep_id,
            arrived_at=arrived_at,
            departed_at=departed_at,
            device_id=device_id,
        )
        on_visit_completed(
            conn, visit_id=visit_id, account_id=account_id, rep_id=rep_id, departed_at=departed_at
        )
        return activity_id
