"""The device registry: a device's row and the Ed25519 public key its events are checked with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    device_id: str
    tenant: str
    kind: str  # "equipment" or "phone"
    public_key: bytes | None = None
    name: str | None = None


def register_devices(conn: psycopg.Connection, records: Sequence[DeviceRecord]) -> None:
    """Create or update devices; a key, once registered, changes only by registering again."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO device (device_id, tenant, kind, public_key, name) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (device_id) DO UPDATE SET tenant = EXCLUDED.tenant, kind = EXCLUDED.kind,"
            " public_key = COALESCE(EXCLUDED.public_key, device.public_key),"
            " name = COALESCE(EXCLUDED.name, device.name)",
            [(r.device_id, r.tenant, r.kind, r.public_key, r.name) for r in records],
        )
