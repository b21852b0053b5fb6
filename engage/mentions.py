"""@mentions in a conversation's internal notes.

A mention is `@` followed by a user's e-mail address (`@ann@acme.test`), the part of it
before the `@` (`@ann`), or their name without spaces (`@AnnLee`), matched without regard
to case. Each mentioned, active user who may see the conversation (the inbox's own access
rule) gets one notification (`notify.service.notify_user`, kind `engage_mention`, deduped
per note and user); a name that matches nobody, or a user who may not see the
conversation, is left as text. At most MAX_MENTIONS distinct names per note count.
"""

from __future__ import annotations

import re
from typing import Any

from psycopg import AsyncConnection

from engage.access import may_see_conversation
from identity.auth import load_principal
from notify.service import notify_user

MAX_MENTIONS = 20
_MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9._%+-]{1,64}(?:@[A-Za-z0-9.-]{1,190}[A-Za-z0-9])?)")


def mentioned_names(text: str) -> list[str]:
    """The distinct mention tokens of a note, in order, lower-cased (pure)."""
    out: list[str] = []
    for m in _MENTION.finditer(text):
        name = m.group(1).rstrip(".").lower()
        if name and name not in out:
            out.append(name)
        if len(out) >= MAX_MENTIONS:
            break
    return out


async def notify_mentions(
    conn: AsyncConnection[Any],
    *,
    conversation_id: int,
    note_id: int,
    author_user_id: int,
    author_name: str,
    text: str,
) -> list[int]:
    """Notify the users a note mentions; the ids of those notified."""
    names = mentioned_names(text)
    if not names:
        return []
    cur = await conn.execute(
        "SELECT id FROM users WHERE active AND id <> %s AND ("
        " lower(email) = ANY(%s) OR lower(split_part(email, '@', 1)) = ANY(%s)"
        " OR lower(replace(name, ' ', '')) = ANY(%s)) ORDER BY id",
        (author_user_id, names, names, names),
    )
    notified: list[int] = []
    for (user_id,) in await cur.fetchall():
        who = await load_principal(conn, int(user_id))
        if who is None or not await may_see_conversation(conn, who, conversation_id):
            continue
        got = await notify_user(
            conn,
            user_id=int(user_id),
            kind="engage_mention",
            title=f"{author_name} mentioned you in a conversation",
            body=text[:300],
            link=f"/engage/inbox/#conversation-{conversation_id}",
            dedupe_key=f"engage-note:{note_id}",
        )
        if got is not None:
            notified.append(int(user_id))
    return notified
