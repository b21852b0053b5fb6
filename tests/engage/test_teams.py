"""Conversations assigned to teams: mail to a team's address lands in its queue, and a
conversation moves between teams and users."""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiohttp
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from engage import imap_sync, mailboxes
from kernel.settings import Settings
from tests.engage.conftest import MailWorld
from tests.world import People


def test_mail_to_a_team_lands_in_its_queue_and_moves_between_teams(
    db_dsn: str, test_settings: Settings, people: People, app_url: str, mail_world: MailWorld
) -> None:
    w = mail_world
    tag = uuid.uuid4().hex[:8]

    async def teams() -> tuple[int, int]:
        async with await AsyncConnection.connect(db_dsn) as conn:
            ids = []
            for name in ("support", "sales"):
                box = await mailboxes.connect_mailbox(
                    conn, test_settings, address=f"{name}-{tag}@acme.test", kind="team"
                )
                ids.append(int(box["id"]))
            await conn.commit()
            return ids[0], ids[1]

    support, sales = asyncio.run(teams())
    msg = EmailMessage()
    msg["From"] = w.contact_address
    msg["To"] = f"support-{tag}@acme.test"
    msg["Subject"] = f"Leaking valve {tag}"
    msg["Message-ID"] = make_msgid(domain="cust.test")
    msg.set_content("The valve leaks again.")
    with smtplib.SMTP("127.0.0.1", test_settings.smtp_port) as s:
        s.send_message(msg)

    async def scenario() -> None:
        async with AsyncConnectionPool(db_dsn, min_size=1, max_size=2, open=False) as pool:
            await imap_sync.sync_mailbox(pool, test_settings, support)
        base = f"{app_url}/api/v1/engage/conversations"
        h = people.headers("admin")
        async with aiohttp.ClientSession() as http:
            r = await http.get(base, params={"team_mailbox_id": str(support)}, headers=h)
            queue: list[dict[str, Any]] = await r.json()
            assert [c["subject"] for c in queue] == [f"leaking valve {tag}"]  # normalised
            conv = queue[0]["id"]
            r = await http.patch(
                f"{base}/{conv}",
                json={"team_mailbox_id": sales, "assignee_user_id": people.users["rep1"]},
                headers=h,
            )
            assert r.status == 200, await r.text()
            body = await r.json()
            assert (body["team_mailbox_id"], body["assignee_user_id"]) == (
                sales,
                people.users["rep1"],
            )
            r = await http.get(base, params={"team_mailbox_id": str(support)}, headers=h)
            assert await r.json() == []
            r = await http.patch(
                f"{base}/{conv}", json={"team_mailbox_id": w.mailbox_id}, headers=h
            )
            assert r.status == 422  # a user's mailbox is not a team
            assert (await r.json())["error"]["field"] == "team_mailbox_id"

    asyncio.run(scenario())
