"""Connector in: an external CRM pushes accounts and contacts, upserted by external id.

The body is decoded once at the boundary into typed records (msgspec; a bad record names
its field, e.g. `accounts.0.name`). The records are written through the CRM's own
service functions (`crm.store.create_record` / `update_record`, `crm.records
.set_account_contact`), so the CRM's rules run for them as for any other write: phones
are normalised (dedupe finds connector contacts), the audit trail records the change, one
primary contact per account. The whole batch runs in the caller's transaction: it lands
whole or not at all.

The connector is no user: it writes as a principal of its own (`connector_principal`),
with the admin role (it was created by an admin for this purpose), user id 0 in the audit
trail, and records it creates are owned by nobody until the CRM assigns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from psycopg import AsyncConnection

from crm.entities import ACCOUNTS, CONTACTS
from crm.records import set_account_contact
from crm.store import create_record, update_record
from kernel.errors import Unprocessable
from kernel.principal import Principal

ACCOUNT_TYPES = ("customer", "prospect", "partner", "competitor")
CONTACT_ROLES = ("primary", "secondary", "decision_maker")
MAX_RECORDS = 5000
CONNECTOR_ACTOR_ID = 0  # the audit trail's actor for writes made by a connector

# Text that is not blank, at most 500 characters (leading/trailing spaces are dropped).
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"\S")]
Records = Annotated[int, msgspec.Meta(le=MAX_RECORDS)]


class InboundAccount(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    external_id: Text
    name: Text
    type: Literal["customer", "prospect", "partner", "competitor"] | None = None
    address: Text | None = None


class InboundContact(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    external_id: Text
    first_name: Text | None = None
    last_name: Text | None = None
    email: Text | None = None
    phone: Text | None = None
    account_external_id: Text | None = None
    role: Literal["primary", "secondary", "decision_maker"] = "secondary"


class InboundBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    accounts: Annotated[list[InboundAccount], msgspec.Meta(max_length=MAX_RECORDS)] = []
    contacts: Annotated[list[InboundContact], msgspec.Meta(max_length=MAX_RECORDS)] = []


def check_batch(batch: InboundBatch) -> None:
    """What the types cannot say: the record limit across both lists, a contact's name."""
    if len(batch.accounts) + len(batch.contacts) > MAX_RECORDS:
        raise Unprocessable(f"at most {MAX_RECORDS} records per request", field="accounts")
    for i, c in enumerate(batch.contacts):
        if c.first_name is None and c.last_name is None:
            raise Unprocessable(
                f"contacts.{i}: a contact needs a first or last name",
                field=f"contacts.{i}.last_name",
            )


def connector_principal(name: str) -> Principal:
    return Principal(
        user_id=CONNECTOR_ACTOR_ID,
        email=f"connector:{name}",
        role="admin",
        territory_id=None,
        team_user_ids=(),
        team_territory_ids=(),
    )


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    accounts_created: int = 0
    accounts_updated: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0


def _strip(v: str | None) -> str | None:
    return None if v is None else v.strip()


async def _id_by_external_id(
    conn: AsyncConnection[Any], table: str, external_id: str
) -> int | None:
    query = {
        "accounts": "SELECT id FROM accounts WHERE external_id = %s FOR UPDATE",
        "contacts": "SELECT id FROM contacts WHERE external_id = %s FOR UPDATE",
    }[table]
    row = await (await conn.execute(query, (external_id,))).fetchone()
    return None if row is None else int(row[0])


async def upsert(conn: AsyncConnection[Any], batch: InboundBatch, actor: Principal) -> UpsertCounts:
    """Create or update by external id, through the CRM's service functions (in the
    caller's transaction)."""
    # Pushes are serialised, so two of them never both create the same external id.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('crm_sync.inbound'))")
    a_new = a_upd = c_new = c_upd = 0
    account_ids: dict[str, int] = {}
    for a in batch.accounts:
        ext = a.external_id.strip()
        values: dict[str, Any] = {"name": a.name.strip(), "external_id": ext}
        if a.type is not None:
            values["type"] = a.type
        if a.address is not None:
            values["address"] = a.address.strip()
        existing = await _id_by_external_id(conn, "accounts", ext)
        if existing is None:
            row = await create_record(conn, ACCOUNTS, actor, {**values, "owner_id": None})
            account_ids[ext] = int(row["id"])
            a_new += 1
        else:
            await update_record(conn, ACCOUNTS, actor, existing, values, None, check_etag=False)
            account_ids[ext] = existing
            a_upd += 1
    for i, c in enumerate(batch.contacts):
        ext = c.external_id.strip()
        account_id: int | None = None
        if c.account_external_id is not None:
            account_ext = c.account_external_id.strip()
            account_id = account_ids.get(account_ext) or await _id_by_external_id(
                conn, "accounts", account_ext
            )
            if account_id is None:
                raise Unprocessable(
                    f"contact {ext}: no account with external id {account_ext!r}",
                    field=f"contacts.{i}.account_external_id",
                )
        values = {"first_name": _strip(c.first_name), "last_name": _strip(c.last_name)}
        if c.email is not None:
            values["email"] = c.email.strip()
        if c.phone is not None:
            values["phone"] = c.phone.strip()  # the CRM's rule adds phone_normalized
        existing = await _id_by_external_id(conn, "contacts", ext)
        if existing is None:
            row = await create_record(
                conn, CONTACTS, actor, {**values, "external_id": ext, "owner_id": None}
            )
            contact_id = int(row["id"])
            c_new += 1
        else:
            await update_record(conn, CONTACTS, actor, existing, values, None, check_etag=False)
            contact_id = existing
            c_upd += 1
        if account_id is not None:
            await set_account_contact(conn, actor, account_id, contact_id, c.role)
    return UpsertCounts(a_new, a_upd, c_new, c_upd)
