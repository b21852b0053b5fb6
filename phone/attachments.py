"""Attachments of a work order or an account visit: the file (phone/media.py decides what
it is, phone/storage.py keeps it) and its row, plus a note on the account's timeline (a CRM
activity through crm.store, so the console shows it where it shows the visit's history).

Idempotent per (uploader, client key): an offline upload sent again after a lost answer
returns the first attachment."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from crm.access import account_clause, may_see_account
from crm.entities import ENTITIES
from crm.store import create_record
from kernel.errors import NotFound
from kernel.principal import Principal
from kernel.settings import Settings
from phone.media import Stored, prepare
from phone.s3store import S3Location, S3Store
from phone.storage import BlobStore, LocalStore

COLUMNS = (
    "id, sha256, size_bytes, content_type, kind, filename, width, height, has_thumb,"
    " account_id, work_order_id, activity_id, uploaded_by, created_at"
)


@dataclass(frozen=True, slots=True)
class Attachment:
    id: int
    sha256: str
    size_bytes: int
    content_type: str
    kind: str
    filename: str
    width: int | None
    height: int | None
    has_thumb: bool
    account_id: int
    work_order_id: int | None
    activity_id: int | None
    uploaded_by: int | None
    created_at: datetime


def store_for(settings: Settings) -> BlobStore:
    """S3_URL's bucket when set, else the local disk (one store per process and URL)."""
    if settings.s3_url is not None:
        return _s3_store(settings.s3_url)
    return LocalStore(Path(settings.state_dir) / "attachments")


@lru_cache(maxsize=4)
def _s3_store(url: str) -> BlobStore:
    return S3Store(S3Location.parse(url))


async def target(
    conn: AsyncConnection[Any],
    principal: Principal,
    account_id: int | None,
    work_order_id: int | None,
) -> tuple[int, int | None]:
    """(account, work order) the caller may attach to; 404 naming the field otherwise."""
    if work_order_id is not None:
        cur = await conn.execute(
            "SELECT account_id FROM work_orders WHERE id = %s", (work_order_id,)
        )
        row = await cur.fetchone()
        if row is None or not await may_see_account(conn, principal, int(row[0])):
            raise NotFound(f"no work order {work_order_id}", field="work_order_id")
        if account_id is not None and account_id != int(row[0]):
            raise NotFound(
                f"work order {work_order_id} is not account {account_id}'s", field="account_id"
            )
        return int(row[0]), work_order_id
    if account_id is None or not await may_see_account(conn, principal, account_id):
        raise NotFound(f"no account {account_id}", field="account_id")
    return account_id, None


async def existing(conn: AsyncConnection[Any], user_id: int, client_key: str) -> Attachment | None:
    cur = await conn.execute(
        f"SELECT {COLUMNS} FROM phone_attachments WHERE uploaded_by = %s AND client_key = %s",
        (user_id, client_key),
    )
    row = await cur.fetchone()
    return Attachment(*row) if row else None


async def save(
    conn: AsyncConnection[Any],
    settings: Settings,
    principal: Principal,
    *,
    account_id: int,
    work_order_id: int | None,
    filename: str,
    client_key: str,
    stored: Stored,
    kind: str | None = None,
    note: bool = True,
    source: str = "rep_app",
) -> Attachment:
    """Keep the file and its row (and a timeline note), in the caller's transaction."""
    store = store_for(settings)
    await asyncio.to_thread(store.put, stored.sha256, stored.data)
    if stored.thumb is not None:
        await asyncio.to_thread(store.put, stored.sha256, stored.thumb, thumb=True)
    kind = kind or stored.kind
    activity_id = None
    if note:
        act = await create_record(
            conn,
            ENTITIES["activities"],
            principal,
            {
                "type": "note",
                "subject": f"{'Photo' if kind == 'image' else kind.title()}: {filename}"[:500],
                "body": f"Attached from the phone: {filename} ({stored.content_type}, "
                f"{len(stored.data)} bytes, sha256 {stored.sha256})",
                "status": "done",
                "account_id": account_id,
                **({"work_order_id": work_order_id} if work_order_id else {}),
                "source": source,
                "source_ref": f"attachment:{stored.sha256[:16]}:{client_key}"[:200],
            },
        )
        activity_id = int(act["id"])
    cur = await conn.execute(
        f"""
        INSERT INTO phone_attachments (sha256, size_bytes, content_type, kind, filename, width,
            height, has_thumb, account_id, work_order_id, activity_id, uploaded_by, client_key)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        RETURNING {COLUMNS}
        """,
        (
            stored.sha256,
            len(stored.data),
            stored.content_type,
            kind,
            filename,
            stored.width,
            stored.height,
            stored.thumb is not None,
            account_id,
            work_order_id,
            activity_id,
            principal.user_id,
            client_key,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return Attachment(*row)


async def upload(
    conn: AsyncConnection[Any],
    settings: Settings,
    principal: Principal,
    data: bytes,
    *,
    account_id: int | None,
    work_order_id: int | None,
    filename: str,
    client_key: str,
) -> tuple[Attachment, bool]:
    """(attachment, created): the same client key gives the first attachment back."""
    principal.require_write()
    acc, wo = await target(conn, principal, account_id, work_order_id)
    found = await existing(conn, principal.user_id, client_key)
    if found is not None:
        return found, False
    stored = await asyncio.to_thread(prepare, data)
    att = await save(
        conn,
        settings,
        principal,
        account_id=acc,
        work_order_id=wo,
        filename=filename,
        client_key=client_key,
        stored=stored,
    )
    return att, True


async def visible(
    conn: AsyncConnection[Any],
    principal: Principal,
    *,
    attachment_id: int | None = None,
    account_id: int | None = None,
    work_order_id: int | None = None,
) -> list[Attachment]:
    cond, params = account_clause(principal, sql.Identifier("p", "account_id"))
    q = sql.SQL(
        "SELECT {} FROM phone_attachments p WHERE {} AND (%s::bigint IS NULL OR p.id = %s)"
        " AND (%s::bigint IS NULL OR p.account_id = %s)"
        " AND (%s::bigint IS NULL OR p.work_order_id = %s) ORDER BY p.id LIMIT 500"
    ).format(sql.SQL(", ").join(sql.SQL(f"p.{c.strip()}") for c in COLUMNS.split(",")), cond)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        q,
        [
            *params,
            attachment_id,
            attachment_id,
            account_id,
            account_id,
            work_order_id,
            work_order_id,
        ],
    )
    return [Attachment(**r) for r in await cur.fetchall()]
