"""E-mail and inbox benchmark against the embedded mail servers (Dovecot + the SMTP relay).

    python -m bench.engage [--quick]

1. Send: N templated e-mails (merge fields from CRM contacts, CSS inlined, tracked links)
   queued through `engage.send.enqueue_email` and sent by a job worker in its own process,
   which is killed with SIGKILL when half are sent and then restarted. Its leases are made
   to run out at once (the wait for them is not part of the figure). `send_per_s` counts
   the workers' sending time; `send_duplicates` counts the copies of a Message-ID found in
   the recipients' real IMAP mailboxes (and `send_missing` those never delivered).
   Baselines: the same messages sent straight over one aiosmtplib connection to the relay
   (no database, no outbox; at most the first 3,000), `baseline_smtp_per_s`, and over as many connections as the
   worker uses (`send_connections`), `baseline_smtp_parallel_per_s`.
2. IMAP sync: a mailbox of M messages (written as Maildir files, so Dovecot indexes them on
   the first SELECT, as after a migration) is synced from scratch by `imap_sync.sync_mailbox`
   (parse, link, thread, store): `imap_initial_msgs_per_s`; then an incremental sync with
   nothing new: `imap_empty_sync_ms` (median of 5; target < 200). Baseline: fetching the
   same messages with imapclient alone, `baseline_imap_fetch_msgs_per_s`.
3. Inbound to the live inbox: K messages sent by SMTP to a connected mailbox while the IDLE
   watcher runs and a browser-like client holds the inbox WebSocket of the real app; the
   time from the SMTP acceptance to the socket's message: `inbound_to_inbox_p95_ms`
   (target < 1000).

The last line is JSON with exactly those keys plus the extras named above.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

FULL = {"send": 10_000, "contacts": 100, "sync": 50_000, "inbound": 100}
BASELINE_ONE_CONNECTION_MAX = 3000  # the slow one-connection baseline: a rate, not a total
QUICK = {"send": 600, "contacts": 20, "sync": 2_000, "inbound": 20}
HTML = """<html><head><style>p.lead { font-size: 16px; color: #234 } a { color: #06c }</style></head>
<body><p class="lead">Hello {{contact.first_name}},</p>
<p>your maintenance visit for {{account.name}} is confirmed for {{visit.date}}.</p>
<p><a href="https://example.test/visits/{{visit.id}}">Details</a> ·
<a href="{{unsubscribe_url}}">Unsubscribe</a></p><p>{{sender.name}}</p></body></html>"""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- worker process


def worker_main(dsn: str, smtp_port: int, state_dir: str) -> None:
    from engage.send import SEND_TASK, send_batch
    from kernel.jobs import Registry, Task, Worker
    from kernel.settings import load_settings

    settings = load_settings({}).with_overrides(
        database_url=dsn, smtp_port=smtp_port, state_dir=Path(state_dir)
    )
    registry = Registry()
    registry.add(Task(SEND_TASK, send_batch, backoff_base_s=0.5))
    worker = Worker(dsn, registry, poll_s=0.2, settings=settings)
    asyncio.run(worker.run(asyncio.Event()))


# --------------------------------------------------------------------------- setup


async def _world(dsn: str, settings: Any, n_contacts: int, tag: str) -> dict[str, Any]:
    from psycopg import AsyncConnection

    from crm.entities import ACCOUNTS, CONTACTS
    from crm.records import set_account_contact
    from crm.store import create_record
    from engage import accounts, mailboxes
    from engage.timeline import engage_principal
    from identity.auth import create_user, issue_token

    boxes = {f"c{i}-{tag}@cust{i % 7}-{tag}.test": f"pw{i}" for i in range(n_contacts)}
    boxes[f"sync-{tag}@acme.test"] = "sync-pw"
    accounts.add_mailboxes(settings, boxes)
    p = engage_principal()
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "INSERT INTO territories (name) VALUES (%s) RETURNING id", (f"bench-{tag}",)
        )
        row = await cur.fetchone()
        assert row is not None
        territory = int(row[0])
        admin = await create_user(
            conn, email=f"admin-{tag}@acme.test", name="Admin", role="admin", password=None
        )
        token = (await issue_token(conn, admin, "bench"))[1]
        rep = await create_user(
            conn, email=f"rep-{tag}@acme.test", name="Rep", role="rep", territory_id=territory
        )
        sender = await mailboxes.connect_mailbox(
            conn,
            settings,
            address=f"rep-{tag}@acme.test",
            display_name="Rep at ACME",
            owner_user_id=rep,
            imap_password="rep-pw",
            rate_per_min=100_000,
        )
        contacts = []
        for i, addr in enumerate(a for a in boxes if a.startswith("c")):
            acc = await create_record(
                conn,
                ACCOUNTS,
                p,
                {"name": f"Plant {i} & Co", "territory_id": territory, "owner_id": rep},
            )
            con = await create_record(
                conn,
                CONTACTS,
                p,
                {
                    "first_name": f"Dana{i}",
                    "last_name": "Lee",
                    "email": addr,
                    "territory_id": territory,
                    "owner_id": rep,
                },
            )
            await set_account_contact(conn, p, acc["id"], con["id"], "primary")
            contacts.append((con["id"], addr, boxes[addr]))
        await conn.execute(
            "INSERT INTO engage_templates (name, subject, html) VALUES (%s, %s, %s)",
            (f"visit-{tag}", "Your visit, {{contact.first_name}}", HTML),
        )
        await conn.commit()
    return {
        "sender": sender,
        "contacts": contacts,
        "rep": rep,
        "token": token,
        "sync_address": f"sync-{tag}@acme.test",
    }


# --------------------------------------------------------------------------- 1. send


async def _at_least(conn: Any, count: Any, n: int) -> bool:
    return bool(await count(conn, "sent") >= n)


async def _until(probe: Any, interval_s: float, timeout_s: float = 600.0) -> None:
    """Poll the database (another process does the work) until `probe` holds."""
    deadline = time.monotonic() + timeout_s
    while not await probe():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark's send did not finish")
        await asyncio.sleep(interval_s)


async def bench_send(
    dsn: str, settings: Any, world: dict[str, Any], n: int, tag: str
) -> dict[str, Any]:
    from imapclient import IMAPClient
    from psycopg import AsyncConnection

    from engage import send

    config = send.send_config(settings)

    async def queue_some(todo: Any) -> None:
        async with await AsyncConnection.connect(dsn) as conn:
            for k, i in enumerate(todo):
                cid, _addr, _pw = world["contacts"][i % len(world["contacts"])]
                await send.enqueue_email(
                    conn,
                    idempotency_key=f"bench:{tag}:{i}",
                    config=config,
                    sender_mailbox_id=world["sender"]["id"],
                    contact_id=cid,
                    template=f"visit-{tag}",
                    merge={"visit": {"id": i, "date": "2026-12-08 10:40"}},
                )
                if k % 200 == 199:
                    await conn.commit()
            await conn.commit()

    # four callers at once (as API workers would), each committing every 200
    t0 = time.perf_counter()
    await asyncio.gather(*(queue_some(range(j, n, 4)) for j in range(4)))
    enqueue_s = time.perf_counter() - t0
    print(f"send: queued {n} templated e-mails in {enqueue_s:.1f} s ({n / enqueue_s:.0f}/s)")

    async def count(conn: Any, state: str) -> int:
        cur = await conn.execute("SELECT count(*) FROM engage_outbox WHERE state = %s", (state,))
        row = await cur.fetchone()
        return int(row[0])

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.engage",
                "--worker",
                dsn,
                str(settings.smtp_port),
                str(settings.state_dir),
            ],
            stdin=subprocess.DEVNULL,
        )

    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        t1 = time.perf_counter()
        proc = spawn()
        # past the middle and off a batch boundary (the worker marks sent rows 50 at a time)
        await _until(lambda: _at_least(conn, count, n // 2 + 10), 0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        first_s = time.perf_counter() - t1
        at_kill = await count(conn, "sent")
        sending = await count(conn, "sending")
        print(f"send: SIGKILL after {at_kill} sent, {sending} claimed and unfinished")
        # the dead worker's leases and its job's lease run out (simulated, not waited for)
        await conn.execute("UPDATE engage_outbox SET locked_until = now() WHERE state = 'sending'")
        await conn.execute("UPDATE jobs SET locked_until = now() WHERE status = 'running'")
        t2 = time.perf_counter()
        proc = spawn()
        await _until(lambda: _at_least(conn, count, n), 0.05, timeout_s=1800)
        second_s = time.perf_counter() - t2
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        cur = await conn.execute("SELECT message_id FROM engage_outbox WHERE state = 'sent'")
        ours = {str(r[0]).lower() for r in await cur.fetchall()}
        cur = await conn.execute("SELECT count(*) FROM engage_outbox WHERE attempts > 1")
        row = await cur.fetchone()
        resent = int(row[0]) if row else 0
    send_s = first_s + second_s
    seen: Counter[str] = Counter()
    for _cid, addr, pw in world["contacts"]:
        with IMAPClient("127.0.0.1", port=settings.imap_port, ssl=False) as c:
            c.login(addr, pw)
            c.select_folder("INBOX", readonly=True)
            uids = c.search(["ALL"])
            for i in range(0, len(uids), 1000):
                got = c.fetch(uids[i : i + 1000], ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
                for v in got.values():
                    raw = v[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split(":", 1)[-1]
                    mid = raw.strip().lower()
                    if mid in ours:
                        seen[mid] += 1
    duplicates = sum(c - 1 for c in seen.values())
    missing = len(ours - set(seen))
    print(
        f"send: {len(ours)} sent in {send_s:.1f} s of worker time ({n / send_s:.0f}/s);"
        f" {resent} re-sent after the kill; in the mailboxes: {duplicates} duplicates,"
        f" {missing} missing"
    )
    # baseline: the same messages straight over one SMTP connection (no DB, no outbox)
    import aiosmtplib

    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT raw FROM engage_outbox ORDER BY id LIMIT %s", (n,))
        raws = [bytes(r[0]) for r in await cur.fetchall()]

    def fresh(i: int, tag: str) -> bytes:
        # a fresh Message-ID so the relay delivers it (its duplicate check would skip it)
        return raws[i].replace(b"Message-ID: <", f"Message-ID: <{tag}{i}.".encode(), 1)

    async def raw_sender(todo: Any, tag: str) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=settings.smtp_port, start_tls=False)
        await client.connect()
        for i in todo:
            rcpt = world["contacts"][i % len(world["contacts"])][1]
            await client.sendmail(world["sender"]["address"], [rcpt], fresh(i, tag))
        await client.quit()

    n_base = min(len(raws), BASELINE_ONE_CONNECTION_MAX)
    t3 = time.perf_counter()
    await raw_sender(iter(range(n_base)), "b")
    base_s = time.perf_counter() - t3
    # the same over as many connections as the worker uses (the relay delivers in parallel)
    shared = iter(range(len(raws)))
    t4 = time.perf_counter()
    await asyncio.gather(*(raw_sender(shared, "p") for _ in range(send.SEND_CONNECTIONS)))
    par_s = time.perf_counter() - t4
    print(
        f"send: baseline aiosmtplib alone {n_base / base_s:.0f}/s over one connection"
        f" (the first {n_base}),"
        f" {n / par_s:.0f}/s over {send.SEND_CONNECTIONS}"
    )
    return {
        "send_per_s": round(n / send_s, 1),
        "send_duplicates": duplicates,
        "send_missing": missing,
        "send_resent_after_kill": resent,
        "enqueue_per_s": round(n / enqueue_s, 1),
        "baseline_smtp_per_s": round(n_base / base_s, 1),
        "baseline_smtp_parallel_per_s": round(n / par_s, 1),
        "send_connections": send.SEND_CONNECTIONS,
    }


# --------------------------------------------------------------------------- 2. IMAP sync


def fill_maildir(settings: Any, address: str, m: int, contacts: list[tuple[int, str, str]]) -> None:
    from engage.accounts import file_owner
    from fieldmesh.svc_mail import maildir_of

    md = maildir_of(settings, address)
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    senders = [a for _c, a, _p in contacts] + [
        f"someone{i}@elsewhere{i % 13}.test" for i in range(150)
    ]
    now = int(time.time())
    for i in range(m):
        msg = EmailMessage()
        msg["From"] = senders[i % len(senders)]
        msg["To"] = address
        msg["Subject"] = f"{'Re: ' if i % 3 else ''}Service request {i % 500}"
        msg["Message-ID"] = make_msgid(domain="bench.test")
        msg["Date"] = "Mon, 07 Dec 2026 10:00:00 +0000"
        body = (
            f"Hello,\n\nthe unit {i} shows error E{i % 40}. Please send someone.\n\n-- \nRegards\n"
        )
        msg.set_content(body + ("> earlier text\n" * 20))
        (md / "new" / f"{now}.M{i}P1.bench").write_bytes(msg.as_bytes())
    if os.geteuid() == 0:
        owner = file_owner()
        for root, dirs, files in os.walk(md.parent):
            os.chown(root, owner.pw_uid, owner.pw_gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), owner.pw_uid, owner.pw_gid)


async def bench_sync(dsn: str, settings: Any, world: dict[str, Any], m: int) -> dict[str, Any]:
    from imapclient import IMAPClient
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    from engage import imap_sync
    from kernel import secretbox

    address = world["sync_address"]
    t = time.perf_counter()
    fill_maildir(settings, address, m, world["contacts"])
    print(f"sync: wrote {m} Maildir messages in {time.perf_counter() - t:.1f} s")
    # baseline: imapclient alone fetching every message (after Dovecot indexed them once)
    with IMAPClient("127.0.0.1", port=settings.imap_port, ssl=False, timeout=600) as c:
        c.login(address, "sync-pw")
        t0 = time.perf_counter()
        c.select_folder("INBOX", readonly=True)
        index_s = time.perf_counter() - t0
        uids = c.search(["ALL"])
        t1 = time.perf_counter()
        for i in range(0, len(uids), imap_sync.FETCH_BATCH):
            c.fetch(uids[i : i + imap_sync.FETCH_BATCH], ["RFC822.SIZE"])
            c.fetch(uids[i : i + imap_sync.FETCH_BATCH], ["BODY.PEEK[]"])
        base_s = time.perf_counter() - t1
    print(
        f"sync: Dovecot indexed the new Maildir in {index_s:.1f} s; baseline fetch {m / base_s:.0f} msgs/s"
    )
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "INSERT INTO engage_mailboxes (address, imap_password) VALUES (%s, %s) RETURNING id",
            (address, secretbox.seal(settings, "sync-pw")),
        )
        row = await cur.fetchone()
        assert row is not None
        mailbox_id = int(row[0])
        await conn.commit()
    async with AsyncConnectionPool(dsn, min_size=1, max_size=4, open=False) as pool:
        t2 = time.perf_counter()
        res = await imap_sync.sync_mailbox(pool, settings, mailbox_id)
        sync_s = time.perf_counter() - t2
        empties = []
        for _ in range(5):
            t3 = time.perf_counter()
            again = await imap_sync.sync_mailbox(pool, settings, mailbox_id)
            empties.append((time.perf_counter() - t3) * 1000)
            assert again.fetched == 0
    print(
        f"sync: initial {res.fetched} fetched, {res.stored} stored, {res.dead} dead in"
        f" {sync_s:.1f} s ({m / sync_s:.0f} msgs/s); empty incremental median"
        f" {statistics.median(empties):.1f} ms"
    )
    return {
        "imap_initial_msgs_per_s": round(m / sync_s, 1),
        "imap_empty_sync_ms": round(statistics.median(empties), 1),
        "baseline_imap_fetch_msgs_per_s": round(m / base_s, 1),
    }


# --------------------------------------------------------------------------- 3. inbound -> live


async def bench_inbound(dsn: str, settings: Any, world: dict[str, Any], k: int) -> dict[str, Any]:
    import aiohttp
    import aiosmtplib
    from aiohttp import web
    from psycopg_pool import AsyncConnectionPool

    from engage import imap_sync
    from fieldmesh.app import build_app

    app_settings = settings.with_overrides(database_url=dsn, http_port=_free_port())
    runner = web.AppRunner(build_app(app_settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", app_settings.http_port).start()
    stop = asyncio.Event()
    pool = AsyncConnectionPool(dsn, min_size=1, max_size=6, open=False)
    await pool.open()
    # only the rep's mailbox is watched (the big sync mailbox is another benchmark's)
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM engage_mailboxes WHERE address = %s", (world["sync_address"],)
        )
    watcher = asyncio.create_task(imap_sync.watch(pool, app_settings, stop))
    latencies: list[float] = []
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(
                f"ws://127.0.0.1:{app_settings.http_port}/api/v1/engage/inbox/live"
            )
            await ws.send_str(world["token"])
            assert (await ws.receive_json(timeout=10))["k"] == "hello"
            await asyncio.sleep(1.0)  # the IDLE sessions are up
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=settings.smtp_port, start_tls=False)
            await smtp.connect()
            for i in range(k):
                _cid, addr, _pw = world["contacts"][i % len(world["contacts"])]
                msg = EmailMessage()
                msg["From"] = addr
                msg["To"] = world["sender"]["address"]
                msg["Subject"] = f"Question {i}"
                msg["Message-ID"] = make_msgid(domain="bench.test")
                msg.set_content(f"When does the technician come? ({i})")
                t0 = time.perf_counter()
                await smtp.send_message(msg)
                deadline = time.perf_counter() + 60
                while True:
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        raise TimeoutError(f"inbound message {i} never reached the live inbox")
                    note = await ws.receive_json(timeout=left)
                    if note.get("k") == "message" and note.get("direction") == "in":
                        break
                latencies.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.05)
            await smtp.quit()
            await ws.close()
    finally:
        stop.set()
        await watcher
        await pool.close()
        await runner.cleanup()
    p50, p95 = _pct(latencies, 0.5), _pct(latencies, 0.95)
    print(
        f"inbound: {k} e-mails SMTP -> IDLE -> sync -> live socket: p50 {p50:.0f} ms, p95 {p95:.0f} ms"
    )
    return {"inbound_to_inbox_p95_ms": round(p95, 1), "inbound_to_inbox_p50_ms": round(p50, 1)}


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench.engage")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", nargs=3, metavar=("DSN", "SMTP_PORT", "STATE_DIR"))
    for key in FULL:
        ap.add_argument(f"--{key}", type=int, help=f"override the size ({FULL[key]} full)")
    args = ap.parse_args()
    if args.worker:
        worker_main(args.worker[0], int(args.worker[1]), args.worker[2])
        return
    from fieldmesh import services
    from fieldmesh.migrate import upgrade
    from kernel.settings import load_settings

    sizes = dict(QUICK if args.quick else FULL)
    for key in FULL:
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    print("sizes:", sizes)
    settings = load_settings()
    services.stop_at_exit_if_started(settings)
    services.ensure_up(settings, migrate=False)
    tag = uuid.uuid4().hex[:6]
    name = f"fm_bench_engage_{tag}"
    dsn = services.create_database(settings, name)
    out: dict[str, Any] = {}
    try:
        upgrade(dsn)
        db_settings = settings.with_overrides(database_url=dsn)
        world = asyncio.run(_world(dsn, db_settings, sizes["contacts"], tag))
        out.update(asyncio.run(bench_send(dsn, db_settings, world, sizes["send"], tag)))
        out.update(asyncio.run(bench_sync(dsn, db_settings, world, sizes["sync"])))
        out.update(asyncio.run(bench_inbound(dsn, db_settings, world, sizes["inbound"])))
    finally:
        services.drop_database(settings, name)
    out["quick"] = bool(args.quick)
    out["sizes"] = sizes
    keys = (
        "send_per_s",
        "send_duplicates",
        "imap_initial_msgs_per_s",
        "imap_empty_sync_ms",
        "inbound_to_inbox_p95_ms",
    )
    print(
        json.dumps({**{k: out[k] for k in keys}, **{k: v for k, v in out.items() if k not in keys}})
    )


if __name__ == "__main__":
    main()
