"""The tenant's settings: what holds for the whole deployment rather than one user.

Today one: `default_currency`, the currency a new account, lead or opportunity takes when
none is given (the columns' default is `crm_default_currency()`, which reads this row;
migration cur1901), the one the console's forms preselect and money falls back to.
Anyone signed in reads the settings; admins change them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection

from crm.currencies import currency_problem
from crm.errors import CrmError

Conn = AsyncConnection[Any]

_READ = "SELECT default_currency, updated_at, updated_by FROM tenant_settings WHERE id = 1"


@dataclass(frozen=True, slots=True)
class TenantSettings:
    default_currency: str
    updated_at: datetime
    updated_by: int | None


async def read_settings(conn: Conn) -> TenantSettings:
    row = await (await conn.execute(_READ)).fetchone()
    assert row is not None, "tenant_settings has its one row from migration cur1901"
    return TenantSettings(str(row[0]), row[1], row[2])


async def default_currency(conn: Conn) -> str:
    return (await read_settings(conn)).default_currency


async def write_settings(conn: Conn, user_id: int, *, default_currency: str) -> TenantSettings:
    """Change the settings; CrmError (422, naming the field) for a code that is no ISO 4217
    currency in circulation ("eur", "EUX")."""
    problem = currency_problem(default_currency)
    if problem is not None:
        raise CrmError(
            f"default_currency: {problem}", field="default_currency", status=422, code="invalid"
        )
    await conn.execute(
        "UPDATE tenant_settings SET default_currency = %s, updated_by = %s, updated_at = now()"
        " WHERE id = 1",
        (default_currency, user_id),
    )
    return await read_settings(conn)


def adopt_most_used_currency(conn: psycopg.Connection[Any]) -> str:
    """Make the currency most accounts are in the default (ties: the first code in
    alphabetical order; no accounts: unchanged); returns the default. For seeding (the
    demo), where the records come before anyone could set it."""
    row = conn.execute(
        """UPDATE tenant_settings SET default_currency = coalesce(
               (SELECT currency FROM accounts GROUP BY currency
                ORDER BY count(*) DESC, currency LIMIT 1), default_currency),
               updated_at = now()
           WHERE id = 1 RETURNING default_currency"""
    ).fetchone()
    assert row is not None
    return str(row[0])
