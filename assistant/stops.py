"""The rep's stops as the phone shows them, for "next stop", "check in" and "done ...".

When a routing plan routes the rep today, the current stop is the first one of the phone's
day (phone.dayrepo: the plan's order) that is neither completed nor a closed work order, so
the voice and the phone's screen always mean the same stop; without a plan the assistant
keeps to the rep's next scheduled work order. A check-in or completion said to the
assistant is also recorded on the stop (phone_stop_work, the way the phone records its own
buttons), so the phone's day shows it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg import AsyncConnection

from kernel.principal import Principal
from phone import dayrepo
from phone.day import DayStop, stop_key

Conn = AsyncConnection[Any]
OPEN_WO = ("new", "assigned", "scheduled", "in_progress")


def is_open(stop: DayStop) -> bool:
    wo = stop.extra.get("work_order")
    return not stop.extra.get("completed") and (wo is None or wo["status"] in OPEN_WO)


async def planned_stop(conn: Conn, principal: Principal, day: dt.date) -> DayStop | None:
    """The current stop of the rep's planned day (None when no plan routes the rep that day,
    or every stop is done)."""
    plan_id, stops = await dayrepo.load_day(conn, principal.user_id, day)
    if plan_id is None:
        return None
    return next((s for s in stops if is_open(s)), None)


async def record_on_stop(
    conn: Conn,
    principal: Principal,
    day: dt.date,
    account_id: int,
    work_order_id: int | None,
    *,
    checkin_at: dt.datetime | None = None,
    completed: bool | None = None,
) -> str:
    """Record a check-in or a completion on the rep's stop of `day`; returns its key."""
    stop = DayStop(stop_key(account_id, work_order_id), account_id, work_order_id, None, None)
    await dayrepo.record(
        conn, principal.user_id, day, stop, checkin_at=checkin_at, completed=completed
    )
    return stop.key
