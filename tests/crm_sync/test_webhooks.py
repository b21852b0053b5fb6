from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import psycopg
import pytest
from aiohttp import web

from crm_sync import webhooks
from crm_sync.errors import InvalidInput
from crm_sync.signing import HEADER, verify
from fieldmesh.roles import job_registry
from kernel.jobs import Worker
from kernel.settings import Settings
from tests.crm_sync.fixtures import LOOPBACK
from tests.eventually import eventually_async

pytestmark = pytest.mark.integration


@dataclass
class Receiver:
    """A local webhook subscriber that checks signatures; can be told to fail."""

    secret: bytes = b""
    fail_with: int | None = None
    received: list[dict[str, object]] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.hosts.append(request.headers.get("Host", ""))
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


async def _deliver(
    dsn: str,
    sub_ids: list[int],
    *,
    allow: webhooks.Networks = LOOPBACK,
    timeout_s: float = 5.0,
    max_attempts: int = 8,
) -> webhooks.DeliveryStats:
    async with (
        await psycopg.AsyncConnection.connect(dsn) as conn,
        aiohttp.ClientSession() as session,
    ):
        return await webhooks.deliver_due(
            conn,
            session,
            subscription_ids=sub_ids,
            allow=allow,
            timeout_s=timeout_s,
            max_attempts=max_attempts,
        )


def test_signed_delivery_retry_dead_and_replay(db: psycopg.Connection, db_dsn: str) -> None:
    async def scenario() -> None:
        async with serving(Receiver()) as rx:
            sub_id, secret = webhooks.create_subscription(
                db, rx.url, ["work_order.created"], allow=LOOPBACK
            )
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
            live, secret = webhooks.create_subscription(
                db, rx.url, ["alert.raised"], allow=LOOPBACK
            )
            rx.secret = secret.encode()
            dead, _ = webhooks.create_subscription(
                db, f"http://127.0.0.1:{_closed_port()}/hook", ["alert.raised"], allow=LOOPBACK
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
    sub, _ = webhooks.create_subscription(db, "https://93.184.216.34/h", ["visit.completed"])
    webhooks.enqueue(db, "visit.completed", "visit:77", {"visit_id": 77})
    webhooks.enqueue(db, "visit.completed", "visit:77", {"visit_id": 77})
    assert [d.event_id for d in webhooks.deliveries(db, sub)] == ["visit:77"]
    db.rollback()


def _insert_subscription(db: psycopg.Connection, url: str, event_type: str) -> int:
    """A subscription as an older version (or a hand edit) may have left it: unchecked."""
    row = db.execute(
        "INSERT INTO webhook_subscriptions (url, event_types, secret) VALUES (%s, %s, 'k') "
        "RETURNING id",
        (url, [event_type]),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_bad_subscription_fails_only_its_own_deliveries(
    db: psycopg.Connection, db_dsn: str
) -> None:
    """A 300-character host once stopped every delivery for good; now its rows die alone."""
    long_host = ".".join(["h" * 59] * 5)  # 299 characters, every label valid
    with pytest.raises(InvalidInput, match="longer than 253"):
        webhooks.create_subscription(db, f"http://{long_host}/hook", ["visit.completed"])

    async def scenario() -> None:
        async with serving(Receiver()) as rx:
            good, secret = webhooks.create_subscription(
                db, rx.url, ["visit.completed"], allow=LOOPBACK
            )
            rx.secret = secret.encode()
            bad = [
                _insert_subscription(db, f"http://{long_host}/hook", "visit.completed"),
                _insert_subscription(db, f"http://{'x' * 300}/hook", "visit.completed"),
                _insert_subscription(db, "http://169.254.169.254/latest", "visit.completed"),
                _insert_subscription(db, "http://[::ffff:169.254.169.254]/", "visit.completed"),
                _insert_subscription(db, "http://[::1/broken", "visit.completed"),
            ]
            tag = uuid.uuid4().hex[:6]
            for i in range(2):
                webhooks.enqueue(db, "visit.completed", f"visit:{tag}:{i}", {"i": i})
            db.commit()
            stats = await _deliver(db_dsn, [good, *bad], allow=())
            # the loopback receiver needs the allow-list: refused like the others
            assert (stats.delivered, stats.dead) == (0, 12)
            webhooks.replay(db, webhooks.deliveries(db, good)[0].outbox_id)
            webhooks.replay(db, webhooks.deliveries(db, good)[1].outbox_id)
            db.commit()
            stats = await _deliver(db_dsn, [good, *bad])
            assert (stats.claimed, stats.delivered) == (2, 2)
            assert sorted(str(r["id"]) for r in rx.received) == [f"visit:{tag}:0", f"visit:{tag}:1"]
            for sub in bad:
                rows = webhooks.deliveries(db, sub)
                assert [r.status for r in rows] == ["dead", "dead"]
                assert all((r.last_error or "").startswith("refused: url: ") for r in rows)

    asyncio.run(scenario())


def test_the_connection_goes_to_the_address_that_was_checked(
    db: psycopg.Connection, db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host is resolved once per delivery, and the connection uses that very address:
    a second lookup (which DNS rebinding could answer differently) never happens."""
    lookups: list[str] = []
    answer = ["127.0.0.1"]

    def resolve(host: str) -> list[str]:
        lookups.append(host)
        return list(answer)

    monkeypatch.setattr(webhooks, "_resolve", resolve)

    async def scenario() -> None:
        async with serving(Receiver()) as rx:
            port = rx.url.rsplit(":", 1)[1].split("/")[0]
            # .invalid never resolves in real DNS: only the pinned address can reach rx
            url = f"http://hooks.fieldmesh.invalid:{port}/hook"
            sub, secret = webhooks.create_subscription(
                db, url, ["visit.checked_in"], allow=LOOPBACK
            )
            rx.secret = secret.encode()
            webhooks.enqueue(db, "visit.checked_in", f"visit:{sub}:a", {"n": 1})
            db.commit()
            lookups.clear()
            stats = await _deliver(db_dsn, [sub])
            assert stats.delivered == 1
            assert lookups == ["hooks.fieldmesh.invalid"]
            assert rx.hosts == [f"hooks.fieldmesh.invalid:{port}"]

            # the name now answers an address the policy refuses: nothing is sent
            answer[:] = ["127.0.0.1", "10.0.0.9"]
            webhooks.enqueue(db, "visit.checked_in", f"visit:{sub}:b", {"n": 2})
            db.commit()
            stats = await _deliver(db_dsn, [sub])
            assert (stats.delivered, stats.dead) == (0, 1)
            assert len(rx.received) == 1
            row = next(d for d in webhooks.deliveries(db, sub) if d.event_id.endswith(":b"))
            assert "10.0.0.9" in (row.last_error or "")

    asyncio.run(scenario())


def test_delivery_jobs_keep_going_past_a_bad_target_and_report_health(
    db: psycopg.Connection, db_dsn: str, test_settings: Settings
) -> None:
    async def scenario() -> None:
        async with serving(Receiver()) as rx:
            good, secret = webhooks.create_subscription(
                db, rx.url, ["work_order.urgent"], allow=LOOPBACK
            )
            rx.secret = secret.encode()
            bad = _insert_subscription(db, f"http://{'y' * 300}/hook", "work_order.urgent")
            tag = uuid.uuid4().hex[:6]
            webhooks.enqueue(db, "work_order.urgent", f"wo:{tag}:1", {"n": 1})
            db.commit()
            stop = asyncio.Event()
            worker = Worker(
                db_dsn,
                job_registry(("crm_sync.jobs",)),
                poll_s=0.1,
                settings=test_settings.with_overrides(webhook_allow=LOOPBACK),
            )
            task = asyncio.create_task(worker.run(stop))
            try:
                await eventually_async(_true(lambda: len(rx.received) == 1))
                # the delivery job survives the bad row and delivers what comes next
                webhooks.enqueue(db, "work_order.urgent", f"wo:{tag}:2", {"n": 2})
                db.commit()
                await eventually_async(_true(lambda: len(rx.received) == 2))
                assert [d.status for d in webhooks.deliveries(db, bad)] == ["dead", "dead"]
                assert {d.status for d in webhooks.deliveries(db, good)} == {"delivered"}

                async def healthy() -> webhooks.DispatcherHealth | None:
                    async with await psycopg.AsyncConnection.connect(db_dsn) as conn:
                        h = await webhooks.health(conn)
                    return h if h.ok and h.last_ok_at is not None and h.due == 0 else None

                health = await eventually_async(healthy, what="healthy delivery")
                assert health.errors == 0 and health.dead >= 2 and health.rounds >= 1
            finally:
                stop.set()
                await task
            assert worker.stats.failed == 0

    asyncio.run(scenario())


def _true(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return predicate()

    return probe


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


def test_the_jobs_worker_delivers_a_recorded_event(
    db: psycopg.Connection, db_dsn: str, test_settings: Settings
) -> None:
    """The `jobs` role of `fieldmesh run`: recording the event queued the delivery job."""

    async def scenario() -> None:
        async with serving(Receiver()) as rx:
            _sub, secret = webhooks.create_subscription(
                db, rx.url, ["visit.checked_in"], allow=LOOPBACK
            )
            rx.secret = secret.encode()
            webhooks.enqueue(db, "visit.checked_in", "visit:job:1", {"visit_id": 1})
            db.commit()
            stop = asyncio.Event()
            # the deployment's allow-list reaches the job through the worker's settings
            settings = test_settings.with_overrides(webhook_allow=LOOPBACK)
            worker = Worker(db_dsn, job_registry(("crm_sync.jobs",)), poll_s=0.1, settings=settings)
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
