"""ICS subscription feeds: a secret URL per user or per team that calendar apps poll
without a login.

The URL carries a 256-bit random token; only its SHA-256 is stored (like API tokens), so
the database cannot give the URL away. Revoking sets `revoked_at`, and the URL then
answers 404 like one that never existed. A user feed holds the user's calendar; a team
feed the calendars of the manager's whole team (users.manager_id, recursively). Events
carry a VTIMEZONE for each zone; attendees' addresses are left out of feeds (a feed URL
is a secret that is easy to share).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from calendars.ical import to_ics
from calendars.project import project
from calendars.store import Conn, load_events
from identity.auth import load_principal

FEED_DAYS_BACK = 90
MAX_FEED_EVENTS = 5000


@dataclass(frozen=True, slots=True)
class Feed:
    id: int
    scope: str
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_feed(
    conn: Conn, scope: str, user_id: int, created_by: int, name: str = ""
) -> tuple[Feed, str]:
    token = f"fmcal_{secrets.token_urlsafe(32)}"
    cur = await conn.execute(
        "INSERT INTO cal_feeds (scope, user_id, name, token_hash, prefix, created_by) "
        "VALUES (%s, %s, %s, %s, %s, %s) "
        "RETURNING id, scope, user_id, name, prefix, created_at, revoked_at",
        (scope, user_id, name, token_hash(token), token[:10], created_by),
    )
    row = await cur.fetchone()
    assert row is not None
    return Feed(*row), token


async def list_feeds(conn: Conn, user_ids: list[int] | None) -> list[Feed]:
    """Feeds of these users (None: every feed)."""
    cur = await conn.execute(
        "SELECT id, scope, user_id, name, prefix, created_at, revoked_at FROM cal_feeds "
        "WHERE %(all)s OR user_id = ANY (%(users)s) ORDER BY id",
        {"all": user_ids is None, "users": user_ids or []},
    )
    return [Feed(*r) for r in await cur.fetchall()]


async def get_feed(conn: Conn, feed_id: int) -> Feed | None:
    cur = await conn.execute(
        "SELECT id, scope, user_id, name, prefix, created_at, revoked_at FROM cal_feeds "
        "WHERE id = %s",
        (feed_id,),
    )
    row = await cur.fetchone()
    return None if row is None else Feed(*row)


async def revoke(conn: Conn, feed_id: int) -> None:
    await conn.execute(
        "UPDATE cal_feeds SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s", (feed_id,)
    )


async def resolve(conn: Conn, token: str) -> Feed | None:
    """The live feed of a token (None when unknown or revoked)."""
    if not token.startswith("fmcal_") or len(token) > 100:
        return None
    cur = await conn.execute(
        "SELECT id, scope, user_id, name, prefix, created_at, revoked_at FROM cal_feeds "
        "WHERE token_hash = %s AND revoked_at IS NULL",
        (token_hash(token),),
    )
    row = await cur.fetchone()
    return None if row is None else Feed(*row)


async def feed_ics(conn: Conn, feed: Feed, tenant: str) -> str:
    """The feed's calendar now (the CRM projected first, so a user who does not sync
    their calendar still has a feed)."""
    users = [feed.user_id]
    if feed.scope == "team":
        p = await load_principal(conn, feed.user_id)
        users = list(p.team_user_ids) if p is not None else []
    events = []
    async with conn.transaction():
        for uid in users:
            await project(conn, uid, tenant, None)
        cur = await conn.execute("SELECT now()")
        now_row = await cur.fetchone()
        assert now_row is not None
        since = now_row[0] - timedelta(days=FEED_DAYS_BACK)
        rows = await load_events(
            conn,
            "owner_id = ANY (%s) AND NOT deleted AND (end_at >= %s OR rrule IS NOT NULL)",
            (users, since),
            limit=MAX_FEED_EVENTS,
        )
    for _, ev in rows:
        events.append(replace(ev, attendees=(), organizer=None))
    name = f"fieldmesh {feed.scope} {feed.name or feed.user_id}"
    return to_ics(events, method="PUBLISH", name=name)
