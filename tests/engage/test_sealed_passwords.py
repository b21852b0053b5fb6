"""IMAP passwords are sealed at rest: new mailboxes are written sealed, and the migration
eng0100 seals the rows an older version wrote in plain text (and its downgrade opens them)."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from alembic import command
from psycopg import AsyncConnection

from engage import imap_sync, mailboxes
from fieldmesh.migrate import alembic_config
from kernel import secretbox
from kernel.settings import Settings


def _stored(dsn: str, address: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT imap_password FROM engage_mailboxes WHERE address = %s", (address,)
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_a_connected_mailbox_keeps_its_password_sealed_and_syncs_with_it(
    db_dsn: str, test_settings: Settings
) -> None:
    address = f"sealed-{uuid.uuid4().hex[:8]}@acme.test"

    async def connect() -> int:
        async with await AsyncConnection.connect(db_dsn) as conn:
            box = await mailboxes.connect_mailbox(
                conn, test_settings, address=address, imap_password="s3cret-pw"
            )
            await conn.commit()
            return int(box["id"])

    mailbox_id = asyncio.run(connect())
    stored = _stored(db_dsn, address)
    assert "s3cret-pw" not in stored and secretbox.is_sealed(stored)
    assert secretbox.open_(test_settings, stored) == "s3cret-pw"

    async def sync() -> imap_sync.SyncResult:
        from psycopg_pool import AsyncConnectionPool

        async with AsyncConnectionPool(db_dsn, min_size=1, max_size=2, open=False) as pool:
            return await imap_sync.sync_mailbox(pool, test_settings, mailbox_id)

    assert asyncio.run(sync()).mailbox_id == mailbox_id  # logged in with the opened password


def test_the_migration_seals_plain_text_passwords_of_existing_rows(
    db_dsn: str, test_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the migration reads the deployment's settings: point them at this session's key
    monkeypatch.setenv("FIELDMESH_STATE_DIR", str(test_settings.state_dir))
    monkeypatch.delenv("FIELDMESH_SECRET_KEYS", raising=False)
    address = f"legacy-{uuid.uuid4().hex[:8]}@acme.test"
    cfg = alembic_config(db_dsn)
    command.downgrade(cfg, "eng0001")
    try:
        with psycopg.connect(db_dsn) as conn:
            conn.execute(
                "INSERT INTO engage_mailboxes (address, imap_host, imap_password)"
                " VALUES (%s, 'imap.example.test', 'plain-pw')",
                (address,),
            )
    finally:
        command.upgrade(cfg, "heads")
    stored = _stored(db_dsn, address)
    assert secretbox.is_sealed(stored) and "plain-pw" not in stored
    assert secretbox.open_(test_settings, stored) == "plain-pw"
