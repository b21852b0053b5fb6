"""Who may see a device: the record scope of its telemetry, GPS, alerts and commands.

The `device_scope` view (crm_sync migration s0003) maps each device to the territory and
owner it is seen through: equipment through its asset's account, a phone through its rep.
The policy on those columns is the CRM's own (`kernel.principal.access_clause`), so a
device is visible exactly when its account or its rep is. Unassigned devices are seen by
admins and viewers only.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

from kernel.errors import NotFound
from kernel.http import Req
from kernel.principal import Principal, access_clause


def device_clause(
    principal: Principal, device_column: sql.Composable
) -> tuple[sql.Composable, list[Any]]:
    """SQL condition: the device in `device_column` is one the principal may see."""
    if principal.sees_everything:
        return sql.SQL("TRUE"), []
    cond, params = access_clause(principal, "ds")
    return (
        sql.SQL("EXISTS (SELECT 1 FROM device_scope ds WHERE ds.device_id = {} AND {})").format(
            device_column, cond
        ),
        params,
    )


async def may_see_device(conn: AsyncConnection[Any], principal: Principal, device_id: str) -> bool:
    cond, params = device_clause(principal, sql.Identifier("d", "device_id"))
    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM device d WHERE d.device_id = %s AND {})").format(
        cond
    )
    row = await (await conn.execute(query, [device_id, *params])).fetchone()
    return bool(row and row[0])


async def require_device(req: Req, device_id: str) -> None:
    """404 unless the device exists and the caller may see it (existence does not leak)."""
    async with req.connection() as conn:
        if not await may_see_device(conn, req.user, device_id):
            raise NotFound(f"no device {device_id!r}", field="device_id")


async def device_scope(req: Req, path: Any) -> None:
    """Endpoint scope for paths with a `device_id`."""
    await require_device(req, path.device_id)
