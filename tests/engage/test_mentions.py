"""@mentions in an internal note notify the mentioned users who may see the conversation."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import psycopg
from psycopg import AsyncConnection

from engage import conversations
from engage.mentions import mentioned_names
from engage.timeline import Link
from tests.engage.conftest import MailWorld
from tests.world import People


def test_mention_tokens_are_addresses_local_parts_or_names() -> None:
    text = "@Ann please call; cc @bob.smith@acme.test and @ann again. mail x@y.test, @@z"
    assert mentioned_names(text) == ["ann", "bob.smith@acme.test"]


def test_a_note_notifies_mentioned_users_who_may_see_the_conversation(
    db_dsn: str, people: People, app_url: str, mail_world: MailWorld
) -> None:
    w = mail_world

    async def start_conversation() -> int:
        async with await AsyncConnection.connect(db_dsn) as conn:
            conv = await conversations.conversation_for(
                conn,
                link=Link(contact_id=w.contact_id),
                channel="email",
                subject=f"Pump noise {w.tag}",
                refs=[],
                address=w.contact_address,
            )
            await conn.commit()
            return conv

    conv = asyncio.run(start_conversation())
    manager_local = f"mgr-{people.suffix}"  # the contact's territory: may see it
    rep2_address = f"rep2-{people.suffix}@x.test"  # the other territory: may not

    async def post_note() -> dict[str, Any]:
        async with aiohttp.ClientSession() as http:
            r = await http.post(
                f"{app_url}/api/v1/engage/conversations/{conv}/notes",
                json={
                    "body": f"@{manager_local} can you take this? not @{rep2_address} nor @ghost"
                },
                headers=people.headers("admin"),
            )
            assert r.status == 201, await r.text()
            return dict(await r.json())

    note = asyncio.run(post_note())
    assert note["mentioned_user_ids"] == [people.users["manager"]]
    with psycopg.connect(db_dsn) as conn:
        rows = conn.execute(
            "SELECT user_id, kind, link FROM notifications WHERE dedupe_key = %s",
            (f"engage-note:{note['id']}",),
        ).fetchall()
    assert rows == [
        (people.users["manager"], "engage_mention", f"/engage/inbox/#conversation-{conv}")
    ]
