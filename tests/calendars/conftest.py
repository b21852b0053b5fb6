"""Calendar tests run against the embedded Radicale that `services_up` starts (through
fieldmesh.services.ensure_up, like `fieldmesh up`), each test with users of its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from psycopg import AsyncConnection

from calendars import service
from calendars.caldav_client import CalDav
from calendars.store import account
from calendars.sync import RoundStats, sync_user
from crm import hooks
from kernel import secretbox
from kernel.settings import Settings

T = TypeVar("T")
TENANT = "acme"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="session", autouse=True)
def _crm_rules() -> None:
    hooks.install()


@pytest.fixture
def make_user(db_dsn: str, test_settings: Settings) -> Callable[..., int]:
    """A new rep (in its own territory) who opted in to sync; returns the user id."""

    def make(tz: str = "Europe/Berlin", opt_in: bool = True) -> int:
        async def go() -> int:
            async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
                sfx = uuid.uuid4().hex[:8]
                cur = await conn.execute(
                    "INSERT INTO territories (name) VALUES (%s) RETURNING id", (f"cal-{sfx}",)
                )
                row = await cur.fetchone()
                assert row is not None
                cur = await conn.execute(
                    "INSERT INTO users (email, name, role, territory_id, timezone) "
                    "VALUES (%s, %s, 'rep', %s, %s) RETURNING id",
                    (f"rep-{sfx}@example.com", f"Rep {sfx}", row[0], tz),
                )
                urow = await cur.fetchone()
                assert urow is not None
                if opt_in:
                    await service.opt_in(conn, test_settings, int(urow[0]))
                return int(urow[0])

        return run(go())

    return make


@pytest.fixture
def sync(db_dsn: str, test_settings: Settings) -> Callable[[int], RoundStats]:
    def go(user_id: int) -> RoundStats:
        async def one() -> RoundStats:
            async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
                return await sync_user(conn, user_id, TENANT, settings=test_settings)

        return run(one())

    return go


class Remote:
    """The server side as another calendar client sees it."""

    def __init__(self, client: CalDav, path: str) -> None:
        self.client = client
        self.path = path

    def objects(self) -> dict[str, tuple[str | None, str]]:
        ch = self.client.changes(self.path, None)
        hrefs = [h for h, _ in ch.changed]
        return {h: (et, text) for h, et, text in self.client.fetch(self.path, hrefs)}

    def put(self, href: str, ics: str, etag: str | None) -> str | None:
        w = self.client.put_many([(href, ics, etag)])[0]
        assert w.status == 201, w
        return w.etag

    def delete(self, href: str, etag: str | None) -> None:
        w = self.client.delete_many([(href, etag)])[0]
        assert w.status == 204, w


@pytest.fixture
def remote(db_dsn: str, test_settings: Settings) -> Callable[[int], Remote]:
    def make(user_id: int) -> Remote:
        async def acct() -> Any:
            async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
                return await account(conn, user_id)

        a = run(acct())
        client = CalDav(a.server_url, a.username, secretbox.open_(test_settings, a.password))
        return Remote(client, client.ensure_calendar(a.calendar_url))

    return make
