"""Commands to devices: recorded, published, and their state kept from the device's acks.

A command is a row (`device_command`, state `sent`) written in the same transaction that
publishes it (devices.dispatch); a broker that does not take it rolls the row back. The
device's ack arrives through the gateway (`command_ack`, keyed by the command id, and
only from the device's own ack topic: the broker's ACL); `reconcile` turns acks into
`acked` or `failed` and commands past their deadline into `timed_out` (a late ack still
wins). Reads reconcile first, and the `devices.reconcile` job runs it periodically.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from devices import dispatch
from kernel.errors import Conflict, NotFound
from kernel.settings import Settings

NAMES = ("config", "ping", "reboot", "ota")

_RECONCILE_ACKS = """
UPDATE device_command c
SET state = CASE WHEN a.ok THEN 'acked' ELSE 'failed' END, detail = left(a.detail, 2000),
    finished_at = a.time
FROM command_ack a
WHERE a.command_id = c.command_id AND a.device_id = c.device_id
  AND c.state IN ('sent', 'timed_out')
  AND (%(device)s::text IS NULL OR c.device_id = %(device)s)
"""
_RECONCILE_TIMEOUTS = """
UPDATE device_command SET state = 'timed_out', finished_at = now(),
    detail = 'no acknowledgement before the deadline'
WHERE state = 'sent' AND deadline_at < now()
  AND (%(device)s::text IS NULL OR device_id = %(device)s)
"""


async def reconcile(conn: AsyncConnection[Any], device_id: str | None = None) -> int:
    """Bring command states up to date with acks and deadlines; how many changed."""
    args = {"device": device_id}
    n = (await conn.execute(_RECONCILE_ACKS, args)).rowcount
    n += (await conn.execute(_RECONCILE_TIMEOUTS, args)).rowcount
    return max(n, 0)


async def device_tenant(conn: AsyncConnection[Any], device_id: str) -> str:
    cur = await conn.execute(
        "SELECT d.tenant, e.state FROM device d LEFT JOIN device_enrolment e USING (device_id)"
        " WHERE d.device_id = %s",
        (device_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no device {device_id!r}", field="device_id")
    if row[1] == "decommissioned":
        raise Conflict(f"device {device_id!r} is decommissioned", field="device_id")
    return str(row[0])


async def send(
    conn: AsyncConnection[Any],
    settings: Settings,
    device_id: str,
    name: str,
    args: dict[str, Any],
    *,
    created_by: int | None,
    timeout_s: float,
    rollout_id: int | None = None,
) -> str:
    """Record and publish one command (inside the caller's transaction); its id."""
    tenant = await device_tenant(conn, device_id)
    command_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO device_command (command_id, device_id, name, args, created_by, deadline_at,"
        " rollout_id) VALUES (%s, %s, %s, %s, %s, now() + %s, %s)",
        (
            command_id,
            device_id,
            name,
            Jsonb(args),
            created_by,
            timedelta(seconds=timeout_s),
            rollout_id,
        ),
    )
    cmd = dispatch.command(command_id, time.time_ns() // 1_000_000, args)
    await dispatch.publish(settings, [dispatch.Outgoing(tenant, device_id, name, cmd)])
    return command_id


COMMAND_COLUMNS = (
    "command_id, device_id, name, args, state, detail, created_by, created_at, deadline_at,"
    " finished_at, rollout_id"
)


async def list_for_device(
    conn: AsyncConnection[Any], device_id: str, limit: int
) -> list[tuple[Any, ...]]:
    await reconcile(conn, device_id)
    cur = await conn.execute(
        f"SELECT {COMMAND_COLUMNS} FROM device_command WHERE device_id = %s"
        " ORDER BY created_at DESC LIMIT %s",
        (device_id, limit),
    )
    return list(await cur.fetchall())


async def get(conn: AsyncConnection[Any], device_id: str, command_id: str) -> tuple[Any, ...]:
    await reconcile(conn, device_id)
    cur = await conn.execute(
        f"SELECT {COMMAND_COLUMNS} FROM device_command WHERE device_id = %s AND command_id = %s",
        (device_id, command_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no command {command_id!r} for this device", field="command_id")
    return tuple(row)
