"""ICS file import: a calendar file's events become the user's activities and events.

Limits: the file's size (the route's body limit, MAX_IMPORT_BYTES) and its number of
events (MAX_IMPORT_EVENTS: a file with more is refused whole, nothing imported). Each
event is read on its own: a bad one is reported with its line (of its BEGIN:VEVENT) and
UID, the good ones are kept. An event is keyed by its UID, so importing the same file
twice updates instead of duplicating.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from calendars.ical import ImportProblem, assemble, parse_one_block, split_events
from calendars.model import CalendarError, EventData
from calendars.store import Conn, load_events, write_content
from crm import store as crm_store
from crm.entities import ACTIVITIES
from kernel.errors import ApiError, Unprocessable
from kernel.principal import Principal

MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_IMPORT_EVENTS = 2000
IMPORT_SOURCE = "ics-import"


@dataclass(slots=True)
class ImportResult:
    created: int = 0
    updated: int = 0
    problems: list[ImportProblem] = field(default_factory=list)


async def _create(conn: Conn, principal: Principal, ev: EventData) -> None:
    ref = f"{principal.user_id}:{ev.uid}"[:200]
    cur = await conn.execute(
        "SELECT id FROM activities WHERE source = %s AND source_ref = %s", (IMPORT_SOURCE, ref)
    )
    found = await cur.fetchone()
    if found is not None:
        act_id = int(found[0])
    else:
        act = await crm_store.create_record(
            conn,
            ACTIVITIES,
            principal,
            {
                "type": "meeting",
                "subject": ev.summary[:500],
                "body": ev.description or None,
                "start_at": ev.start,
                "end_at": ev.end,
                "tz": ev.tz,
                "status": "cancelled" if ev.status == "CANCELLED" else "open",
                "source": IMPORT_SOURCE,
                "source_ref": ref,
            },
        )
        act_id = int(act["id"])
    cur = await conn.execute(
        "INSERT INTO cal_events (owner_id, uid, kind, source_key, activity_id, start_at, end_at) "
        "VALUES (%s, %s, 'activity', %s, %s, %s, %s) "
        "ON CONFLICT (owner_id, source_key) DO UPDATE SET uid = EXCLUDED.uid RETURNING id",
        (principal.user_id, ev.uid, f"activity:{act_id}", act_id, ev.start, ev.end),
    )
    row = await cur.fetchone()
    assert row is not None
    await write_content(conn, int(row[0]), ev)


async def _update(conn: Conn, principal: Principal, row: dict[str, Any], ev: EventData) -> None:
    await write_content(conn, row["id"], ev)
    await conn.execute(
        "UPDATE cal_events SET local_rev = local_rev + 1, deleted = false WHERE id = %s",
        (row["id"],),
    )
    if row["activity_id"] is not None:
        await crm_store.update_record(
            conn,
            ACTIVITIES,
            principal,
            row["activity_id"],
            {
                "subject": ev.summary[:500],
                "body": ev.description or None,
                "start_at": ev.start,
                "end_at": ev.end,
                "tz": ev.tz,
            },
            None,
            check_etag=False,
        )


async def import_ics(
    conn: Conn, principal: Principal, data: bytes, default_tz: str = "UTC"
) -> ImportResult:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unprocessable(f"the file is not UTF-8: {exc}") from None
    if "BEGIN:VCALENDAR" not in text.upper():
        raise Unprocessable("the file is not an iCalendar file (no BEGIN:VCALENDAR)")
    zones, blocks, problems = split_events(text)
    if len(blocks) > MAX_IMPORT_EVENTS:
        raise Unprocessable(
            f"the file has {len(blocks)} events; at most {MAX_IMPORT_EVENTS} are imported at once"
        )
    result = ImportResult(problems=list(problems))
    # one UID's master and moved instances may be separate blocks: group them first
    groups: dict[str, tuple[int, list[Any]]] = {}
    for line, block, uids in blocks:
        uid = uids[0] if uids else None
        try:
            comps = parse_one_block(zones, block, default_tz)
        except CalendarError as exc:
            result.problems.append(ImportProblem(line, uid, str(exc)))
            continue
        if not comps or not uid:
            result.problems.append(ImportProblem(line, uid, "VEVENT without a UID"))
            continue
        _first, have = groups.setdefault(uid, (line, []))
        have.extend(comps)
    for uid, (line, comps) in groups.items():
        try:
            ev = assemble(comps, default_tz)
        except CalendarError as exc:
            result.problems.append(ImportProblem(line, uid, str(exc)))
            continue
        try:
            async with conn.transaction():
                existing = await load_events(
                    conn, "owner_id = %s AND uid = %s", (principal.user_id, ev.uid)
                )
                if existing:
                    await _update(conn, principal, existing[0][0], ev)
                    result.updated += 1
                else:
                    await _create(conn, principal, ev)
                    result.created += 1
        except ApiError as exc:
            result.problems.append(ImportProblem(line, uid, exc.message))
    result.problems.sort(key=lambda p: p.line)
    return result
