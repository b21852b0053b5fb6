"""A rep's phone registered as a field device: a row in `device` (kind phone), the rep it
belongs to (`geo_device_rep`, so its geofence check-ins become the rep's visits), and its
own broker account (kernel.broker: literal topics of this device only)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from kernel.broker import BrokerError, device_password, provision_mqtt_users
from kernel.errors import NotFound, Unavailable
from kernel.settings import Settings

MAX_PHONES_PER_USER = 5


@dataclass(frozen=True, slots=True)
class Phone:
    device_id: str
    user_id: int
    label: str


def new_device_id(user_id: int) -> str:
    return f"ph{user_id}-{secrets.token_hex(4)}"


async def register(
    conn: AsyncConnection[Any], settings: Settings, user_id: int, label: str
) -> Phone:
    """A new phone of `user_id`; beyond MAX_PHONES_PER_USER the oldest is retired (its
    history stays, its broker account is revoked by the caller's next rotation)."""
    device_id = new_device_id(user_id)
    await conn.execute(
        "INSERT INTO device (device_id, tenant, kind, name) VALUES (%s, %s, 'phone', %s)",
        (device_id, settings.tenant, label or None),
    )
    await conn.execute(
        "INSERT INTO geo_device_rep (device_id, user_id) VALUES (%s, %s)", (device_id, user_id)
    )
    await conn.execute(
        "INSERT INTO phone_devices (device_id, user_id, label) VALUES (%s, %s, %s)",
        (device_id, user_id, label),
    )
    await conn.execute(
        """
        UPDATE phone_devices SET revoked_at = now() WHERE device_id IN (
            SELECT device_id FROM phone_devices WHERE user_id = %s AND revoked_at IS NULL
            ORDER BY created_at DESC, device_id OFFSET %s)
        """,
        (user_id, MAX_PHONES_PER_USER),
    )
    return Phone(device_id, user_id, label)


async def owned(conn: AsyncConnection[Any], user_id: int, device_id: str) -> Phone:
    """The caller's own active phone, or 404 (another's phone does not exist for them)."""
    cur = await conn.execute(
        "SELECT device_id, user_id, label FROM phone_devices"
        " WHERE device_id = %s AND user_id = %s AND revoked_at IS NULL",
        (device_id, user_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"phone {device_id[:80]!r} not found")
    return Phone(row[0], int(row[1]), row[2])


async def broker_password(settings: Settings, device_id: str) -> str:
    """Provision (idempotent) the phone's broker account; its password."""
    try:
        creds = await asyncio.to_thread(provision_mqtt_users, settings, [device_id])
    except (BrokerError, OSError, TimeoutError) as exc:
        raise Unavailable(f"the broker could not provision the phone: {exc}") from exc
    return creds[0].password if creds else device_password(settings, device_id)
