"""Record scopes other packages apply to rows that belong to an account.

An asset, a work order, a visit or a plan stop is visible exactly when its account is
(`kernel.principal.access_clause` on the account's territory and owner). Routes use
`account_scope` as an endpoint scope for paths with an `account_id`, and `account_clause`
to filter lists by an account id column.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

from kernel.errors import NotFound
from kernel.http import Req
from kernel.principal import Principal, access_clause


def account_clause(
    principal: Principal, account_column: sql.Composable
) -> tuple[sql.Composable, list[Any]]:
    """SQL condition: the account in `account_column` is one the principal may see."""
    if principal.sees_everything:
        return sql.SQL("TRUE"), []
    cond, params = access_clause(principal, "acc_scope")
    return (
        sql.SQL("EXISTS (SELECT 1 FROM accounts acc_scope WHERE acc_scope.id = {} AND {})").format(
            account_column, cond
        ),
        params,
    )


async def may_see_account(
    conn: AsyncConnection[Any], principal: Principal, account_id: int
) -> bool:
    cond, params = account_clause(principal, sql.Identifier("a", "id"))
    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM accounts a WHERE a.id = %s AND {})").format(cond)
    row = await (await conn.execute(query, [account_id, *params])).fetchone()
    return bool(row and row[0])


async def require_account(req: Req, account_id: int) -> None:
    """404 unless the account exists and the caller may see it (existence does not leak)."""
    async with req.connection() as conn:
        if not await may_see_account(conn, req.user, account_id):
            raise NotFound(f"no account {account_id}", field="account_id")


async def account_scope(req: Req, path: Any) -> None:
    """Endpoint scope for paths with an `account_id`."""
    await require_account(req, path.account_id)
