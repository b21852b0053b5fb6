"""Who sees which mailbox: a person's mailbox (address, server, sync errors) is theirs and
their manager's; team mailboxes are the company's; admins see every one."""

from __future__ import annotations

import asyncio
import uuid

import requests
from psycopg import AsyncConnection

from engage import mailboxes
from kernel.settings import Settings
from tests.world import People


def test_a_manager_lists_the_team_mailboxes_and_the_teams_not_another_territorys(
    db_dsn: str, test_settings: Settings, people: People, app_url: str
) -> None:
    tag = uuid.uuid4().hex[:8]

    async def connect() -> dict[str, int]:
        ids = {}
        async with await AsyncConnection.connect(db_dsn) as conn:
            for who, kind, owner in (
                ("team", "team", None),
                ("rep1", "user", people.users["rep1"]),  # the manager's team
                ("rep2", "user", people.users["rep2"]),  # another territory's rep
            ):
                box = await mailboxes.connect_mailbox(
                    conn,
                    test_settings,
                    address=f"{who}-{tag}@acme.test",
                    kind=kind,
                    owner_user_id=owner,
                    imap_password=f"pw-{tag}",
                )
                ids[who] = int(box["id"])
            await conn.commit()
        return ids

    ids = asyncio.run(connect())

    def listed(who: str) -> set[int]:
        r = requests.get(
            f"{app_url}/api/v1/engage/mailboxes", headers=people.headers(who), timeout=30
        )
        assert r.status_code == 200, r.text
        return {int(b["id"]) for b in r.json()}

    mine = listed("manager")
    assert ids["team"] in mine and ids["rep1"] in mine
    assert ids["rep2"] not in mine
    assert set(ids.values()) <= listed("admin")
    refused = requests.get(
        f"{app_url}/api/v1/engage/mailboxes", headers=people.headers("rep1"), timeout=30
    )
    assert refused.status_code == 403
