"""Who may see a conversation and a contact's engagement data.

A conversation is visible to its assignee and to whoever may see its contact or lead (the
CRM's territory/owner rule, `kernel.principal.access_clause`); a conversation with an
unknown visitor (no contact, no lead) is visible to managers and admins, and to its
assignee. Anything else answers 404, as if it did not exist.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

from crm.entities import CONTACTS
from crm.store import get_record
from kernel.errors import NotFound
from kernel.http import MANAGER_ROLES, Req
from kernel.principal import Principal, access_clause


def conversation_clause(p: Principal, alias: str = "c") -> tuple[sql.Composable, list[Any]]:
    if p.sees_everything:
        return sql.SQL("TRUE"), []
    con, con_p = access_clause(p, "ct")
    lead, lead_p = access_clause(p, "ld")
    a = sql.Identifier(alias)
    visitor = sql.SQL("TRUE") if p.role in MANAGER_ROLES else sql.SQL("FALSE")
    return (
        sql.SQL(
            "({a}.assignee_user_id = %s"
            " OR EXISTS (SELECT 1 FROM contacts ct WHERE ct.id = {a}.contact_id AND {con})"
            " OR EXISTS (SELECT 1 FROM leads ld WHERE ld.id = {a}.lead_id AND {lead})"
            " OR ({a}.contact_id IS NULL AND {a}.lead_id IS NULL AND {visitor}))"
        ).format(a=a, con=con, lead=lead, visitor=visitor),
        [p.user_id, *con_p, *lead_p],
    )


async def may_see_conversation(
    conn: AsyncConnection[Any], p: Principal, conversation_id: int
) -> bool:
    cond, params = conversation_clause(p)
    query = sql.SQL(
        "SELECT EXISTS (SELECT 1 FROM engage_conversations c WHERE c.id = %s AND {})"
    ).format(cond)
    row = await (await conn.execute(query, [conversation_id, *params])).fetchone()
    return bool(row and row[0])


async def conversation_scope(req: Req, path: Any) -> None:
    async with req.connection() as conn:
        if not await may_see_conversation(conn, req.user, path.conversation_id):
            raise NotFound(f"no conversation {path.conversation_id}", field="conversation_id")


async def contact_scope(req: Req, path: Any) -> None:
    """404 unless the caller may see the contact (the CRM's own check)."""
    async with req.connection() as conn:
        await get_record(conn, CONTACTS, req.user, path.contact_id)
