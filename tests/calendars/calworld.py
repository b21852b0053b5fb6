"""A small calendar world per test: a territory, a manager, reps in two zones, accounts
with locations, each user with an API token (through the identity service)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from psycopg import AsyncConnection

from identity import auth

PARIS = (2.3522, 48.8566)
VERSAILLES = (2.1301, 48.8049)


@dataclass
class CalWorld:
    territory: int
    users: dict[str, int]
    tokens: dict[str, str]
    accounts: dict[str, int]

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


async def _make(dsn: str) -> CalWorld:
    sfx = uuid.uuid4().hex[:8]
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "INSERT INTO territories (name) VALUES (%s) RETURNING id", (f"cal-{sfx}",)
        )
        row = await cur.fetchone()
        assert row is not None
        t = int(row[0])
        users: dict[str, int] = {}
        users["manager"] = await auth.create_user(
            conn, email=f"calm-{sfx}@x.test", name="Cal Manager", role="manager", territory_id=t
        )
        for name in ("ny", "berlin", "utc"):
            users[name] = await auth.create_user(
                conn,
                email=f"cal{name}-{sfx}@x.test",
                name=f"Rep {name}",
                role="rep",
                territory_id=t,
                manager_id=users["manager"],
            )
        zones = {"ny": "America/New_York", "berlin": "Europe/Berlin", "utc": "UTC"}
        for name, tz in zones.items():
            await conn.execute(
                "UPDATE users SET timezone = %s, shift_start = '09:00', shift_end = '17:00' WHERE id = %s",
                (tz, users[name]),
            )
        users["outsider"] = await auth.create_user(
            conn, email=f"calx-{sfx}@x.test", name="Other Rep", role="rep"
        )
        tokens = {n: (await auth.issue_token(conn, uid, "test"))[1] for n, uid in users.items()}
        accounts = {}
        for name, (lon, lat) in (("paris", PARIS), ("versailles", VERSAILLES)):
            cur = await conn.execute(
                "INSERT INTO accounts (name, territory_id, owner_id, location)"
                " VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography) RETURNING id",
                (f"{name}-{sfx}", t, users["utc"], lon, lat),
            )
            row = await cur.fetchone()
            assert row is not None
            accounts[name] = int(row[0])
        await conn.commit()
    return CalWorld(t, users, tokens, accounts)


def make_world(dsn: str) -> CalWorld:
    return asyncio.run(_make(dsn))
