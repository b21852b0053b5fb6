from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import psycopg
import pytest
from aiohttp import web

from crm_sync import webhooks
from crm_sync.signing import HEADER, verify
from fieldmesh.roles import job_registry
from kernel.jobs import Worker
from tests.eventually import eventually_async

pytestmark = pytest.mark.integration


@dataclass
class Receiver:
    """A local webhook subscriber that checks signatures; can be told to fail."""

    secret: bytes = b""
    fail_with: int | None = None
    received: list[dict[str, object]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        verify(self.secret, request.headers.get(HEADER), body, now_s=time.time())
        if self.fail_with is not None:
            return web.Response(status=self.fail_with)
        self.received.append(json.loads(body))
        return web.Response(status=204)


@asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _due_now(db: psycopg.Connection, sub_id: int) -> None:
    webhooks.make_due_now(db, sub_id)
    db.commit()


async def _deliver(dsn: str, sub_ids: list[int], **kw: float) -> webhooks.DeliveryStats:
    async with (
        await psycopg.AsyncConnection.connect(dsn) as conn,
        aiohttp.ClientSession() as session,
    ):
        return await webhooks.deliver_due(conn, session, subscription_ids=sub_ids, **kw)  # type: ignore[arg-type]


def test_signed_delivery_retry_dead_and_replay(db: psycopg.Connection, db_dsn: str) -> None:
    async def scenario() -> None:
        async with serving(Receiver()) as rx:
            sub_id, secret = webhooks.create_subscription(db, rx.url, ["work_order.created"])
            rx.secret = secret.encode()
            webhooks.enqueue(db, "work_order.created", "wo:1", {"work_order_id": 1})
            db.commit()

            stats = await _deliver(db_dsn, [sub_id])
            assert (stats.delivered, stats.retrying) == (1, 0)
            assert rx.received[0]["id"] == "wo:1"
            assert rx.received[0]["data"] == {"work_order_id": 1}

            # the subscriber starts failing: the row is retried later, then given up
            rx.fail_with = 503
            webhooks.enqueue(db, "work_order.created", "wo:2", {"work_order_id": 2})
            db.commit()
            stats = await _deliver(db_dsn, [sub_id], max_attempts=2)
            assert stats.retrying == 1
            row = next(d for d in webhooks.deliveries(db, sub_id) if d.event_id == "wo:2")
            assert (row.status, row.attempts, row.last_status) == ("pending", 1, 503)
            # not due yet: backoff
            assert (await _deliver(db_dsn, [sub_id])).claimed == 0
            _due_now(db, sub_id)
            stats = await _deliver(db_dsn, [sub_id], max_attempts=2)
            assert stats.dead == 1
            row = next(d for d in webhooks.deliveries(db, sub_id) if d.event_id == "wo:2")
            assert row.status == "dead"

            # the subscriber recovers; an operator replays the dead delivery
            rx.fail_with = None
            webhooks.replay(db, row.outbox_id)
            db.commit()
            stats = await _deliver(db_dsn, [sub_id])
            assert stats.delivered == 1
            assert [r["id"] for r in rx.received] == ["wo:1", "wo:2"]
            statuses = {d.event_id: d.status for d in webhooks.deliveries(db, sub_id)}
            assert statuses == {"wo:1": "delivered", "wo:2": "delivered"}

    asyncio.run(scenario())


def test_a_dead_subscriber_does_not_block_a_live_one(db: psycopg.Connection, db_dsn: str) -> None:
    async def scenario() -> None:
        async with serving(Receiver()) as rx:
            live, secret = webhooks.create_subscription(db, rx.url, ["alert.raised"])
            rx.secret = secret.encode()
            dead, _ = webhooks.create_subscription(
                db, f"http://127.0.0.1:{_closed_port()}/hook", ["alert.raised"]
            )
            for i in range(3):
                webhooks.enqueue(db, "alert.raised", f"al:{live}:{i}", {"n": i})
            db.commit()
            stats = await _deliver(db_dsn, [live, dead], timeout_s=2.0)
            assert stats.delivered == 3
            assert stats.retrying == 3
            assert len(rx.received) == 3
            failed = webhooks.deliveries(db, dead)
            assert all(d.status == "pending" and d.last_error for d in failed)

    asyncio.run(scenario())


def test_redelivered_event_is_queued_once_per_subscriber(db: psycopg.Connection) -> None:
    sub, _ = webhooks.create_subscription(db, "https://example.com/h", ["visit.completed"])
    webhooks.enqueue(db, "visit.completed", "visit:77", {"visit_id": 77})
    webhooks.enqueue(db, "visit.completed", "visit:77", {"visit_id": 77})
    assert [d.event_id for d in webhooks.deliveries(db, sub)] == ["visit:77"]
    db.rollback()


def test_an_event_with_subscribers_queues_one_delivery_job(db: psycopg.Connection) -> None:
    def queued() -> int:
        row = db.execute(
            "SELECT count(*) FROM jobs WHERE task = %s AND status = 'queued'",
            (webhooks.DELIVER_TASK,),
        ).fetchone()
        assert row is not None
        return int(row[0])

    db.execute("DELETE FROM jobs WHERE task = %s", (webhooks.DELIVER_TASK,))
    db.commit()  # earlier tests' events left one queued
    webhooks.enqueue(db, "alert.cleared", "alert:nobody", {})  # no subscriber yet: no job
    assert queued() == 0
    webhooks.create_subscription(db, "https://example.com/h", ["alert.cleared"])
    for n in range(3):
        webhooks.enqueue(db, "alert.cleared", f"alert:{n}", {"n": n})
    assert queued() == 1  # in the same transaction, deduplicated
    db.rollback()
    assert queued() == 0  # rolled back with the events


def test_the_jobs_worker_delivers_a_recorded_event(db: psycopg.Connection, db_dsn: str) -> None:
    """The `jobs` role of `fieldmesh run`: recording the event queued the delivery job."""

    async def scenario() -> None:
        async with serving(Receiver()) as rx:
            _sub, secret = webhooks.create_subscription(db, rx.url, ["visit.checked_in"])
            rx.secret = secret.encode()
            webhooks.enqueue(db, "visit.checked_in", "visit:job:1", {"visit_id": 1})
            db.commit()
            stop = asyncio.Event()
            worker = Worker(db_dsn, job_registry(("crm_sync.jobs",)), poll_s=0.1)
            task = asyncio.create_task(worker.run(stop))
            try:

                async def received() -> bool:
                    return any(r["id"] == "visit:job:1" for r in rx.received)

                await eventually_async(received, what="the webhook delivered by the job")
            finally:
                stop.set()
                await task
            assert worker.stats.done >= 1 and worker.stats.failed == 0

    asyncio.run(scenario())
