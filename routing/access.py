"""Who may see a routing plan, whose routes in it, and who may change it.

- Admins and viewers see every plan and every route in it.
- A manager sees the plans of their team's territories, plans that route anyone in their
  team, and plans they or their team created; every route in them.
- A rep sees only the plans in which they have stops, and in them only their own route
  (stops, GeoJSON, calendar); the other reps' routes and the dropped visits stay hidden.
- A rep's .ics needs that rep, their manager (the rep is in the caller's team) or an admin
  or viewer.
- Planning and re-planning need a manager of every territory planned (or an admin); a stop
  is locked or accepted by its own rep, or by a manager who sees the plan.
Plans and routes not visible answer 404; forbidden writes 403.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from psycopg import AsyncConnection

from kernel.errors import NotFound
from kernel.http import Req
from kernel.principal import Forbidden, Principal
from routing import store

Row = dict[str, Any]
_PLAN_ROW = web.RequestKey("routing_plan_row", dict[str, Any])


def plan_territories(row: Row) -> list[int]:
    ids = (row.get("request") or {}).get("territory_ids") or []
    return [int(t) for t in ids] or ([row["territory_id"]] if row["territory_id"] else [])


async def may_see_plan(conn: AsyncConnection[Any], principal: Principal, row: Row) -> bool:
    if principal.sees_everything:
        return True
    if principal.role != "rep" and (
        set(plan_territories(row)) & set(principal.team_territory_ids)
        or row["created_by"] in principal.team_user_ids
    ):
        return True
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM routing_stops WHERE plan_id = %s AND rep_id = ANY(%s))",
        (row["id"], list(principal.team_user_ids)),
    )
    found = await cur.fetchone()
    return bool(found and found[0])


def only_rep(principal: Principal) -> str | None:
    """The one rep whose route the principal sees in a visible plan (None: every rep)."""
    return str(principal.user_id) if principal.role == "rep" else None


def may_see_rep(principal: Principal, rep_id: int) -> bool:
    """A rep's own calendar: the rep, their manager, or those who see everything."""
    return principal.sees_everything or rep_id in principal.team_user_ids


def require_territories(principal: Principal, territory_ids: list[int] | tuple[int, ...]) -> None:
    """403 unless the principal manages every one of the territories (admins manage all)."""
    if principal.is_admin:
        return
    outside = [t for t in territory_ids if t not in principal.team_territory_ids]
    if outside:
        raise Forbidden(f"territory {outside[0]} is not one of your team's territories")


async def plan_scope(req: Req, path: Any) -> None:
    """Endpoint scope for paths with a `plan_id`: 404 unless the caller may see the plan.
    The plan's row is kept for the handler (`plan_row`)."""
    async with req.connection() as conn:
        row = await store.get_plan_row(conn, path.plan_id)
        if row is None or not await may_see_plan(conn, req.user, row):
            raise NotFound(f"plan {path.plan_id} not found", field="plan_id")
    req.request[_PLAN_ROW] = row


def plan_row(req: Req) -> Row:
    """The plan the endpoint's scope found visible."""
    return req.request[_PLAN_ROW]
