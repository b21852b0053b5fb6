"""What of the CRM goes into a user's calendar: the projection of CRM records onto
`cal_events`, run at the start of every sync round.

- activities the user owns that have a time (meetings, calls, tasks: start_at, else
  due_at; 30 minutes when they have no end);
- work orders assigned to the user with a scheduled start (CRM-owned: see merge.py);
- the user's planned visits: stops of the newest ready routing plan per territory and
  day, from 30 days back (a stop of a work order that already has its own event is left
  out);
- visit cadences: an account the user owns with `visit_frequency_days` appears as one
  recurring, transparent event (FREQ=DAILY;INTERVAL=n) from the next due day, at the
  start of the user's shift in their zone: a reminder, not busy time.

An event whose content changed gets `local_rev + 1` (the push step sends it); one whose
record is gone or no longer qualifies is marked `deleted` (the push step deletes it on
the server). Activities are compared in SQL, and only those changed since the last
projection (with an overlap for transactions that committed late), so an idle round
costs a few indexed queries whatever the calendar's size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.rows import dict_row

from calendars.model import CalendarError, EventData, zone
from calendars.store import Conn, load_events

ACTIVITY_TYPES = ("meeting", "call", "task")
OVERLAP = timedelta(minutes=10)
VISIT_DAYS_BACK = 30


def uid_for(tenant: str, kind: str, key: str) -> str:
    return f"fieldmesh-{tenant}-{kind}-{key}@fieldmesh"


def _tz(name: str) -> str:
    try:
        zone(name)
        return name
    except CalendarError:
        return "UTC"


@dataclass(slots=True)
class ProjectionStats:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    as_of: datetime | None = None


# What changed since the watermark, each side by its own index (crm c2004): the user's
# activities updated since, and those at accounts updated since (their address is the
# event's location); an OR of the two would scan every activity of the user each round.
_ACTIVITY_SQL = """
WITH changed AS (
    SELECT a.id FROM activities a
    WHERE a.owner_id = %(u)s
      AND (%(since)s::timestamptz IS NULL OR a.updated_at > %(since)s)
    UNION
    SELECT a.id FROM accounts acc JOIN activities a ON a.account_id = acc.id
    WHERE %(since)s::timestamptz IS NOT NULL AND acc.updated_at > %(since)s
      AND a.owner_id = %(u)s
),
src AS (
    SELECT a.id, left(a.subject, 500) AS summary, coalesce(a.body, '') AS description,
           coalesce(acc.address, '') AS location, a.tz,
           coalesce(a.start_at, a.due_at) AS s,
           greatest(coalesce(a.end_at, coalesce(a.start_at, a.due_at) + interval '30 minutes'),
                    coalesce(a.start_at, a.due_at)) AS e,
           a.status AS crm_status, a.account_id
    FROM changed c JOIN activities a ON a.id = c.id
    LEFT JOIN accounts acc ON acc.id = a.account_id
    WHERE a.type = ANY (%(types)s) AND coalesce(a.start_at, a.due_at) IS NOT NULL
)
SELECT src.*, ev.id AS event_id, ev.status AS event_status,
       CASE WHEN src.crm_status = 'cancelled' THEN 'CANCELLED'
            WHEN ev.status = 'TENTATIVE' THEN 'TENTATIVE' ELSE 'CONFIRMED' END AS status
FROM src LEFT JOIN cal_events ev ON ev.activity_id = src.id AND ev.owner_id = %(u)s
WHERE ev.id IS NULL OR ev.deleted
   OR (ev.summary, ev.description, ev.tz, ev.start_at, ev.end_at)
      IS DISTINCT FROM (src.summary, src.description, src.tz, src.s, src.e)
   OR ev.status IS DISTINCT FROM (CASE WHEN src.crm_status = 'cancelled' THEN 'CANCELLED'
            WHEN ev.status = 'TENTATIVE' THEN 'TENTATIVE' ELSE 'CONFIRMED' END)
"""

_ACTIVITY_ORPHANS_SQL = """
UPDATE cal_events e SET deleted = true, updated_at = now()
WHERE e.owner_id = %(u)s AND e.kind = 'activity' AND NOT e.deleted AND NOT EXISTS (
    SELECT 1 FROM activities a
    WHERE a.id = e.activity_id AND a.owner_id = e.owner_id AND a.type = ANY (%(types)s)
      AND coalesce(a.start_at, a.due_at) IS NOT NULL)
RETURNING e.id
"""


# Every qualifying activity has exactly one event (unique per owner and source key) once
# _ACTIVITY_SQL ran, so the two counts are equal exactly when no event lost its activity
# (deleted, reassigned, no longer timed): two index counts instead of the anti-join
# over every event of the user, which an idle round cannot afford at 10,000 events.
_ACTIVITY_COUNTS_SQL = """
SELECT (SELECT count(*) FROM cal_events e
        WHERE e.owner_id = %(u)s AND e.kind = 'activity' AND NOT e.deleted),
       (SELECT count(*) FROM activities a
        WHERE a.owner_id = %(u)s AND a.type = ANY (%(types)s)
          AND coalesce(a.start_at, a.due_at) IS NOT NULL)
"""


async def _activities(
    conn: Conn, user_id: int, tenant: str, since: datetime | None, sweep: bool = True
) -> ProjectionStats:
    st = ProjectionStats()
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_ACTIVITY_SQL, {"u": user_id, "types": list(ACTIVITY_TYPES), "since": since})
    for r in await cur.fetchall():
        tz = _tz(r["tz"])
        values = (
            r["summary"] or "(no title)",
            r["description"],
            r["location"],
            tz,
            r["s"],
            r["e"],
            r["status"],
            r["account_id"],
        )
        if r["event_id"] is None:
            await conn.execute(
                """
                INSERT INTO cal_events (owner_id, uid, kind, source_key, activity_id, summary,
                    description, location, tz, start_at, end_at, status, account_id)
                VALUES (%s, %s, 'activity', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (owner_id, source_key) DO UPDATE SET
                    activity_id = EXCLUDED.activity_id, deleted = false,
                    summary = EXCLUDED.summary, description = EXCLUDED.description,
                    location = EXCLUDED.location, tz = EXCLUDED.tz,
                    start_at = EXCLUDED.start_at, end_at = EXCLUDED.end_at,
                    status = EXCLUDED.status, local_rev = cal_events.local_rev + 1,
                    updated_at = now()
                """,
                (
                    user_id,
                    uid_for(tenant, "activity", str(r["id"])),
                    f"activity:{r['id']}",
                    r["id"],
                    *values,
                ),
            )
            st.created += 1
        else:
            # the location is the account's address when the event is made, the
            # event's own field after that (a meeting room set in the calendar stays)
            await conn.execute(
                "UPDATE cal_events SET summary = %s, description = %s, tz = %s, "
                "start_at = %s, end_at = %s, status = %s, account_id = %s, deleted = false, "
                "local_rev = local_rev + 1, updated_at = now() WHERE id = %s",
                (values[0], values[1], *values[3:], r["event_id"]),
            )
            st.updated += 1
    params = {"u": user_id, "types": list(ACTIVITY_TYPES)}
    if not sweep:
        cur2 = await conn.execute(_ACTIVITY_COUNTS_SQL, params)
        counts = await cur2.fetchone()
        sweep = counts is None or counts[0] != counts[1]
    if sweep:
        cur2 = await conn.execute(_ACTIVITY_ORPHANS_SQL, params)
        st.deleted += len(await cur2.fetchall())
    return st


# --------------------------------------------------------------------------- CRM-owned kinds

_WORK_ORDERS_SQL = """
SELECT w.id, w.title, coalesce(w.description, '') AS description, w.status,
       w.scheduled_start AS s,
       greatest(coalesce(w.scheduled_end,
                         w.scheduled_start + make_interval(mins => w.estimated_duration_min)),
                w.scheduled_start) AS e,
       coalesce(acc.address, acc.name, '') AS location, w.account_id, acc.name AS account
FROM work_orders w LEFT JOIN accounts acc ON acc.id = w.account_id
WHERE w.assignee_id = %(u)s AND w.scheduled_start IS NOT NULL
"""

_VISITS_SQL = """
WITH latest AS (
    SELECT DISTINCT ON (territory_id, plan_date) id
    FROM routing_plans
    WHERE status = 'ready' AND plan_date >= current_date - %(days)s
    ORDER BY territory_id, plan_date, id DESC
)
SELECT s.plan_id, s.visit_key, s.seq, s.service_start AS s, s.service_end AS e,
       s.account_id, acc.name AS account, coalesce(acc.address, '') AS location,
       s.travel_s, s.distance_m
FROM routing_stops s JOIN latest ON latest.id = s.plan_id
LEFT JOIN accounts acc ON acc.id = s.account_id
LEFT JOIN work_orders w ON w.id = s.work_order_id
WHERE s.rep_id = %(u)s
  AND NOT (w.id IS NOT NULL AND w.assignee_id = %(u)s AND w.scheduled_start IS NOT NULL)
"""

_CADENCE_SQL = """
SELECT acc.id, acc.name, coalesce(acc.address, '') AS location, acc.visit_frequency_days AS days,
       coalesce(acc.last_visit_at, acc.created_at) AS since_at, u.timezone, u.shift_start
FROM accounts acc JOIN users u ON u.id = acc.owner_id
WHERE acc.owner_id = %(u)s AND acc.visit_frequency_days IS NOT NULL
"""


def _cadence_event(uid: str, r: dict[str, Any]) -> EventData:
    tz = _tz(r["timezone"])
    z = zone(tz)
    due = (r["since_at"].astimezone(z) + timedelta(days=int(r["days"]))).date()
    start = datetime.combine(due, r["shift_start"], tzinfo=z).astimezone(UTC)
    return EventData(
        uid=uid,
        summary=f"Visit due: {r['name']} (every {r['days']} days)",
        location=r["location"],
        start=start,
        end=start + timedelta(hours=1),
        tz=tz,
        rrule=f"FREQ=DAILY;INTERVAL={int(r['days'])}",
        transparent=True,
    )


async def _desired_crm_owned(
    conn: Conn, user_id: int, tenant: str, user_tz: str
) -> dict[str, tuple[str, EventData, dict[str, Any]]]:
    out: dict[str, tuple[str, EventData, dict[str, Any]]] = {}
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_WORK_ORDERS_SQL, {"u": user_id})
    for r in await cur.fetchall():
        key = f"work_order:{r['id']}"
        ev = EventData(
            uid=uid_for(tenant, "work-order", str(r["id"])),
            summary=f"Work order {r['id']}: {r['title']}",
            description=r["description"],
            location=r["location"],
            start=r["s"],
            end=r["e"],
            tz=user_tz,
            status="CANCELLED" if r["status"] == "cancelled" else "CONFIRMED",
        )
        out[key] = ("work_order", ev, {"work_order_id": r["id"], "account_id": r["account_id"]})
    await cur.execute(_VISITS_SQL, {"u": user_id, "days": VISIT_DAYS_BACK})
    for r in await cur.fetchall():
        key = f"visit:{r['plan_id']}:{r['visit_key']}"
        ev = EventData(
            uid=uid_for(tenant, "visit", f"{r['plan_id']}-{r['visit_key']}"),
            summary=f"Visit {r['seq']}: {r['account'] or r['visit_key']}",
            description=(
                f"Planned stop {r['seq']} of routing plan {r['plan_id']}; travel "
                f"{r['travel_s'] / 60:.0f} min ({r['distance_m'] / 1000:.1f} km) from the previous stop."
            ),
            location=r["location"],
            start=r["s"],
            end=r["e"],
            tz=user_tz,
        )
        out[key] = ("visit", ev, {"account_id": r["account_id"]})
    await cur.execute(_CADENCE_SQL, {"u": user_id})
    for r in await cur.fetchall():
        key = f"cadence:{r['id']}"
        out[key] = (
            "cadence",
            _cadence_event(uid_for(tenant, "cadence", str(r["id"])), r),
            {"account_id": r["id"]},
        )
    return out


async def _crm_owned(conn: Conn, user_id: int, tenant: str, user_tz: str) -> ProjectionStats:
    st = ProjectionStats()
    desired = await _desired_crm_owned(conn, user_id, tenant, user_tz)
    existing = {
        row["source_key"]: (row, ev)
        for row, ev in await load_events(
            conn, "owner_id = %s AND kind <> 'activity' AND NOT deleted", (user_id,)
        )
    }
    for key, (kind, ev, links) in desired.items():
        have = existing.pop(key, None)
        if have is None:
            await conn.execute(
                """
                INSERT INTO cal_events (owner_id, uid, kind, source_key, work_order_id, account_id,
                    summary, description, location, tz, start_at, end_at, rrule, status,
                    transparent)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (owner_id, source_key) DO UPDATE SET deleted = false,
                    summary = EXCLUDED.summary, description = EXCLUDED.description,
                    location = EXCLUDED.location, tz = EXCLUDED.tz, start_at = EXCLUDED.start_at,
                    end_at = EXCLUDED.end_at, rrule = EXCLUDED.rrule, status = EXCLUDED.status,
                    local_rev = cal_events.local_rev + 1, updated_at = now()
                """,
                (
                    user_id,
                    ev.uid,
                    kind,
                    key,
                    links.get("work_order_id"),
                    links.get("account_id"),
                    ev.summary,
                    ev.description,
                    ev.location,
                    ev.tz,
                    ev.start,
                    ev.end,
                    ev.rrule,
                    ev.status,
                    ev.transparent,
                ),
            )
            st.created += 1
            continue
        row, current = have
        # attendees, overrides and exdates of CRM-owned events are not the CRM's business
        wanted = replace(
            ev,
            attendees=current.attendees,
            overrides=current.overrides if ev.rrule else (),
            exdates=current.exdates if ev.rrule else (),
        )
        if wanted.content() != current.content():
            from calendars.store import write_content

            await write_content(conn, row["id"], wanted)
            await conn.execute(
                "UPDATE cal_events SET local_rev = local_rev + 1 WHERE id = %s", (row["id"],)
            )
            st.updated += 1
    for row, _ in existing.values():
        await conn.execute(
            "UPDATE cal_events SET deleted = true, updated_at = now() WHERE id = %s", (row["id"],)
        )
        st.deleted += 1
    return st


# Whether anything the CRM-owned kinds come from changed since the last projection (one
# round trip; otherwise the three queries of _desired_crm_owned are skipped). A day
# boundary also counts: planned visits age out of the window by date alone.
_CRM_OWNED_CHANGED_SQL = """
SELECT u.timezone, now(),
       %(since)s::timestamptz IS NULL
       OR date_trunc('day', %(since)s::timestamptz) < date_trunc('day', now())
       OR u.updated_at > %(since)s
       OR EXISTS (SELECT 1 FROM work_orders w WHERE w.assignee_id = u.id AND w.updated_at > %(since)s)
       OR EXISTS (SELECT 1 FROM routing_plans p WHERE p.updated_at > %(since)s)
       OR EXISTS (SELECT 1 FROM accounts a WHERE a.owner_id = u.id AND a.updated_at > %(since)s)
       OR EXISTS (SELECT 1 FROM cal_events e
                  LEFT JOIN work_orders w ON w.id = e.work_order_id
                  LEFT JOIN accounts a ON a.id = e.account_id
                  WHERE e.owner_id = u.id AND e.kind <> 'activity' AND NOT e.deleted
                    AND ((e.kind = 'work_order' AND (w.id IS NULL OR w.updated_at > %(since)s))
                         OR (e.kind = 'cadence' AND (a.id IS NULL OR a.updated_at > %(since)s))))
FROM users u WHERE u.id = %(u)s
"""


async def project(conn: Conn, user_id: int, tenant: str, since: datetime | None) -> ProjectionStats:
    """Bring the user's events up to date with the CRM. Each statement stands on its own
    (the projection is idempotent: an interrupted one is redone by the next round); the
    result's `as_of` is the time before anything was read, the next round's `since`."""
    since = None if since is None else since - OVERLAP
    cur = await conn.execute(_CRM_OWNED_CHANGED_SQL, {"u": user_id, "since": since})
    row = await cur.fetchone()
    if row is None:
        return ProjectionStats()
    # the full orphan sweep on a first round, at least daily and when the CRM-owned side
    # changed; otherwise only when the counts say an event lost its activity
    a = await _activities(conn, user_id, tenant, since, sweep=bool(row[2]))
    a.as_of = row[1]
    if not row[2]:
        return a
    b = await _crm_owned(conn, user_id, tenant, _tz(row[0]))
    return ProjectionStats(
        a.created + b.created, a.updated + b.updated, a.deleted + b.deleted, row[1]
    )
