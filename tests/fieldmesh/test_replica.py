"""`fieldmesh up --replica`: a streaming replica of the embedded primary; lag-tolerant API
reads go to it while it is fresh, to the primary when it is down or the caller just wrote."""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from fieldmesh import services
from fieldmesh.commands import cmd_up
from kernel.replica import ReadRouter
from kernel.settings import Settings
from kernel.web import REPLICA
from tests.appserver import serve_app
from tests.conftest import free_port
from tests.eventually import eventually
from tests.world import People


@pytest.fixture(scope="module")
def replica(services_up: Settings, db_dsn: str) -> Iterator[Settings]:
    """The session's primary with a replica started through `fieldmesh up --replica`."""
    s = services_up.with_overrides(replica_port=free_port())
    assert cmd_up(argparse.Namespace(replica=True), s) == 0
    try:
        yield s
    finally:
        services.replica_stop(s)


def _replica_dsn(s: Settings, db_dsn: str) -> str:
    dsn = services.replica_dsn(s)
    assert dsn is not None
    return psycopg.conninfo.make_conninfo(
        dsn, dbname=psycopg.conninfo.conninfo_to_dict(db_dsn)["dbname"]
    )


def test_a_write_on_the_primary_becomes_visible_on_the_replica(
    replica: Settings, db_dsn: str
) -> None:
    assert services.replica_running(replica)
    mark = uuid.uuid4().hex
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS replica_probe (mark text)")
        conn.execute("INSERT INTO replica_probe VALUES (%s)", (mark,))

    def seen() -> bool | None:
        with psycopg.connect(_replica_dsn(replica, db_dsn)) as r:
            assert r.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            try:
                row = r.execute("SELECT 1 FROM replica_probe WHERE mark = %s", (mark,)).fetchone()
            except psycopg.errors.UndefinedTable:  # the CREATE TABLE not replayed yet
                return None
        return True if row else None

    eventually(seen, timeout_s=30, what="the write replayed on the replica")
    with psycopg.connect(_replica_dsn(replica, db_dsn)) as r, pytest.raises(psycopg.Error):
        r.execute("INSERT INTO replica_probe VALUES ('x')")  # read-only: writes stay primary


def test_the_replication_path_is_favoured_by_the_scheduler(replica: Settings) -> None:
    """The primary's WAL sender, the replica's receiver and its replaying startup process
    run at REPLICATION_NICE, as processes and as autogroups (each is a session)."""
    if os.geteuid() != 0:
        pytest.skip("only root may raise a process's priority")
    pidfile = services._replica_root(replica) / "data" / "postmaster.pid"
    postmaster = int(pidfile.read_text().split()[0])
    chain = [
        pid
        for pid, cmd in services._children(postmaster)
        if "walreceiver" in cmd or "startup" in cmd
    ]
    assert len(chain) == 2
    with psycopg.connect(replica.dsn_for("postgres")) as conn:
        chain += [int(r[0]) for r in conn.execute("SELECT pid FROM pg_stat_replication")]
    assert len(chain) >= 3
    for pid in chain:
        assert os.getpriority(os.PRIO_PROCESS, pid) == services.REPLICATION_NICE
        group = Path(f"/proc/{pid}/autogroup")
        if group.exists():
            assert group.read_text().split()[-1] == str(services.REPLICATION_NICE)


def test_reads_route_to_a_fresh_replica_and_fall_back_when_it_is_down(
    replica: Settings, db_dsn: str
) -> None:
    async def scenario() -> list[Any]:
        out: list[Any] = []
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(db_dsn, min_size=1, open=False)
        await pool.open()
        router = ReadRouter(pool, _replica_dsn(replica, db_dsn), 5.0, check_every_s=0.0)
        await router.open()

        async def recovering(primary: bool = False) -> bool:
            async with router.connection(primary=primary) as conn:
                row = await (await conn.execute("SELECT pg_is_in_recovery()")).fetchone()
                assert row is not None
                return bool(row[0])

        try:
            out.append(await recovering())  # fresh replica
            out.append(await recovering(primary=True))  # read-your-writes
            out.append((await router.check()).lag_s)
            router.max_lag_s = -1.0  # any lag is over this bound: stale
            out.append(await recovering())
            out.append(router.state.status)
        finally:
            await router.close()
            await pool.close()
        return out

    fresh, forced, lag, stale, status = asyncio.run(scenario())
    assert fresh is True and forced is False and stale is False
    assert lag is not None and lag >= 0.0 and status == "stale"


def test_the_api_reads_from_the_replica_and_keeps_working_without_it(
    replica: Settings, db_dsn: str, test_settings: Settings, people: People
) -> None:
    s = test_settings.with_overrides(database_replica_url=_replica_dsn(replica, db_dsn))
    headers = people.headers("admin")
    with serve_app(s, route_modules=("telemetry.routes",), job_modules=()) as url:

        def replica_ok() -> dict[str, Any] | None:
            body: dict[str, Any] = requests.get(f"{url}/health", timeout=5).json()
            return body if body["replica"] == "ok" else None

        health = eventually(replica_ok, timeout_s=30, what="replica ok in /health")
        assert health is not None
        assert health["status"] == "ok" and health["replica_lag_s"] >= 0.0
        r = requests.get(f"{url}/api/v1/devices", headers=headers, timeout=10)
        assert r.status_code == 200, r.text

        services.replica_stop(replica)
        try:
            for _ in range(3):  # the first read may find it gone; none may fail
                r = requests.get(f"{url}/api/v1/devices", headers=headers, timeout=10)
                assert r.status_code == 200, r.text
            body = requests.get(f"{url}/health", timeout=5).json()
            assert body["status"] == "ok" and body["replica"] == "down"
        finally:
            services.replica_start(replica)


def test_crm_lists_and_search_read_the_replica_and_a_writer_reads_its_own_write(
    replica: Settings, db_dsn: str, test_settings: Settings, people: People
) -> None:
    s = test_settings.with_overrides(database_replica_url=_replica_dsn(replica, db_dsn))
    apps: list[web.Application] = []
    with serve_app(s, job_modules=(), configure=apps.append) as url:
        eventually(
            lambda: requests.get(f"{url}/health", timeout=5).json()["replica"] == "ok" or None,
            timeout_s=30,
            what="replica ok in /health",
        )
        router = apps[0][REPLICA]
        reader = requests.Session()
        reader.headers.update(people.headers("admin"))
        before = router.state.replica_reads
        assert reader.get(f"{url}/api/v1/accounts?limit=5", timeout=10).status_code == 200
        search = reader.get(f"{url}/console/api/search?q=pump", timeout=10)
        assert search.status_code == 200, search.text
        assert router.state.replica_reads >= before + 2  # both served by the replica
        # the writer's next list reads the primary (its cookie), so it sees its own write
        writer = requests.Session()
        writer.headers.update(people.headers("admin"))
        name = f"Read-your-writes {uuid.uuid4().hex[:8]}"
        created = writer.post(f"{url}/api/v1/accounts", json={"name": name}, timeout=10)
        assert created.status_code == 201, created.text
        assert "fm_wrote" in writer.cookies
        primary_before = router.state.primary_reads
        items = writer.get(f"{url}/api/v1/accounts", params={"q": name}, timeout=10).json()
        assert [a["name"] for a in items["items"]] == [name]
        assert router.state.primary_reads == primary_before + 1
        # the same figures for Prometheus
        text = requests.get(f"{url}/metrics", timeout=10).text
        assert "fieldmesh_replica_up 1" in text
        lag = next(ln for ln in text.splitlines() if ln.startswith("fieldmesh_replica_lag_seconds"))
        assert 0.0 <= float(lag.split()[1]) < 60
        reads = next(
            ln for ln in text.splitlines() if ln.startswith("fieldmesh_replica_reads_total ")
        )
        assert int(float(reads.split()[1])) >= before + 2
