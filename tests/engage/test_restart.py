"""A worker killed (SIGKILL) in the middle of a send batch: nothing is sent twice, nothing lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter

from imapclient import IMAPClient
from psycopg import AsyncConnection

from engage import send
from kernel.jobs import enqueue
from kernel.settings import Settings
from tests.engage.conftest import MailWorld
from tests.eventually import eventually_async

N = 300


def _spawn(dsn: str, settings: Settings) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.engage.send_worker_proc", dsn, str(settings.smtp_port)],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdin=subprocess.DEVNULL,
    )


async def _count(conn: AsyncConnection, mailbox_id: int, state: str) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM engage_outbox WHERE mailbox_id = %s AND state = %s",
        (mailbox_id, state),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def test_a_worker_killed_mid_batch_sends_nothing_twice(
    db_dsn: str, test_settings: Settings, mail_world: MailWorld
) -> None:
    w = mail_world

    async def scenario() -> None:
        async with await AsyncConnection.connect(db_dsn) as conn:
            for i in range(N):
                await send.enqueue_email(
                    conn,
                    idempotency_key=f"batch:{w.tag}:{i}",
                    config=send.send_config(test_settings),
                    sender_mailbox_id=w.mailbox_id,
                    contact_id=w.contact_id,
                    subject=f"Notice {i}",
                    html="<p>Dear {{contact.first_name}}, notice " + str(i) + "</p>",
                )
            await conn.commit()
            proc = _spawn(db_dsn, test_settings)
            try:

                async def some_sent() -> bool:
                    return await _count(conn, w.mailbox_id, "sent") >= 40

                await eventually_async(some_sent, what="the first sends", interval_s=0.02)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
            done_before = await _count(conn, w.mailbox_id, "sent")
            assert done_before < N, "the kill must land mid-batch"
            # the dead worker's leases run out (time passing, without waiting for it)
            await conn.execute(
                "UPDATE engage_outbox SET locked_until = now() WHERE mailbox_id = %s"
                " AND state = 'sending'",
                (w.mailbox_id,),
            )
            await enqueue(conn, send.SEND_TASK, {"mailbox_id": w.mailbox_id})
            await conn.commit()
            proc = _spawn(db_dsn, test_settings)
            try:

                async def all_sent() -> bool:
                    return await _count(conn, w.mailbox_id, "sent") == N

                await eventually_async(all_sent, what="every message sent after the restart")
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
            cur = await conn.execute(
                "SELECT count(*) FROM engage_outbox WHERE mailbox_id = %s AND attempts > 1",
                (w.mailbox_id,),
            )
            row = await cur.fetchone()
            assert row is not None and row[0] > 0  # the dead worker's claimed rows went again

    asyncio.run(scenario())
    with IMAPClient("127.0.0.1", port=test_settings.imap_port, ssl=False) as c:
        c.login(w.contact_address, w.contact_password)
        c.select_folder("INBOX", readonly=True)
        uids = c.search(["ALL"])
        heads = c.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    ids = Counter(v[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].strip().lower() for v in heads.values())
    assert len(ids) == N  # every message arrived
    assert max(ids.values()) == 1  # none twice
