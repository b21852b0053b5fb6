"""The calendars tables: events as rows and back, their overrides and attendees."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from calendars.model import Attendee, EventData, Override

Conn = AsyncConnection[Any]

EVENT_COLUMNS = (
    "id, owner_id, uid, kind, source_key, activity_id, work_order_id, account_id, summary, "
    "description, location, tz, start_at, end_at, all_day, rrule, exdates, status, transparent, "
    "organizer, sequence, local_rev, pushed_rev, href, etag, base, deleted, updated_at"
)


@dataclass(frozen=True, slots=True)
class Account:
    user_id: int
    enabled: bool
    server_url: str
    username: str
    password: str
    calendar_url: str | None
    sync_token: str | None
    projected_at: datetime | None
    timezone: str  # the user's, for floating times from the server
    server_stamp: str | None = None  # the embedded server's change marker at the last REPORT


async def account(conn: Conn, user_id: int) -> Account | None:
    cur = await conn.execute(
        "SELECT c.user_id, c.enabled, c.server_url, c.username, c.password, c.calendar_url, "
        "c.sync_token, c.projected_at, u.timezone, c.server_stamp "
        "FROM cal_accounts c JOIN users u ON u.id = c.user_id WHERE c.user_id = %s",
        (user_id,),
    )
    row = await cur.fetchone()
    return None if row is None else Account(*row)


def event_from_row(
    row: dict[str, Any], overrides: Sequence[Override] = (), attendees: Sequence[Attendee] = ()
) -> EventData:
    return EventData(
        uid=row["uid"],
        summary=row["summary"],
        description=row["description"],
        location=row["location"],
        start=row["start_at"],
        end=row["end_at"],
        tz=row["tz"],
        all_day=row["all_day"],
        rrule=row["rrule"],
        exdates=tuple(row["exdates"] or ()),
        overrides=tuple(overrides),
        status=row["status"],
        transparent=row["transparent"],
        organizer=row["organizer"],
        attendees=tuple(attendees),
        sequence=row["sequence"],
        last_modified=row["updated_at"],
    )


async def load_events(
    conn: Conn, where: str, params: Any, limit: int | None = None
) -> list[tuple[dict[str, Any], EventData]]:
    """Events (with their overrides and attendees) of a WHERE clause on `cal_events e`."""
    cur = conn.cursor(row_factory=dict_row)
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    await cur.execute(
        f"SELECT {EVENT_COLUMNS} FROM cal_events e WHERE {where} ORDER BY id{tail}", params
    )
    rows = await cur.fetchall()
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    ov: dict[int, list[Override]] = {}
    cur2 = await conn.execute(
        "SELECT event_id, recurrence_id, start_at, end_at, summary, cancelled FROM cal_overrides "
        "WHERE event_id = ANY (%s) ORDER BY event_id, recurrence_id",
        (ids,),
    )
    for eid, rid, s, e, summ, canc in await cur2.fetchall():
        ov.setdefault(eid, []).append(Override(rid, s, e, summ, canc))
    at: dict[int, list[Attendee]] = {}
    cur3 = await conn.execute(
        "SELECT event_id, email, name, partstat, role FROM cal_attendees "
        "WHERE event_id = ANY (%s) ORDER BY event_id, email",
        (ids,),
    )
    for eid, email, name, partstat, role in await cur3.fetchall():
        at.setdefault(eid, []).append(Attendee(email, name, partstat, role))
    return [(r, event_from_row(r, ov.get(r["id"], ()), at.get(r["id"], ()))) for r in rows]


async def write_content(conn: Conn, event_id: int, ev: EventData) -> None:
    """Store an event's content (fields, overrides, attendees) on its row."""
    await conn.execute(
        "UPDATE cal_events SET summary = %s, description = %s, location = %s, tz = %s, "
        "start_at = %s, end_at = %s, all_day = %s, rrule = %s, exdates = %s, status = %s, "
        "updated_at = now() WHERE id = %s",
        (
            ev.summary,
            ev.description,
            ev.location,
            ev.tz,
            ev.start,
            ev.end,
            ev.all_day,
            ev.rrule,
            list(ev.exdates),
            ev.status,
            event_id,
        ),
    )
    await replace_overrides(conn, event_id, ev.overrides)
    await replace_attendees(conn, event_id, ev.attendees)


async def replace_overrides(conn: Conn, event_id: int, overrides: Iterable[Override]) -> None:
    await conn.execute("DELETE FROM cal_overrides WHERE event_id = %s", (event_id,))
    rows = [(event_id, o.recurrence_id, o.start, o.end, o.summary, o.cancelled) for o in overrides]
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO cal_overrides (event_id, recurrence_id, start_at, end_at, summary, "
                "cancelled) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                rows,
            )


async def replace_attendees(conn: Conn, event_id: int, attendees: Iterable[Attendee]) -> None:
    """Keep contact links and reply times of attendees that stay; link new ones to the
    contact with their e-mail address."""
    wanted = {a.email.lower(): a for a in attendees}
    cur = await conn.execute(
        "SELECT email, partstat FROM cal_attendees WHERE event_id = %s", (event_id,)
    )
    have = {r[0]: r[1] for r in await cur.fetchall()}
    gone = [e for e in have if e not in wanted]
    if gone:
        await conn.execute(
            "DELETE FROM cal_attendees WHERE event_id = %s AND email = ANY (%s)", (event_id, gone)
        )
    for email, a in wanted.items():
        await conn.execute(
            """
            INSERT INTO cal_attendees (event_id, email, name, role, partstat, contact_id, replied_at)
            VALUES (%(e)s, %(email)s, %(name)s, %(role)s, %(ps)s,
                    (SELECT id FROM contacts WHERE email_normalized = %(email)s AND merged_into_id IS NULL ORDER BY id LIMIT 1),
                    CASE WHEN %(ps)s <> 'NEEDS-ACTION' THEN now() END)
            ON CONFLICT (event_id, email) DO UPDATE SET
                name = EXCLUDED.name, role = EXCLUDED.role, partstat = EXCLUDED.partstat,
                replied_at = CASE WHEN cal_attendees.partstat IS DISTINCT FROM EXCLUDED.partstat
                                  THEN now() ELSE cal_attendees.replied_at END
            """,
            {"e": event_id, "email": email, "name": a.name, "role": a.role, "ps": a.partstat},
        )


def base_json(ev: EventData) -> Jsonb:
    return Jsonb(ev.content())
