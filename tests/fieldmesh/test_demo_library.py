"""The demo's saved reports, dashboard and knowledge-base articles: written once per tenant
through the API's services, and what the demo manager and a rep open through the API.

A database of its own: the articles would otherwise change the knowledge base's ranking
for the other tests of the session."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from crm.demo_history import seed_history
from fieldmesh import services
from fieldmesh.demo_library import ARTICLES, DASHBOARD, REPORTS, seed_library
from fieldmesh.migrate import upgrade
from identity import auth
from kernel.settings import Settings
from tests.appserver import serve_app
from tests.world import Api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_dsn(services_up: Settings) -> Iterator[str]:
    name = f"fm_test_lib_{uuid.uuid4().hex[:8]}"
    dsn = services.create_database(services_up, name)
    upgrade(dsn)
    yield dsn
    services.drop_database(services_up, name)


def _logins(dsn: str, tenant: str) -> dict[str, int]:
    """The demo's manager and a rep of their team (as seed_logins makes them)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "INSERT INTO territories (name, region) VALUES (%s, 'demo') RETURNING id", (tenant,)
        ).fetchone()
        assert row is not None
        ids = {}
        for role in ("manager", "rep"):
            r = conn.execute(
                "INSERT INTO users (email, name, role, territory_id) VALUES (%s, %s, %s, %s)"
                " RETURNING id",
                (f"{role}@{tenant}.demo.fieldmesh.invalid", f"Demo {role}", role, row[0]),
            ).fetchone()
            assert r is not None
            ids[role] = int(r[0])
        conn.execute("UPDATE users SET manager_id = %s WHERE id = %s", (ids["manager"], ids["rep"]))
        accounts = []
        for i in range(20):
            r = conn.execute(
                "INSERT INTO accounts (name, type, territory_id, owner_id)"
                " VALUES (%s, 'customer', %s, %s) RETURNING id",
                (f"{tenant} account {i}", row[0], ids["rep"]),
            ).fetchone()
            assert r is not None
            accounts.append((int(r[0]), ids["rep"], int(row[0])))
        conn.commit()
        now = dt.datetime.now(dt.UTC)
        seed_history(conn, tenant=tenant, accounts=accounts, owners=[ids["rep"]], now=now)
    return ids


async def _token(dsn: str, user_id: int) -> str:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        token = (await auth.issue_token(conn, user_id, "test"))[1]
        await conn.commit()
    return token


def test_the_library_is_written_once_and_the_manager_and_a_rep_open_it(
    own_dsn: str, services_up: Settings
) -> None:
    tenant = "library"  # the database is this module's own: the history is the same each run
    with pytest.raises(ValueError, match="demo manager"):
        seed_library(own_dsn, tenant)  # before the logins: nothing to own it
    ids = _logins(own_dsn, tenant)

    first = seed_library(own_dsn, tenant)
    assert (first.reports, first.dashboards, first.articles) == (len(REPORTS), 1, len(ARTICLES))
    again = seed_library(own_dsn, tenant)
    assert not again.created and (again.reports, again.dashboards, again.articles) == (0, 0, 0)
    with psycopg.connect(own_dsn) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM saved_reports), (SELECT count(*) FROM dashboards),"
            " (SELECT count(*) FROM assistant_articles)"
        ).fetchone()
    assert counts == (len(REPORTS), 1, len(ARTICLES))

    settings = services_up.with_overrides(database_url=own_dsn)
    with serve_app(settings, ("crm.routes", "assistant.routes")) as url:
        for who in ("manager", "rep"):
            api = Api(url, asyncio.run(_token(own_dsn, ids[who])))
            r = api.get("/reports")
            assert r.status_code == 200, r.text
            reports = {x["name"]: x for x in r.json()["items"]}
            assert set(reports) == {name for name, *_ in REPORTS}
            assert all(x["shared"] and x["mine"] == (who == "manager") for x in reports.values())
            for name in ("Won revenue by month and owner", "Open pipeline by stage"):
                # every one runs for the reader, on the demo's year of history
                res = api.get(f"/reports/{reports[name]['id']}/result")
                assert res.status_code == 200, (name, res.text)
                assert res.json()["rows"], name
            res = api.get(f"/reports/{reports['Work orders by status and priority']['id']}/result")
            assert res.status_code == 200, res.text
            res = api.get(
                f"/reports/{reports['Completed activities by type per week']['id']}/result"
            )
            assert res.status_code == 200 and res.json()["rows"], res.text
            assert {r[1] for r in res.json()["rows"]} >= {"call", "email", "meeting", "task"}
            r = api.get("/dashboards")
            assert r.status_code == 200, r.text
            (dash,) = r.json()["items"]
            assert dash["name"] == DASHBOARD and dash["shared"]
            on_it = {t["report_id"] for t in dash["tiles"]}
            assert on_it == {reports[name]["id"] for name, *_, width in REPORTS if width}
            r = api.get("/assistant/articles")
            assert r.status_code == 200, r.text
            assert {a["title"] for a in r.json()["items"]} == {a[1] for a in ARTICLES}
        # the assistant's search finds the article that answers a rep's question
        r = api.get("/assistant/articles", params={"q": "how do I replace a pump seal"})
        assert r.status_code == 200, r.text
        assert r.json()["items"][0]["title"].startswith("Replacing the mechanical seal")
