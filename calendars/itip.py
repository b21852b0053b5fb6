"""Invitations (iTIP, RFC 5546): REQUEST, REPLY and CANCEL objects, generated and kept in
`cal_itip`, visible on the activity.

Sending by e-mail is `calendars.imip` (through engage's idempotent sending): it mails
each unsent outbound message's `ics` to its `recipient` as a `text/calendar;
method=...` part and marks it sent in the same transaction. Replies that arrive by
e-mail go to `ingest_reply()` (only the sender's own answer); replies that arrive
through the CalDAV server (an attendee's client updated their PARTSTAT) are recorded by
the sync as direction `in`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from calendars.ical import parse_calendar, to_ics
from calendars.model import PARTSTATS, Attendee, EventData
from calendars.store import Conn, load_events


@dataclass(frozen=True, slots=True)
class ItipMessage:
    id: int
    event_id: int | None
    activity_id: int | None
    method: str
    direction: str
    recipient: str
    sequence: int
    ics: str
    created_at: datetime
    sent_at: datetime | None


_COLS = (
    "id, event_id, activity_id, method, direction, recipient, sequence, ics, created_at, sent_at"
)


async def _insert(
    conn: Conn, row: dict[str, Any], method: str, direction: str, recipient: str, ics: str
) -> None:
    await conn.execute(
        "INSERT INTO cal_itip (event_id, activity_id, owner_id, method, direction, recipient, "
        "sequence, ics) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            row["id"],
            row["activity_id"],
            row["owner_id"],
            method,
            direction,
            recipient,
            row["sequence"],
            ics,
        ),
    )


def _organized(ev: EventData, organizer: str) -> EventData:
    return replace(ev, organizer=ev.organizer or organizer)


async def record_invitations(conn: Conn, event_id: int, organizer: str) -> int:
    """A REQUEST to every attendee of the event (after it was created or changed): the
    event's SEQUENCE moves on, so clients replace the earlier invitation."""
    await conn.execute(
        "UPDATE cal_events SET sequence = sequence + 1, organizer = coalesce(organizer, %s) "
        "WHERE id = %s",
        (organizer, event_id),
    )
    rows = await load_events(conn, "id = %s", (event_id,))
    if not rows:
        return 0
    row, ev = rows[0]
    ics = to_ics([_organized(ev, organizer)], method="REQUEST")
    n = 0
    for a in ev.attendees:
        if a.email == (ev.organizer or organizer):
            continue
        await _insert(conn, row, "REQUEST", "out", a.email, ics)
        n += 1
    return n


async def record_cancel(conn: Conn, event_id: int) -> None:
    """A CANCEL to every attendee of an event that is going away."""
    rows = await load_events(conn, "id = %s", (event_id,))
    if not rows:
        return
    row, ev = rows[0]
    if not ev.attendees:
        return
    ics = to_ics([replace(ev, status="CANCELLED", sequence=ev.sequence + 1)], method="CANCEL")
    for a in ev.attendees:
        if a.email != ev.organizer:
            await _insert(conn, row, "CANCEL", "out", a.email, ics)


async def record_replies(
    conn: Conn, row: dict[str, Any], old_partstats: dict[str, str], ev: EventData
) -> int:
    """A REPLY (direction in) for each attendee whose answer changed on the server."""
    n = 0
    for a in ev.attendees:
        if a.partstat != "NEEDS-ACTION" and old_partstats.get(a.email) != a.partstat:
            reply = replace(ev, attendees=(a,), rrule=None, overrides=(), exdates=())
            await _insert(
                conn, row, "REPLY", "in", ev.organizer or "", to_ics([reply], method="REPLY")
            )
            n += 1
    return n


async def ingest_reply(conn: Conn, owner_id: int, ics: str, sender: str | None = None) -> int:
    """An iTIP REPLY that came by e-mail: the attendees' PARTSTATs go on the organizer's
    event (which the next sync pushes). With `sender` (the mail's From address) only that
    attendee's answer counts: nobody answers for someone else (RFC 6047 section 3.2).
    Returns how many events were updated."""
    events = parse_calendar(ics)  # CalendarError: not a calendar object
    n = 0
    who = sender.strip().lower() if sender else None
    for reply in events:
        rows = await load_events(conn, "owner_id = %s AND uid = %s", (owner_id, reply.uid))
        if not rows:
            continue
        row, ev = rows[0]
        answers = {
            a.email: a.partstat
            for a in reply.attendees
            if a.partstat in PARTSTATS and (who is None or a.email.lower() == who)
        }
        changed = False
        attendees: list[Attendee] = []
        for a in ev.attendees:
            new = answers.get(a.email)
            if new is not None and new != a.partstat:
                attendees.append(replace(a, partstat=new))
                changed = True
            else:
                attendees.append(a)
        if not changed:
            continue
        from calendars.store import replace_attendees

        await replace_attendees(conn, row["id"], attendees)
        await conn.execute(
            "UPDATE cal_events SET local_rev = local_rev + 1, updated_at = now() WHERE id = %s",
            (row["id"],),
        )
        await _insert(conn, row, "REPLY", "in", ev.organizer or "", ics)
        n += 1
    return n


async def pending_outbound(conn: Conn, limit: int = 100) -> list[ItipMessage]:
    cur = await conn.execute(
        f"SELECT {_COLS} FROM cal_itip WHERE sent_at IS NULL AND direction = 'out' "
        "ORDER BY id LIMIT %s",
        (limit,),
    )
    return [ItipMessage(*r) for r in await cur.fetchall()]


async def mark_sent(conn: Conn, message_id: int) -> None:
    await conn.execute(
        "UPDATE cal_itip SET sent_at = now() WHERE id = %s AND sent_at IS NULL", (message_id,)
    )


async def for_activity(conn: Conn, activity_id: int) -> list[ItipMessage]:
    cur = await conn.execute(
        f"SELECT {_COLS} FROM cal_itip WHERE activity_id = %s ORDER BY id", (activity_id,)
    )
    return [ItipMessage(*r) for r in await cur.fetchall()]
