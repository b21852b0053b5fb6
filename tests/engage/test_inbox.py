"""The inbox over HTTP against the embedded servers: one conversation across SMS (through
Kannel's fake SMS centre) and the chat widget, replies on the customer's channel, the live
WebSocket, and the one-click unsubscribe that stops the next send."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import psycopg
import pytest
from psycopg.rows import dict_row

from engage import links, send
from engage.channels import SMS_TASK
from engage.sms import send_job
from fieldmesh import svc_sms
from kernel.jobs import Registry, Task, Worker
from kernel.settings import Settings
from tests.engage.conftest import MailWorld, make_world, send_worker
from tests.eventually import eventually_async
from tests.world import People


@pytest.fixture
def sms_world(db_dsn: str, test_settings: Settings, people: People, app_url: str) -> MailWorld:
    svc_sms.start(test_settings, inbound=f"{app_url}/engage/sms/inbound")
    phone = f"+49151{uuid.uuid4().int % 10**8:08d}"
    return asyncio.run(make_world(db_dsn, test_settings, people, name="Sam", phone=phone))


def _messages(dsn: str, contact_id: int) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, conversation_id, channel, direction, body_text FROM engage_messages"
            " WHERE contact_id = %s ORDER BY id",
            (contact_id,),
        )
        return cur.fetchall()


def _phone(dsn: str, contact_id: int) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT phone_normalized FROM contacts WHERE id = %s", (contact_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_an_sms_and_a_chat_message_land_in_one_conversation_and_replies_go_back(
    db_dsn: str, test_settings: Settings, people: People, app_url: str, sms_world: MailWorld
) -> None:
    w = sms_world
    phone = _phone(db_dsn, w.contact_id)
    headers = people.headers("admin")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            live = await http.ws_connect(
                f"{app_url.replace('http', 'ws')}/api/v1/engage/inbox/live"
            )
            await live.send_str(people.tokens["admin"])
            hello = await live.receive_json(timeout=10)
            assert hello["k"] == "hello"
            # a text message from the contact's phone, through Kannel's fake SMS centre
            svc_sms.inject(test_settings, phone, "4000", f"Is my technician coming {w.tag}?")
            note = await live.receive_json(timeout=30)
            assert note["k"] == "message" and note["channel"] == "sms"
            # the same person on the website's chat, identified by their e-mail
            chat = await http.ws_connect(f"{app_url.replace('http', 'ws')}/engage/chat/socket")
            await chat.send_str(
                json.dumps({"t": "hello", "visitor": None, "email": w.contact_address})
            )
            welcome = await chat.receive_json(timeout=10)
            assert welcome["t"] == "welcome"
            await chat.send_str(
                json.dumps({"t": "msg", "id": "c1", "text": "Also: bring the manual"})
            )
            assert (await chat.receive_json(timeout=10))["t"] == "ack"
            note2 = await live.receive_json(timeout=30)
            assert (
                note2["channel"] == "chat" and note2["conversation_id"] == note["conversation_id"]
            )
            conv = note["conversation_id"]
            # the agent answers on the chat: it reaches the visitor's widget
            r = await http.post(
                f"{app_url}/api/v1/engage/conversations/{conv}/replies",
                json={"idempotency_key": "r1", "body": "Yes, he brings it."},
                headers=headers,
            )
            assert r.status == 202, await r.text()
            assert (await r.json())["channel"] == "chat"
            got = await chat.receive_json(timeout=30)
            assert got == {
                "t": "msg",
                "from": "agent",
                "name": "Admin",  # the visitor sees who answers
                "text": "Yes, he brings it.",
                "at": got["at"],
            }
            # and by SMS: the job hands it to Kannel, which delivers it to the phone
            r = await http.post(
                f"{app_url}/api/v1/engage/conversations/{conv}/replies",
                json={"idempotency_key": "r2", "body": f"ETA 10:40 {w.tag}", "channel": "sms"},
                headers=headers,
            )
            assert r.status == 202, await r.text()
            registry = Registry()
            registry.add(Task(SMS_TASK, send_job, backoff_base_s=0.5))
            worker = Worker(test_settings.dsn, registry, poll_s=0.2, settings=test_settings)
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            try:
                await eventually_async(
                    lambda: _async(
                        any(
                            f"ETA 10:40 {w.tag}" in d and phone in d
                            for d in svc_sms.delivered(test_settings)
                        )
                    ),
                    what="the SMS delivered by the fake SMS centre",
                )
            finally:
                stop.set()
                await task
            r = await http.get(f"{app_url}/api/v1/engage/conversations/{conv}", headers=headers)
            detail = await r.json()
            assert [(m["channel"], m["direction"]) for m in detail["messages"]] == [
                ("sms", "in"),
                ("chat", "in"),
                ("chat", "out"),
                ("sms", "out"),
            ]
            assert (
                detail["conversation"]["status"] == "pending"
            )  # answered: waiting on the customer
            assert detail["conversation"]["first_response_at"] is not None
            # a rep of the other territory does not see it
            r = await http.get(
                f"{app_url}/api/v1/engage/conversations/{conv}", headers=people.headers("rep2")
            )
            assert r.status == 404
            await chat.close()
            await live.close()

    asyncio.run(scenario())
    msgs = _messages(db_dsn, w.contact_id)
    assert len({m["conversation_id"] for m in msgs}) == 1


async def _async(value: bool) -> bool:
    return value


def test_one_click_unsubscribe_stops_the_next_send_with_the_reason(
    db_dsn: str, test_settings: Settings, people: People, app_url: str, mail_world: MailWorld
) -> None:
    w = mail_world
    base = app_url
    settings = test_settings.with_overrides(http_port=int(app_url.rsplit(":", 1)[1]))
    headers = people.headers("admin")

    async def scenario() -> None:
        async with await psycopg.AsyncConnection.connect(db_dsn) as conn:
            queued = await send.enqueue_email(
                conn,
                idempotency_key=f"u1:{w.tag}",
                config=send.send_config(settings),
                sender_mailbox_id=w.mailbox_id,
                contact_id=w.contact_id,
                subject="Offer",
                html="<p>Hi</p>",
                purpose="service",
            )
            cur = await conn.execute("SELECT track_id FROM engage_outbox WHERE id = %s", (queued,))
            row = await cur.fetchone()
            assert row is not None
            key = await links.link_key(conn)
            await conn.commit()
        unsub = links.unsubscribe_url(base, key, row[0])
        async with aiohttp.ClientSession() as http:
            forged = await http.post(
                unsub[:-3] + "AAA",
                data="List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert forged.status == 404
            r = await http.post(
                unsub,
                data="List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert r.status == 200 and (await r.json())["unsubscribed"] is True
            # a person following the footer's link: a page for a phone, in English, with a
            # heading, whose button answers in words (it answered the JSON above)
            browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
            r = await http.get(unsub, headers=browser)
            page = await r.text()
            assert r.status == 200 and '<html lang="en">' in page and 'name="viewport"' in page
            assert "<h1>Unsubscribe</h1>" in page and '<form method="post">' in page
            r = await http.post(
                unsub,
                data="List-Unsubscribe=One-Click",
                headers={**browser, "Content-Type": "application/x-www-form-urlencoded"},
            )
            page = await r.text()
            assert r.status == 200 and r.content_type == "text/html"
            assert "<h1>You are unsubscribed</h1>" in page and "no more service e-mails" in page
            # the next send of that purpose is refused with the reason
            r = await http.post(
                f"{base}/api/v1/engage/emails",
                json={
                    "idempotency_key": "u2",
                    "contact_id": w.contact_id,
                    "subject": "Again",
                    "html": "<p>x</p>",
                    "purpose": "service",
                    "sender_mailbox_id": w.mailbox_id,
                },
                headers=headers,
            )
            assert r.status == 422
            err = (await r.json())["error"]
            assert (
                err["code"] == "no_consent"
                and "withdrew consent to service email" in err["message"]
            )
            # a transactional message (another purpose) still goes
            r = await http.post(
                f"{base}/api/v1/engage/emails",
                json={
                    "idempotency_key": "u3",
                    "contact_id": w.contact_id,
                    "subject": "Invoice",
                    "html": "<p>x</p>",
                    "sender_mailbox_id": w.mailbox_id,
                },
                headers=headers,
            )
            assert r.status == 202, await r.text()
        # the message queued before the unsubscribe is refused when its turn comes
        async with (
            send_worker(test_settings),
            await psycopg.AsyncConnection.connect(db_dsn) as conn,
        ):

            async def settled() -> dict[str, Any] | None:
                st = await send.outbox_state(conn, queued)
                return st if st and st["state"] not in ("queued", "sending") else None

            st = await eventually_async(settled, what="the queued message settled")
        assert st["state"] == "refused" and "one-click unsubscribe" in st["reason"]

    asyncio.run(scenario())


def _listening(port: int) -> list[str]:
    """The local addresses (hex, as /proc/net/tcp{,6} give them) listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, hex_port = local.rsplit(":", 1)
                if state == "0A" and int(hex_port, 16) == port:
                    found.append(addr)
    return found


def test_every_kannel_port_listens_on_loopback_only(
    test_settings: Settings, sms_world: MailWorld
) -> None:
    base = test_settings.sms_port
    for port in range(base, base + 4):
        addrs = _listening(port)
        assert addrs, f"nothing listens on Kannel's port {port}"
        assert set(addrs) <= {"0100007F", "00000000000000000000000001000000"}, (port, addrs)


def test_the_inbox_socket_takes_a_session_cookie_only_from_its_own_origin(
    people: People, app_url: str
) -> None:
    """A page of another origin that opens the inbox socket carries the agent's cookie;
    the socket then asks for a token like any stranger's, even when that origin's host
    merely ends like the product's (`evil-127.0.0.1:8080`)."""
    host = app_url.split("://", 1)[1]
    ws_url = f"{app_url.replace('http', 'ws')}/api/v1/engage/inbox/live"

    async def scenario() -> None:
        # unsafe: aiohttp keeps no cookies of an IP address host otherwise
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            r = await http.post(
                f"{app_url}/api/v1/auth/token",
                json={
                    "email": f"admin-{people.suffix}@x.test",
                    "password": "admin-pass-1",
                    "session": True,
                },
            )
            assert r.status == 201, await r.text()
            async with http.ws_connect(ws_url, origin=app_url) as own:
                assert (await own.receive_json(timeout=10))["k"] == "hello"
            for origin in (f"http://evil-{host}", "http://elsewhere.test"):
                async with http.ws_connect(ws_url, origin=origin) as foreign:
                    await foreign.send_str("not a token")
                    msg = await foreign.receive(timeout=10)
                    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4401, origin

    asyncio.run(scenario())
