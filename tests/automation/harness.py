"""Test helpers: a real jobs worker with automation's tasks (in a thread of the test, or as
a process a test can SIGKILL), records written through crm's service as a user, waiting
for database state."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection

from automation import service
from automation.channels import EngageChannel, OutboxChannel
from automation.clock import ManualClock
from automation.jobs import register
from crm import hooks
from crm.entities import ENTITIES
from crm.store import create_record, update_record
from identity.auth import load_principal
from kernel.jobs import Registry, Worker
from kernel.principal import Principal
from kernel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
hooks.install()


@contextmanager
def worker_thread(
    dsn: str,
    clock: ManualClock,
    concurrency: int = 4,
    settings: Settings | None = None,
    *,
    engage: bool = False,
) -> Iterator[Worker]:
    """kernel.jobs.Worker with automation's tasks, on its own event loop in a thread.

    Messages stay in automation's outbox (`OutboxChannel`) unless `engage`: then they go
    through engage (`EngageChannel`, the production wiring) and the worker runs engage's
    jobs too (SMTP send, SMS gateway, IMAP sync), so `settings` are needed."""
    registry = Registry()
    if engage:
        from engage import jobs as engage_jobs
        from engage.send import send_config

        assert settings is not None
        register(registry, clock=clock, every_s=1.0, channel=EngageChannel(send_config(settings)))
        engage_jobs.register(registry)
    else:
        register(registry, clock=clock, every_s=1.0, channel=OutboxChannel())
    worker = Worker(
        dsn,
        registry,
        concurrency=concurrency,
        poll_s=0.2,
        lease_s=5.0,
        grace_s=2.0,
        settings=settings,
    )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(worker.run(stop))

    t = threading.Thread(target=main, name="automation-worker", daemon=True)
    t.start()
    try:
        yield worker
    finally:
        loop.call_soon_threadsafe(stop.set)
        t.join(timeout=30)


def worker_process(dsn: str, lease_s: float = 2.0, concurrency: int = 4) -> subprocess.Popen[bytes]:
    """A worker in a process of its own (system clock), for kill tests."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.automation.worker_main", dsn, str(lease_s), str(concurrency)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def principal(dsn: str, user_id: int) -> Principal:
    async with await AsyncConnection.connect(dsn) as conn:
        p = await load_principal(conn, user_id)
        assert p is not None
        return p


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _create(dsn: str, user_id: int, obj: str, values: dict[str, Any]) -> dict[str, Any]:
    p = await principal(dsn, user_id)
    async with await AsyncConnection.connect(dsn) as conn:
        row = await create_record(conn, ENTITIES[obj], p, values)
        await conn.commit()
        return row


def create(dsn: str, user_id: int, obj: str, **values: Any) -> dict[str, Any]:
    return dict(run(_create(dsn, user_id, obj, values)))


async def _update(
    dsn: str, user_id: int, obj: str, rid: int, values: dict[str, Any]
) -> dict[str, Any]:
    p = await principal(dsn, user_id)
    async with await AsyncConnection.connect(dsn) as conn:
        row = await update_record(conn, ENTITIES[obj], p, rid, values, None, check_etag=False)
        await conn.commit()
        return row


def update(dsn: str, user_id: int, obj: str, rid: int, **values: Any) -> dict[str, Any]:
    return dict(run(_update(dsn, user_id, obj, rid, values)))


async def _save(dsn: str, user_id: int, definition: dict[str, Any], kind: str) -> int:
    p = await principal(dsn, user_id)
    async with await AsyncConnection.connect(dsn) as conn:
        row = await service.save(conn, p, definition, kind=kind)
        await conn.commit()
        return int(row["id"])


def save_workflow(
    dsn: str, user_id: int, definition: dict[str, Any], kind: str = "workflow"
) -> int:
    return int(run(_save(dsn, user_id, definition, kind)))


def deactivate_all(dsn: str) -> None:
    """Each test starts with only its own workflows active."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE automation_workflows SET active = false, updated_at = now() WHERE active"
        )
        conn.execute("DELETE FROM automation_watch")


def query(dsn: str, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return list(conn.execute(sql, params).fetchall())


def stage_id(dsn: str, name: str) -> int:
    return int(
        query(dsn, "SELECT id FROM pipeline_stages WHERE name = %s ORDER BY id LIMIT 1", (name,))[
            0
        ][0]
    )
