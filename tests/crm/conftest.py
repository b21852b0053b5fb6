"""The CRM served by the real aiohttp app on a loopback port, against this session's
migrated database; a small world of territories, users and tokens to test access with."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from psycopg import AsyncConnection

from identity import auth
from kernel.settings import Settings
from tests.appserver import serve_app


def serve(settings: Settings) -> AbstractContextManager[str]:
    """The real app with the CRM routes on a free loopback port."""
    return serve_app(settings, ("crm.routes",))


@pytest.fixture(scope="session")
def crm_url(test_settings: Settings) -> Iterator[str]:
    with serve(test_settings) as url:
        yield url


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
class World:
    url: str
    suffix: str
    t1: int
    t2: int
    users: dict[str, int]
    tokens: dict[str, str]

    def api(self, who: str) -> Api:
        return Api(self.url, self.tokens[who])


async def _make_world(dsn: str, suffix: str) -> tuple[int, int, dict[str, int], dict[str, str]]:
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
    return t[0], t[1], users, tokens


@pytest.fixture(scope="session")
def world(crm_url: str, db_dsn: str) -> World:
    suffix = uuid.uuid4().hex[:8]
    t1, t2, users, tokens = asyncio.run(_make_world(db_dsn, suffix))
    return World(crm_url, suffix, t1, t2, users, tokens)


def etag_of(resp: requests.Response) -> str:
    return resp.headers["ETag"]
