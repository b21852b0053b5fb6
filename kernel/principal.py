"""Who is asking, and what they may see: the principal and the record-level policy as SQL.

Pure values and SQL composition, no I/O: the HTTP registry (kernel.http) hands every
handler a Principal, and list queries restrict rows with `access_clause`. Admins and
viewers see everything; a rep sees records of their own territory or that they own; a
manager sees the records owned by anyone in their team (recursively through
users.manager_id) or in any of the team's territories. Records a principal may not see
answer 404 (not 403), so that their existence does not leak; a write they may not make
answers 403. Users, tokens and logins are kept by `identity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from kernel.errors import ApiError

ROLES = ("admin", "manager", "rep", "viewer")


class AuthError(ApiError):
    """Missing or bad credentials (401)."""

    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            code="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="fieldmesh"'},
        )


class Forbidden(ApiError):
    """Authenticated, but the role does not allow this action (403)."""

    status = 403

    def __init__(self, message: str) -> None:
        super().__init__(message, code="forbidden")


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    email: str
    role: str
    territory_id: int | None
    team_user_ids: tuple[int, ...]  # the user themself and (for managers) their team
    team_territory_ids: tuple[int, ...]
    token_id: int | None = None

    @property
    def sees_everything(self) -> bool:
        return self.role in ("admin", "viewer")

    @property
    def can_write(self) -> bool:
        return self.role != "viewer"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require_write(self) -> None:
        if not self.can_write:
            raise Forbidden("viewers have read-only access")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this action needs the admin role")

    def may_see(self, owner_id: int | None, territory_id: int | None) -> bool:
        """The same policy as access_clause, for a record already in memory."""
        if self.sees_everything:
            return True
        return (owner_id is not None and owner_id in self.team_user_ids) or (
            territory_id is not None and territory_id in self.team_territory_ids
        )


def _in(column: sql.Composable, values: tuple[int, ...]) -> tuple[sql.Composable, list[Any]]:
    # Equality for one value lets the planner walk an index in order; ANY for several.
    if len(values) == 1:
        return sql.SQL("{} = %s").format(column), [values[0]]
    return sql.SQL("{} = ANY(%s)").format(column), [list(values)]


def access_branches(
    principal: Principal,
    alias: str,
    *,
    owner_column: str = "owner_id",
    extra_owner_columns: tuple[str, ...] = (),
) -> list[tuple[sql.Composable, list[Any]]]:
    """The record-level policy as disjoint conditions (each excludes the ones before it):
    territory first, then each owner column. Their union is `access_clause`; a list query
    can run one index-friendly branch per condition and merge them (UNION ALL)."""
    raw: list[tuple[sql.Composable, list[Any]]] = []
    if principal.team_territory_ids:
        raw.append(_in(sql.Identifier(alias, "territory_id"), principal.team_territory_ids))
    for col in (owner_column, *extra_owner_columns):
        raw.append(_in(sql.Identifier(alias, col), principal.team_user_ids))
    out: list[tuple[sql.Composable, list[Any]]] = []
    for i, (cond, params) in enumerate(raw):
        parts, all_params = [cond], list(params)
        for prev, prev_params in raw[:i]:
            parts.append(sql.SQL("NOT coalesce({}, false)").format(prev))
            all_params.extend(prev_params)
        out.append((sql.SQL("({})").format(sql.SQL(" AND ").join(parts)), all_params))
    return out


def access_clause(
    principal: Principal,
    alias: str,
    *,
    owner_column: str = "owner_id",
    extra_owner_columns: tuple[str, ...] = (),
) -> tuple[sql.Composable, list[Any]]:
    """SQL condition restricting `alias` rows to those the principal may see."""
    if principal.sees_everything:
        return sql.SQL("TRUE"), []
    parts: list[sql.Composable] = []
    params: list[Any] = []
    if principal.team_territory_ids:
        cond, p = _in(sql.Identifier(alias, "territory_id"), principal.team_territory_ids)
        parts.append(cond)
        params.extend(p)
    for col in (owner_column, *extra_owner_columns):
        cond, p = _in(sql.Identifier(alias, col), principal.team_user_ids)
        parts.append(cond)
        params.extend(p)
    return sql.SQL("({})").format(sql.SQL(" OR ").join(parts)), params


# --------------------------------------------------------------------------- user admin
