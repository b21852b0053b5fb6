"""Who may see what in geo: territories, geofences, subjects' history, visits.

The rules are the CRM's own (kernel.principal), applied to geo's records:
- a territory is visible to admins and viewers, and otherwise when it is the caller's own
  (a rep's) or one of their team's (a manager's);
- a subject's track, stops and fence events are a device's data: visible exactly when the
  device is (telemetry.access: a phone through its rep, equipment through its account);
- a visit is visible when its account is, or when its rep is the caller or in their team;
- a geofence is visible when the account, rep or device it belongs to is; a fence that
  belongs to none of them (a yard, a depot) is visible to those who see a territory it
  touches.
Records not visible answer 404, as if they did not exist.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

from crm.access import account_clause
from kernel.errors import NotFound
from kernel.http import Req
from kernel.principal import Principal
from telemetry.access import device_clause, may_see_device


def visible_territories(principal: Principal) -> list[int] | None:
    """The territory ids the principal may see; None for all of them."""
    if principal.sees_everything:
        return None
    return list(principal.team_territory_ids)


def fence_clause(principal: Principal, alias: str = "g") -> tuple[sql.Composable, list[Any]]:
    """SQL condition: the geofence row `alias` is one the principal may see."""
    if principal.sees_everything:
        return sql.SQL("TRUE"), []

    def col(name: str) -> sql.Identifier:
        return sql.Identifier(alias, name)

    account, account_params = account_clause(principal, col("account_id"))
    device, device_params = device_clause(principal, col("device_id"))
    cond = sql.SQL(
        "(({account} IS NOT NULL AND {acc_ok}) OR {rep} = ANY(%s)"
        " OR ({device} IS NOT NULL AND {dev_ok})"
        " OR ({account} IS NULL AND {rep} IS NULL AND {device} IS NULL AND EXISTS ("
        "SELECT 1 FROM territories fence_t WHERE fence_t.id = ANY(%s)"
        " AND ST_DWithin(fence_t.geom, {geom}, coalesce({radius}, 0)))))"
    ).format(
        account=col("account_id"),
        acc_ok=account,
        rep=col("rep_id"),
        device=col("device_id"),
        dev_ok=device,
        geom=col("geom"),
        radius=col("radius_m"),
    )
    params = [
        *account_params,
        list(principal.team_user_ids),
        *device_params,
        list(principal.team_territory_ids),
    ]
    return cond, params


def visit_clause(principal: Principal, alias: str = "v") -> tuple[sql.Composable, list[Any]]:
    """SQL condition: the visit row `alias` is one the principal may see."""
    if principal.sees_everything:
        return sql.SQL("TRUE"), []
    account, params = account_clause(principal, sql.Identifier(alias, "account_id"))
    return (
        sql.SQL("({} OR {} = ANY(%s))").format(account, sql.Identifier(alias, "rep_id")),
        [*params, list(principal.team_user_ids)],
    )


async def may_see_fence(conn: AsyncConnection[Any], principal: Principal, fence_id: int) -> bool:
    cond, params = fence_clause(principal, "g")
    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM geofences g WHERE g.id = %s AND {})").format(cond)
    row = await (await conn.execute(query, [fence_id, *params])).fetchone()
    return bool(row and row[0])


async def fence_scope(req: Req, path: Any) -> None:
    """Endpoint scope for paths with a `fence_id`."""
    async with req.connection() as conn:
        if not await may_see_fence(conn, req.user, path.fence_id):
            raise NotFound(f"no geofence {path.fence_id}", field="fence_id")


async def subject_scope(req: Req, path: Any) -> None:
    """Endpoint scope for paths with a `subject_id` (a device: a phone or equipment)."""
    async with req.connection() as conn:
        if not await may_see_device(conn, req.user, path.subject_id):
            raise NotFound(f"no subject {path.subject_id!r}", field="subject_id")
