"""Tests whose world is built around today or this month, and read back by the server.

A test that writes "closing today" or "won this month" and then asks the server for this
month's figures fails when the boundary passes in between: a world built at 23:59:50 on
31 January and read at 00:00:05 is last month's (won deals move into the history, open
deals become overdue). `clear_of(unit, margin_s)` makes the test start with at least
`margin_s` seconds of its day or month left, waiting out the end of it otherwise (at most
`margin_s`, once a day or month). The server runs on the same clock as the test.
`clear_of_slot(every_s)` does the same for a fixed window of seconds (periodic jobs).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Literal

from tests.eventually import eventually

Unit = Literal["day", "month"]


def next_start(now: datetime, unit: Unit) -> datetime:
    """The next UTC day or month after `now` begins."""
    day = now.astimezone(UTC).date()
    if unit == "day":
        nxt = day + timedelta(days=1)
    else:
        nxt = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=UTC)


def clear_of(unit: Unit, margin_s: float = 300.0) -> datetime:
    """Now (UTC), with at least `margin_s` seconds of the current UTC `unit` left."""
    now = datetime.now(UTC)
    boundary = next_start(now, unit)
    if (boundary - now).total_seconds() >= margin_s:
        return now

    def begun() -> datetime | None:  # the clock itself is the condition awaited
        t = datetime.now(UTC)
        return t if t >= boundary else None

    return eventually(
        begun,
        timeout_s=margin_s + 30.0,
        interval_s=1.0,
        what=f"the {unit} starting at {boundary:%Y-%m-%d %H:%M} UTC",
    )


def clear_of_slot(every_s: float, margin_s: float = 90.0) -> None:
    """Return once at least `margin_s` seconds are left in the current fixed slot of
    `every_s` seconds (counted from the epoch, as kernel.jobs numbers periodic slots)."""
    boundary_s = (time.time() // every_s + 1) * every_s
    if boundary_s - time.time() >= margin_s:
        return
    eventually(
        lambda: time.time() >= boundary_s,
        timeout_s=margin_s + 30.0,
        interval_s=0.5,
        what=f"the slot of {every_s:.0f} s starting at {boundary_s:.0f}",
    )
