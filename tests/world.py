"""Shared test people: two territories, and a user with an API token for every role.

`people` (a session fixture in tests/conftest.py) makes them once per test session:
an admin, a manager of territory 1 with rep1 in their team, rep2 in territory 2, and a
viewer. Tokens are issued through the identity service, as a login would.

`own_world` gives a test (or a module's fixture) a migrated database of its own with its
people, for tests whose results depend on every record in the database (models train on
all the leads in it).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from psycopg import AsyncConnection

from fieldmesh import services
from fieldmesh.migrate import upgrade
from identity import auth
from kernel.settings import Settings


class Api:
    """A tiny client for one user: paths are relative to /api/v1."""

    def __init__(self, base: str, token: str | None) -> None:
        self.base = base + "/api/v1"
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __getattr__(self, method: str) -> Any:
        def call(path: str, json: Any = None, **kw: Any) -> requests.Response:
            return self.session.request(
                method.upper(), self.base + path, json=json, timeout=30, **kw
            )

        return call


@dataclass
class People:
    suffix: str
    t1: int
    t2: int
    users: dict[str, int]
    tokens: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def api(self, base_url: str, who: str | None) -> Api:
        return Api(base_url, self.tokens[who] if who else None)


async def make_people(dsn: str, suffix: str) -> People:
    async with await AsyncConnection.connect(dsn) as conn:
        t = []
        for n in ("north", "south"):
            cur = await conn.execute(
                "INSERT INTO territories (name) VALUES (%s) RETURNING id", (f"{n}-{suffix}",)
            )
            row = await cur.fetchone()
            assert row is not None
            t.append(int(row[0]))
        users: dict[str, int] = {}
        users["admin"] = await auth.create_user(
            conn,
            email=f"admin-{suffix}@x.test",
            name="Admin",
            role="admin",
            password="admin-pass-1",
        )
        users["manager"] = await auth.create_user(
            conn, email=f"mgr-{suffix}@x.test", name="Manager", role="manager", territory_id=t[0]
        )
        users["rep1"] = await auth.create_user(
            conn,
            email=f"rep1-{suffix}@x.test",
            name="Rep One",
            role="rep",
            territory_id=t[0],
            manager_id=users["manager"],
        )
        users["rep2"] = await auth.create_user(
            conn, email=f"rep2-{suffix}@x.test", name="Rep Two", role="rep", territory_id=t[1]
        )
        users["viewer"] = await auth.create_user(
            conn, email=f"viewer-{suffix}@x.test", name="Viewer", role="viewer"
        )
        tokens = {
            name: (await auth.issue_token(conn, uid, "test"))[1] for name, uid in users.items()
        }
        await conn.commit()
    return People(suffix, t[0], t[1], users, tokens)


@contextmanager
def own_world(services_up: Settings, prefix: str) -> Iterator[tuple[str, People]]:
    """A database named `prefix_<random>` on the session's server, migrated, with its
    People; yields (its DSN, the people) and drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    dsn = services.create_database(services_up, name)
    try:
        upgrade(dsn)
        yield dsn, asyncio.run(make_people(dsn, uuid.uuid4().hex[:8]))
    finally:
        services.drop_database(services_up, name)
