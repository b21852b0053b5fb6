"""The calendars service API: opting in to sync, and events with recurrence and attendees
on top of CRM activities (crm's own rules run for the activity through crm.store)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from calendars import itip, server
from calendars.model import Attendee, CalendarError, Override, utc, zone
from calendars.project import uid_for
from calendars.recurrence import check_rrule
from calendars.store import (
    Account,
    Conn,
    account,
    load_events,
    replace_attendees,
    replace_overrides,
)
from crm import store as crm_store
from crm.entities import ACTIVITIES
from kernel import secretbox
from kernel.errors import NotFound, Unprocessable
from kernel.principal import Principal
from kernel.settings import Settings

MAX_ATTENDEES = 100
MAX_EXDATES = 500
MAX_OVERRIDES = 500


async def opt_in(
    conn: Conn,
    settings: Settings,
    user_id: int,
    *,
    username: str | None = None,
    password: str | None = None,
    calendar_url: str | None = None,
) -> Account:
    """Turn on sync for the user. With the embedded server fieldmesh makes the account
    (and keeps its generated password); with CALDAV_URL the user gives their own."""
    have = await account(conn, user_id)
    if settings.embedded_caldav:
        username = server.username_for(user_id)
        password = server.set_account(
            settings.state_dir,
            username,
            secretbox.open_(settings, have.password) if have is not None else None,
        )
        calendar_url = None
    elif not username or not password:
        if have is None:
            raise Unprocessable(
                "an external CalDAV server (CALDAV_URL) needs your username and password",
                field="username" if not username else "password",
            )
        username, password = have.username, secretbox.open_(settings, have.password)
    await conn.execute(
        """
        INSERT INTO cal_accounts (user_id, server_url, username, password, calendar_url)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (user_id) DO UPDATE SET enabled = true, server_url = EXCLUDED.server_url,
            username = EXCLUDED.username, password = EXCLUDED.password,
            calendar_url = coalesce(EXCLUDED.calendar_url, cal_accounts.calendar_url),
            last_error = NULL, updated_at = now()
        """,
        (
            user_id,
            settings.caldav_base_url,
            username,
            secretbox.seal(settings, password),  # sealed at rest (cal0100)
            calendar_url,
        ),
    )
    got = await account(conn, user_id)
    assert got is not None
    return got


async def opt_out(conn: Conn, user_id: int) -> bool:
    cur = await conn.execute(
        "UPDATE cal_accounts SET enabled = false, updated_at = now() WHERE user_id = %s "
        "RETURNING user_id",
        (user_id,),
    )
    return await cur.fetchone() is not None


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class EventInput:
    subject: str
    start: datetime
    end: datetime
    tz: str = "UTC"
    type: str = "meeting"
    description: str | None = None
    location: str | None = None
    rrule: str | None = None
    exdates: tuple[datetime, ...] = ()
    overrides: tuple[Override, ...] = ()
    attendees: tuple[Attendee, ...] = ()
    account_id: int | None = None
    contact_id: int | None = None


def _check(inp: EventInput) -> None:
    try:
        zone(inp.tz)
    except CalendarError as exc:
        raise Unprocessable(str(exc), field="tz") from None
    if utc(inp.end) < utc(inp.start):
        raise Unprocessable("the event ends before it starts", field="end")
    if inp.rrule is not None:
        try:
            check_rrule(inp.rrule)
        except CalendarError as exc:
            raise Unprocessable(str(exc), field="rrule") from None
    elif inp.exdates or inp.overrides:
        raise Unprocessable("exdates and moved instances need an rrule", field="rrule")
    if len(inp.attendees) > MAX_ATTENDEES:
        raise Unprocessable(f"at most {MAX_ATTENDEES} attendees", field="attendees")
    if len(inp.exdates) > MAX_EXDATES:
        raise Unprocessable(f"at most {MAX_EXDATES} exdates", field="exdates")
    if len(inp.overrides) > MAX_OVERRIDES:
        raise Unprocessable(f"at most {MAX_OVERRIDES} moved instances", field="overrides")
    for o in inp.overrides:
        if o.end < o.start:
            raise Unprocessable("a moved instance ends before it starts", field="overrides")


async def create_event(
    conn: Conn, principal: Principal, tenant: str, inp: EventInput
) -> tuple[int, int]:
    """A CRM activity and its calendar event (recurrence, attendees, invitations); the
    next sync of the owner pushes it. Returns (activity id, event id)."""
    _check(inp)
    values: dict[str, Any] = {
        "type": inp.type,
        "subject": inp.subject,
        "body": inp.description,
        "start_at": utc(inp.start),
        "end_at": utc(inp.end),
        "tz": inp.tz,
    }
    if inp.account_id is not None:
        values["account_id"] = inp.account_id
    if inp.contact_id is not None:
        values["contact_id"] = inp.contact_id
    act = await crm_store.create_record(conn, ACTIVITIES, principal, values)
    owner = int(act["owner_id"])
    cur = await conn.execute(
        """
        INSERT INTO cal_events (owner_id, uid, kind, source_key, activity_id, account_id, summary,
            description, location, tz, start_at, end_at, rrule, exdates)
        VALUES (%s, %s, 'activity', %s, %s, %s, %s, %s,
                coalesce(%s, (SELECT address FROM accounts WHERE id = %s), ''), %s, %s, %s, %s, %s)
        RETURNING id
        """,
        (
            owner,
            uid_for(tenant, "activity", str(act["id"])),
            f"activity:{act['id']}",
            act["id"],
            inp.account_id,
            act["subject"],
            act["body"] or "",
            inp.location,
            inp.account_id,
            inp.tz,
            utc(inp.start),
            utc(inp.end),
            inp.rrule,
            [utc(d) for d in inp.exdates],
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    event_id = int(row[0])
    await replace_overrides(conn, event_id, inp.overrides)
    if inp.attendees:
        await replace_attendees(conn, event_id, inp.attendees)
        await itip.record_invitations(conn, event_id, principal.email.lower())
    return int(act["id"]), event_id


async def event_of_activity(conn: Conn, activity_id: int) -> tuple[dict[str, Any], Any]:
    rows = await load_events(conn, "activity_id = %s AND NOT deleted", (activity_id,))
    if not rows:
        raise NotFound(f"activity {activity_id} has no calendar event")
    return rows[0]


async def change_recurrence(
    conn: Conn,
    event_id: int,
    *,
    rrule: str | None,
    exdates: tuple[datetime, ...],
    overrides: tuple[Override, ...],
) -> None:
    if rrule is not None:
        try:
            check_rrule(rrule)
        except CalendarError as exc:
            raise Unprocessable(str(exc), field="rrule") from None
    await conn.execute(
        "UPDATE cal_events SET rrule = %s, exdates = %s, local_rev = local_rev + 1, "
        "updated_at = now() WHERE id = %s",
        (rrule, [utc(d) for d in exdates], event_id),
    )
    await replace_overrides(conn, event_id, overrides if rrule else ())


async def set_attendees(
    conn: Conn, event_id: int, attendees: tuple[Attendee, ...], organizer: str
) -> int:
    if len(attendees) > MAX_ATTENDEES:
        raise Unprocessable(f"at most {MAX_ATTENDEES} attendees", field="attendees")
    await replace_attendees(conn, event_id, attendees)
    await conn.execute(
        "UPDATE cal_events SET local_rev = local_rev + 1, updated_at = now() WHERE id = %s",
        (event_id,),
    )
    return await itip.record_invitations(conn, event_id, organizer)
