"""Notify a user, once: the one function every capability calls.

`notify_user` writes the notification in the caller's transaction (so it exists exactly
when the change that caused it commits) and NOTIFYs `CHANNEL` with the user and the id, so
the console's live feed and the delivery channels (Web Push, e-mail) can pick it up after
commit. A second call with the same `dedupe_key` for the same user does nothing and returns
None: reminders, escalations and retried jobs never notify twice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from kernel import jobs

CHANNEL = "fieldmesh_notify"
PUSH_TASK = "notify.push"  # notify/jobs.py
MAX_TITLE = 200
MAX_BODY = 2000
MAX_LINK = 500
MAX_DEDUPE_KEY = 300
_KIND = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class NotificationError(ValueError):
    """A notification that cannot be stored as given (names the field)."""


@dataclass(frozen=True, slots=True)
class Notification:
    notification_id: int
    user_id: int
    kind: str
    title: str
    body: str
    link: str | None
    urgent: bool
    created_at: datetime
    read_at: datetime | None


COLUMNS = "notification_id, user_id, kind, title, body, link, urgent, created_at, read_at"


def _clean(text: str, limit: int, field: str) -> str:
    """Control characters go (they break terminals and push payloads); over-long text is
    cut at the limit with an ellipsis rather than refused, since the caller is our code."""
    text = _CONTROL.sub("", text).strip()
    if field == "title" and not text:
        raise NotificationError("title: must not be empty")
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def notify_user(
    conn: AsyncConnection[Any],
    *,
    user_id: int,
    kind: str,
    title: str,
    body: str = "",
    link: str | None = None,
    urgent: bool = False,
    dedupe_key: str,
) -> int | None:
    """Store a notification for `user_id` unless one with `dedupe_key` exists; the id, or
    None when it was already there. `link` is a path inside fieldmesh (e.g.
    `/console/work-orders/12`), never an outside URL, so a tap cannot lead elsewhere."""
    if not _KIND.match(kind):
        raise NotificationError(f"kind: {kind!r} is not a lower-case key")
    if link is not None and (not link.startswith("/") or link.startswith("//")):
        raise NotificationError("link: must be a path inside fieldmesh, starting with one '/'")
    if link is not None and len(link) > MAX_LINK:
        raise NotificationError(f"link: longer than {MAX_LINK} characters")
    if not dedupe_key or len(dedupe_key) > MAX_DEDUPE_KEY:
        raise NotificationError(f"dedupe_key: must have 1 to {MAX_DEDUPE_KEY} characters")
    cur = await conn.execute(
        """
        INSERT INTO notifications (user_id, kind, title, body, link, urgent, dedupe_key)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (user_id, dedupe_key) DO NOTHING
        RETURNING notification_id
        """,
        (
            user_id,
            kind,
            _clean(title, MAX_TITLE, "title"),
            _clean(body, MAX_BODY, "body"),
            link,
            urgent,
            dedupe_key,
        ),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    nid = int(row[0])
    payload = json.dumps({"user_id": user_id, "notification_id": nid, "kind": kind})
    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
    # Web Push (notify.push, notify/jobs.py): queued in this transaction, for users with a
    # subscribed device only
    cur = await conn.execute(
        "SELECT 1 FROM push_subscriptions WHERE user_id = %s LIMIT 1", (user_id,)
    )
    if await cur.fetchone() is not None:
        await jobs.enqueue(conn, PUSH_TASK, {"notification_id": nid}, max_attempts=8)
    return nid


def _from_row(r: tuple[Any, ...]) -> Notification:
    return Notification(*r)


async def list_for_user(
    conn: AsyncConnection[Any],
    user_id: int,
    *,
    unread_only: bool = False,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Notification]:
    """Newest first; `before_id` pages backwards (keyset, stable under new arrivals)."""
    cur = await conn.execute(
        f"""
        SELECT {COLUMNS} FROM notifications
        WHERE user_id = %s AND (NOT %s OR read_at IS NULL)
          AND (%s::bigint IS NULL OR notification_id < %s)
        ORDER BY notification_id DESC LIMIT %s
        """,
        (user_id, unread_only, before_id, before_id, limit),
    )
    return [_from_row(r) for r in await cur.fetchall()]


async def unread_count(conn: AsyncConnection[Any], user_id: int) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM notifications WHERE user_id = %s AND read_at IS NULL", (user_id,)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def get_for_user(
    conn: AsyncConnection[Any], user_id: int, notification_id: int
) -> Notification | None:
    cur = await conn.execute(
        f"SELECT {COLUMNS} FROM notifications WHERE notification_id = %s AND user_id = %s",
        (notification_id, user_id),
    )
    row = await cur.fetchone()
    return _from_row(row) if row else None


async def mark_read(conn: AsyncConnection[Any], user_id: int, notification_id: int) -> bool:
    """False when the notification is not the user's (or does not exist)."""
    cur = await conn.execute(
        """
        UPDATE notifications SET read_at = coalesce(read_at, now())
        WHERE notification_id = %s AND user_id = %s RETURNING notification_id
        """,
        (notification_id, user_id),
    )
    return await cur.fetchone() is not None


async def mark_all_read(conn: AsyncConnection[Any], user_id: int) -> int:
    cur = await conn.execute(
        "UPDATE notifications SET read_at = now() WHERE user_id = %s AND read_at IS NULL",
        (user_id,),
    )
    return cur.rowcount
