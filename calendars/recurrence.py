"""Recurring events: RFC 5545 RRULE with EXDATE and moved instances (RECURRENCE-ID),
expanded in the event's own IANA zone.

Expansion runs on aware datetimes in the event's zone: dateutil steps the wall-clock
time (a weekly 10:00 Berlin meeting stays at 10:00 local, so 09:00 UTC in summer and
08:00 UTC in winter), and every instance is then converted to UTC. EXDATEs and
RECURRENCE-IDs are compared in UTC, as the server and fieldmesh store them.

`occurrences(conn, user_ids, start, end)` is the busy time of the users' recurring
events in a window, computed here (not by the server's free-busy report: Radicale's
shifts recurring events by an hour after a DST change). The slot finder calls it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dateutil.rrule import rrule, rrulestr
from psycopg import AsyncConnection, Connection

from calendars.model import CalendarError, EventData, Override, zone

MAX_INSTANCES = 5000  # per event and call: a window cannot make an unbounded list
_FREQS = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY")


@dataclass(frozen=True, slots=True)
class Instance:
    start: datetime  # UTC
    end: datetime
    recurrence_id: datetime  # the original start (UTC)
    summary: str | None = None
    moved: bool = False


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One busy instance of a recurring event."""

    event_id: int
    owner_id: int
    activity_id: int | None
    start: datetime  # UTC
    end: datetime  # UTC
    title: str
    tz: str


def check_rrule(text: str) -> None:
    """Refuse RRULEs fieldmesh will not expand (sub-hourly, malformed)."""
    if len(text) > 500:
        raise CalendarError("RRULE longer than 500 characters")
    parts = dict(p.split("=", 1) for p in text.upper().split(";") if "=" in p)
    if parts.get("FREQ") not in _FREQS:
        raise CalendarError(f"RRULE FREQ must be one of {', '.join(_FREQS)}: {text!r}")
    try:
        rrulestr(text, dtstart=datetime(2000, 1, 1, tzinfo=UTC))
    except (ValueError, TypeError) as exc:
        raise CalendarError(f"bad RRULE {text!r}: {exc}") from None


def _rule(ev: EventData) -> rrule:
    assert ev.rrule is not None
    dtstart = ev.start.astimezone(zone(ev.tz))
    try:
        rule = rrulestr(ev.rrule, dtstart=dtstart)
    except (ValueError, TypeError) as exc:
        raise CalendarError(f"bad RRULE {ev.rrule!r}: {exc}") from None
    assert isinstance(rule, rrule)
    return rule


def expand(ev: EventData, start: datetime, end: datetime) -> list[Instance]:
    """The event's instances overlapping [start, end), in UTC, sorted by start.

    A non-recurring event is its one instance. Cancelled instances (EXDATE, or a
    RECURRENCE-ID with STATUS:CANCELLED) are left out; moved ones appear at their new time
    (also when the move brings them into the window from outside it)."""
    duration = ev.end - ev.start
    if ev.rrule is None:
        if ev.start < end and (ev.end > start or (duration == timedelta(0) and ev.start >= start)):
            return [Instance(ev.start, ev.end, ev.start)]
        return []
    excluded = {d.astimezone(UTC) for d in ev.exdates}
    moved: dict[datetime, Override] = {o.recurrence_id.astimezone(UTC): o for o in ev.overrides}
    excluded |= {rid for rid, o in moved.items() if o.cancelled}
    out: list[Instance] = []
    rule = _rule(ev)
    tz = zone(ev.tz)
    lo = (start - duration).astimezone(tz)
    for local in rule.xafter(lo, count=MAX_INSTANCES * 2, inc=True):
        s = local.astimezone(UTC)
        if s >= end:
            break
        if s in excluded or s in moved:
            continue
        e = s + duration
        if e > start or (duration == timedelta(0) and s >= start):
            out.append(Instance(s, e, s))
        if len(out) >= MAX_INSTANCES:
            break
    for rid, o in moved.items():
        if o.cancelled:
            continue
        if o.start < end and o.end > start:
            out.append(Instance(o.start, o.end, rid, o.summary, moved=True))
    out.sort(key=lambda i: (i.start, i.recurrence_id))
    return out


# --------------------------------------------------------------------------- from the database

_SERIES_SQL = """
SELECT e.id, e.owner_id, e.activity_id, e.uid, e.summary, e.tz, e.start_at, e.end_at, e.rrule,
       e.exdates,
       coalesce((SELECT json_agg(json_build_array(o.recurrence_id, o.start_at, o.end_at,
                                                  o.summary, o.cancelled))
                 FROM cal_overrides o WHERE o.event_id = e.id), '[]'::json)
FROM cal_events e
WHERE e.owner_id = ANY (%(users)s) AND e.rrule IS NOT NULL AND NOT e.deleted
  AND e.status <> 'CANCELLED' AND NOT e.transparent AND e.start_at < %(end)s
ORDER BY e.id
"""


def _ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def _occurrences(
    rows: Iterable[tuple[Any, ...]], start: datetime, end: datetime
) -> list[Occurrence]:
    out: list[Occurrence] = []
    for ev_id, owner, act, uid, summary, tz, s, e, rule, exdates, overrides in rows:
        ev = EventData(
            uid=uid,
            summary=summary,
            start=s,
            end=e,
            tz=tz,
            rrule=rule,
            exdates=tuple(exdates or ()),
            overrides=tuple(
                Override(_ts(o[0]), _ts(o[1]), _ts(o[2]), o[3], bool(o[4])) for o in overrides
            ),
        )
        try:
            instances = expand(ev, start, end)
        except CalendarError:
            continue  # stored rules were checked on the way in; a zone that vanished: skip
        out.extend(
            Occurrence(ev_id, owner, act, i.start, i.end, i.summary or summary, tz)
            for i in instances
        )
    out.sort(key=lambda o: (o.start, o.event_id))
    return out


def _check_window(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise CalendarError("the window's start and end must carry a time zone")
    if end < start:
        raise CalendarError("the window ends before it starts")


async def occurrences(
    conn: AsyncConnection[Any], user_ids: Iterable[int], start: datetime, end: datetime
) -> list[Occurrence]:
    """Busy instances (UTC) of the users' recurring events overlapping [start, end).

    Cancelled series, transparent events (visit cadences: reminders, not busy time) and
    cancelled instances are left out. A recurring event's CRM activity carries the
    series' first instance in its own start_at/end_at."""
    _check_window(start, end)
    cur = await conn.execute(_SERIES_SQL, {"users": list(user_ids), "end": end})
    return _occurrences(await cur.fetchall(), start, end)


def occurrences_sync(
    conn: Connection[Any], user_ids: Iterable[int], start: datetime, end: datetime
) -> list[Occurrence]:
    """`occurrences` on a synchronous connection."""
    _check_window(start, end)
    rows = conn.execute(_SERIES_SQL, {"users": list(user_ids), "end": end}).fetchall()
    return _occurrences(rows, start, end)
