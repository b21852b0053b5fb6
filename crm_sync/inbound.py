"""Connector in: an external CRM pushes accounts and contacts, upserted by external id.

The body is parsed once at the boundary into typed records (a bad record names its
field); the upsert runs in one transaction, so a batch lands whole or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from crm_sync.errors import InvalidInput

ACCOUNT_TYPES = ("customer", "prospect", "partner", "competitor")
CONTACT_ROLES = ("primary", "secondary", "decision_maker")
MAX_RECORDS = 5000


@dataclass(frozen=True, slots=True)
class InboundAccount:
    external_id: str
    name: str
    type: str | None
    address: str | None


@dataclass(frozen=True, slots=True)
class InboundContact:
    external_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    account_external_id: str | None
    role: str


@dataclass(frozen=True, slots=True)
class InboundBatch:
    accounts: list[InboundAccount]
    contacts: list[InboundContact]


def _text(d: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    v = d.get(key)
    if v is None:
        if required:
            raise InvalidInput(f"{where}.{key}", "is required")
        return None
    if not isinstance(v, str) or not v.strip() or len(v) > 500:
        raise InvalidInput(f"{where}.{key}", "must be a non-empty string of at most 500 chars")
    return v.strip()


def parse_batch(body: Any) -> InboundBatch:
    if not isinstance(body, dict):
        raise InvalidInput("$", "must be an object with 'accounts' and/or 'contacts'")
    unknown = set(body) - {"accounts", "contacts"}
    if unknown:
        raise InvalidInput(f"$.{sorted(unknown)[0]}", "unknown field")
    accounts: list[InboundAccount] = []
    contacts: list[InboundContact] = []
    raw_accounts = body.get("accounts", [])
    raw_contacts = body.get("contacts", [])
    for name, raw in (("accounts", raw_accounts), ("contacts", raw_contacts)):
        if not isinstance(raw, list):
            raise InvalidInput(f"$.{name}", "must be a list")
    if len(raw_accounts) + len(raw_contacts) > MAX_RECORDS:
        raise InvalidInput("$", f"at most {MAX_RECORDS} records per request")
    for i, a in enumerate(raw_accounts):
        where = f"$.accounts[{i}]"
        if not isinstance(a, dict):
            raise InvalidInput(where, "must be an object")
        kind = _text(a, "type", where)
        if kind is not None and kind not in ACCOUNT_TYPES:
            raise InvalidInput(f"{where}.type", f"must be one of {', '.join(ACCOUNT_TYPES)}")
        accounts.append(
            InboundAccount(
                external_id=_text(a, "external_id", where, required=True) or "",
                name=_text(a, "name", where, required=True) or "",
                type=kind,
                address=_text(a, "address", where),
            )
        )
    for i, c in enumerate(raw_contacts):
        where = f"$.contacts[{i}]"
        if not isinstance(c, dict):
            raise InvalidInput(where, "must be an object")
        first, last = _text(c, "first_name", where), _text(c, "last_name", where)
        if first is None and last is None:
            raise InvalidInput(f"{where}.last_name", "a contact needs a first or last name")
        role = _text(c, "role", where) or "secondary"
        if role not in CONTACT_ROLES:
            raise InvalidInput(f"{where}.role", f"must be one of {', '.join(CONTACT_ROLES)}")
        contacts.append(
            InboundContact(
                external_id=_text(c, "external_id", where, required=True) or "",
                first_name=first,
                last_name=last,
                email=_text(c, "email", where),
                phone=_text(c, "phone", where),
                account_external_id=_text(c, "account_external_id", where),
                role=role,
            )
        )
    return InboundBatch(accounts, contacts)


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    accounts_created: int = 0
    accounts_updated: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0


async def upsert(conn: psycopg.AsyncConnection[Any], batch: InboundBatch) -> UpsertCounts:
    """Create or update by external id (in the caller's transaction)."""
    a_new = a_upd = c_new = c_upd = 0
    for a in batch.accounts:
        cur = await conn.execute(
            """
            INSERT INTO accounts (name, type, address, external_id)
            VALUES (%s, coalesce(%s, 'prospect'), %s, %s)
            ON CONFLICT (external_id) DO UPDATE SET
                name = EXCLUDED.name,
                type = coalesce(%s, accounts.type),
                address = coalesce(EXCLUDED.address, accounts.address),
                updated_at = now(),
                version = accounts.version + 1
            RETURNING (xmax = 0)
            """,
            (a.name, a.type, a.address, a.external_id, a.type),
        )
        row = await cur.fetchone()
        if row is not None and row[0]:
            a_new += 1
        else:
            a_upd += 1
    for c in batch.contacts:
        account_id: int | None = None
        if c.account_external_id is not None:
            cur = await conn.execute(
                "SELECT id FROM accounts WHERE external_id = %s", (c.account_external_id,)
            )
            found = await cur.fetchone()
            if found is None:
                raise InvalidInput(
                    "account_external_id",
                    f"contact {c.external_id}: no account with external id "
                    f"{c.account_external_id!r}",
                )
            account_id = int(found[0])
        cur = await conn.execute(
            """
            INSERT INTO contacts (first_name, last_name, email, phone, external_id)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (external_id) DO UPDATE SET
                first_name = EXCLUDED.first_name,
                last_name = EXCLUDED.last_name,
                email = coalesce(EXCLUDED.email, contacts.email),
                phone = coalesce(EXCLUDED.phone, contacts.phone),
                updated_at = now(),
                version = contacts.version + 1
            RETURNING id, (xmax = 0)
            """,
            (c.first_name, c.last_name, c.email, c.phone, c.external_id),
        )
        row = await cur.fetchone()
        assert row is not None
        if row[1]:
            c_new += 1
        else:
            c_upd += 1
        if account_id is not None:
            await conn.execute(
                """
                INSERT INTO account_contacts (account_id, contact_id, role) VALUES (%s, %s, %s)
                ON CONFLICT (account_id, contact_id) DO UPDATE SET role = EXCLUDED.role
                """,
                (account_id, row[0], c.role),
            )
    return UpsertCounts(a_new, a_upd, c_new, c_upd)
