"""Completed site visits become CRM activities (the bridge from geo to crm).

One activity per visit, idempotent on (source 'geo', source_ref 'visit:<id>'): replaying
the same check-out never logs a visit twice. The account's last_visit_at moves forward.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

SOURCE = "geo"


def format_duration(duration_s: float) -> str:
    minutes = round(duration_s / 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def utc_text(t: datetime) -> str:
    """A time in stored text, read by people in any zone: to the second, in UTC, named
    (not ISO 8601 with microseconds and an offset)."""
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def log_visit_activity(
    conn: psycopg.Connection,
    *,
    visit_id: int,
    account_id: int,
    rep_id: int | None,
    arrived_at: datetime,
    departed_at: datetime,
    device_id: str,
) -> int:
    """Insert (or find) the activity for a completed visit; returns the activity id."""
    duration_s = (departed_at - arrived_at).total_seconds()
    body = (
        f"Arrival {utc_text(arrived_at)}\n"
        f"Departure {utc_text(departed_at)}\n"
        f"Duration {format_duration(duration_s)} ({duration_s:.0f} s)\n"
        f"Recorded from the geofence around the site (device {device_id})."
    )
    row = conn.execute(
        """
        INSERT INTO activities (type, subject, body, status, start_at, end_at, account_id,
                                owner_id, territory_id, source, source_ref, completed_at)
        SELECT 'meeting', 'Site visit (' || %(duration)s || ')', %(body)s, 'done', %(arrived)s,
               %(departed)s, a.id, %(rep)s, a.territory_id, %(source)s, %(ref)s, %(departed)s
        FROM accounts a WHERE a.id = %(account)s
        ON CONFLICT (source, source_ref) WHERE source_ref IS NOT NULL DO NOTHING
        RETURNING id
        """,
        {
            "duration": format_duration(duration_s),
            "body": body,
            "arrived": arrived_at,
            "departed": departed_at,
            "rep": rep_id,
            "source": SOURCE,
            "ref": f"visit:{visit_id}",
            "account": account_id,
        },
    ).fetchone()
    if row is None:
        existing = conn.execute(
            "SELECT id FROM activities WHERE source = %s AND source_ref = %s",
            (SOURCE, f"visit:{visit_id}"),
        ).fetchone()
        if existing is None:
            raise LookupError(f"account {account_id} does not exist: visit {visit_id} not logged")
        return int(existing[0])
    conn.execute(
        "UPDATE accounts SET last_visit_at = %s"
        " WHERE id = %s AND (last_visit_at IS NULL OR last_visit_at < %s)",
        (departed_at, account_id, departed_at),
    )
    return int(row[0])
