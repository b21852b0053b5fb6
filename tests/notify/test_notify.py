"""Notifications: stored once per dedupe key, announced on commit, read only by their user."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from kernel.settings import Settings
from notify import service
from tests.crm_sync.appserver import serve_app
from tests.world import People

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base(test_settings: Settings) -> Iterator[str]:
    with serve_app(test_settings, ("notify.routes",)) as url:
        yield url.removesuffix("/api/v1")


async def _notify(dsn: str, user_id: int, key: str, **kw: object) -> int | None:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        nid = await service.notify_user(
            conn,
            user_id=user_id,
            kind=str(kw.get("kind", "reminder")),
            title=str(kw.get("title", "Visit at 10:00")),
            body=str(kw.get("body", "")),
            link=kw.get("link", "/console/activities/1"),  # type: ignore[arg-type]
            dedupe_key=key,
        )
        await conn.commit()
        return nid


def test_a_dedupe_key_notifies_once_and_the_commit_announces_it(
    db_dsn: str, people: People
) -> None:
    uid = people.users["rep1"]
    key = f"reminder:{uuid.uuid4().hex}"
    with psycopg.connect(db_dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {service.CHANNEL}")
        first = asyncio.run(_notify(db_dsn, uid, key))
        again = asyncio.run(_notify(db_dsn, uid, key, title="changed"))
        got = [json.loads(n.payload) for n in listener.notifies(timeout=5, stop_after=1)]
    assert first is not None and again is None
    assert got == [{"user_id": uid, "notification_id": first, "kind": "reminder"}]


def test_bad_fields_are_refused_by_name(db_dsn: str, people: People) -> None:
    uid = people.users["rep1"]
    for kw, field in (
        ({"kind": "Bad Kind"}, "kind"),
        ({"link": "https://evil.test/"}, "link"),
        ({"link": "//evil.test/x"}, "link"),
        ({"title": "\x00\x01  "}, "title"),
    ):
        with pytest.raises(service.NotificationError, match=f"^{field}:"):
            asyncio.run(_notify(db_dsn, uid, uuid.uuid4().hex, **kw))


def test_a_user_lists_and_reads_only_their_own(base: str, db_dsn: str, people: People) -> None:
    mine = asyncio.run(_notify(db_dsn, people.users["rep1"], uuid.uuid4().hex, title="Mine"))
    theirs = asyncio.run(_notify(db_dsn, people.users["rep2"], uuid.uuid4().hex, title="Theirs"))
    rep1 = people.api(base, "rep1")
    page = rep1.get("/notifications?unread=true").json()
    ids = [n["notification_id"] for n in page["items"]]
    assert mine in ids and theirs not in ids
    assert page["unread"] >= 1
    assert rep1.post(f"/notifications/{theirs}/read").status_code == 404
    r = rep1.post(f"/notifications/{mine}/read")
    assert r.status_code == 200 and r.json()["read_at"] is not None
    ids = [n["notification_id"] for n in rep1.get("/notifications?unread=true").json()["items"]]
    assert mine not in ids
    rep2 = people.api(base, "rep2")
    assert rep2.get("/notifications?limit=0").status_code == 422
    assert rep2.post("/notifications/read-all").json()["marked"] >= 1
    assert people.api(base, None).get("/notifications").status_code == 401
