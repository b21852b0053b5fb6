"""A contact's preferred channel and hour, learned from how they engage.

Signals: their inbound messages (the channel and the UTC hour they wrote at) and their
opens and clicks of our e-mails (the hour; a click counts twice). The preferred channel
is the one they write on most; the preferred hour the one with the most signals, once
there are at least MIN_SIGNALS (a single reply says little). Used by default when
sending: a marketing e-mail waits for the contact's hour (`engage.send.enqueue_email`),
the technician's ETA goes on their channel (`engage.eta`), and the journey shows both.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

MIN_SIGNALS = 3
LOOKBACK_DAYS = 365


@dataclass(frozen=True, slots=True)
class Preferred:
    channel: str | None
    hour_utc: int | None
    signals: int


def learn(messages: list[tuple[str, int]], events: list[tuple[str, int]]) -> Preferred:
    """(channel, hour) of inbound messages and (kind, hour) of opens/clicks -> Preferred."""
    channels = Counter(ch for ch, _h in messages)
    hours: Counter[int] = Counter()
    for _ch, h in messages:
        hours[h] += 1
    for kind, h in events:
        hours[h] += 2 if kind == "click" else 1
    signals = sum(hours.values())
    return Preferred(
        channel=channels.most_common(1)[0][0] if channels else None,
        # ties go to the earliest hour, so the answer does not depend on row order
        hour_utc=min(hours, key=lambda h: (-hours[h], h)) if signals >= MIN_SIGNALS else None,
        signals=signals,
    )


async def preferred(conn: AsyncConnection[Any], contact_id: int) -> Preferred:
    cur = await conn.execute(
        "SELECT channel, extract(hour FROM created_at AT TIME ZONE 'UTC')::int FROM engage_messages"
        " WHERE contact_id = %s AND direction = 'in' AND kind = 'message'"
        " AND created_at > now() - make_interval(days => %s)",
        (contact_id, LOOKBACK_DAYS),
    )
    messages = [(str(ch), int(h)) for ch, h in await cur.fetchall()]
    cur = await conn.execute(
        "SELECT kind, extract(hour FROM at AT TIME ZONE 'UTC')::int FROM engage_events"
        " WHERE contact_id = %s AND kind IN ('open', 'click')"
        " AND at > now() - make_interval(days => %s)",
        (contact_id, LOOKBACK_DAYS),
    )
    events = [(str(k), int(h)) for k, h in await cur.fetchall()]
    return learn(messages, events)


def next_at_hour(now: datetime, hour_utc: int) -> datetime:
    """The next time it is `hour_utc` o'clock UTC (now, if it is that hour already)."""
    if now.hour == hour_utc:
        return now
    start = now.replace(hour=hour_utc, minute=0, second=0, microsecond=0)
    return start if start > now else start + timedelta(days=1)
