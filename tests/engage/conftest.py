"""engage's fixtures: a CRM contact with a real mailbox in the embedded Dovecot, a rep's
connected mailbox, and a job worker running the send task."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from psycopg import AsyncConnection

from crm.entities import ACCOUNTS, CONTACTS
from crm.records import set_account_contact
from crm.store import create_record
from engage import accounts, mailboxes
from engage.send import SEND_TASK, send_batch
from engage.timeline import engage_principal
from identity.auth import create_user
from kernel.jobs import Registry, Task, Worker
from kernel.settings import Settings
from tests.world import People


@dataclass(frozen=True)
class MailWorld:
    tag: str
    rep_id: int
    mailbox_id: int
    rep_address: str
    rep_password: str
    contact_id: int
    account_id: int
    contact_address: str
    contact_password: str


async def make_world(
    dsn: str, settings: Settings, people: People, name: str = "Ann", phone: str | None = None
) -> MailWorld:
    tag = uuid.uuid4().hex[:8]
    rep_addr = f"rep-{tag}@acme.test"
    contact_addr = f"{name.lower()}-{tag}@cust-{tag}.test"
    contact_pw = f"pw-{tag}"
    accounts.add_mailbox(settings, contact_addr, contact_pw)
    async with await AsyncConnection.connect(dsn) as conn:
        rep_id = await create_user(
            conn, email=rep_addr, name="Rep One", role="rep", territory_id=people.t1
        )
        box = await mailboxes.connect_mailbox(
            conn,
            settings,
            address=rep_addr,
            display_name="Rep One",
            owner_user_id=rep_id,
            imap_password=f"rep-{tag}",
        )
        p = engage_principal()
        acc = await create_record(
            conn,
            ACCOUNTS,
            p,
            {
                "name": f"Bright & <Co> {tag}",
                "territory_id": people.t1,
                "owner_id": rep_id,
            },
        )
        con = await create_record(
            conn,
            CONTACTS,
            p,
            {
                "first_name": name,
                "last_name": "Lee",
                "email": contact_addr,
                "territory_id": people.t1,
                "owner_id": rep_id,
                "phone": phone,
            },
        )
        await set_account_contact(conn, p, acc["id"], con["id"], "primary")
        await conn.commit()
    return MailWorld(
        tag,
        rep_id,
        box["id"],
        rep_addr,
        f"rep-{tag}",
        con["id"],
        acc["id"],
        contact_addr,
        contact_pw,
    )


@pytest.fixture
def mail_world(db_dsn: str, test_settings: Settings, people: People) -> MailWorld:
    return asyncio.run(make_world(db_dsn, test_settings, people))


@asynccontextmanager
async def send_worker(settings: Settings) -> AsyncIterator[Worker]:
    registry = Registry()
    registry.add(Task(SEND_TASK, send_batch, backoff_base_s=0.5))
    worker = Worker(settings.dsn, registry, poll_s=0.2, grace_s=5.0, settings=settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await task
