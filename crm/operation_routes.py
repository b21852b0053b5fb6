"""CRM operations beyond CRUD: lead conversion, contact dedupe and merge, account roll-ups,
timelines and contact roles, opportunity stage history.

Every endpoint on a record is scoped by that record (404 when the caller may not see it);
the service functions in crm.records re-apply the same access rules to every row they
touch.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from psycopg.rows import dict_row

from crm import records
from crm.access import may_see_account
from crm.entities import ACCOUNTS, ACTIVITIES, CONTACT_ROLES, CONTACTS, LEADS, OPPORTUNITIES
from crm.idempotency import idempotent
from crm.record_routes import API, page_body, record_scope
from crm.schema import RecordId, RecordPath, models_for, to_values
from crm.store import Row, db_errors, etag
from kernel.errors import Unprocessable
from kernel.http import Access, Reply, Req, Routes


class DuplicateGroup(msgspec.Struct):
    key: Literal["email", "phone"]
    value: str
    contact_ids: list[int]


class DuplicateGroups(msgspec.Struct):
    items: list[DuplicateGroup]


class MergeBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    merge_ids: Annotated[list[RecordId], Meta(min_length=1, max_length=100)]


class CurrencyAmount(msgspec.Struct):
    currency: str
    amount: float


class Rollup(msgspec.Struct):
    account_id: int
    accounts: int
    depth: int
    annual_revenue: float  # summed over currencies: the *_by_currency lists are the figures to show
    open_opportunities: int
    open_amount: float
    annual_revenue_by_currency: list[CurrencyAmount]
    open_amount_by_currency: list[CurrencyAmount]


class TimelineQuery(msgspec.Struct, frozen=True):
    cursor: Annotated[str, Meta(max_length=1000)] | None = None
    limit: Annotated[int, Meta(ge=1, le=500)] = 50


class AccountContact(msgspec.Struct):
    contact_id: int
    role: Literal[CONTACT_ROLES]  # type: ignore[valid-type]  # a tuple of literals
    first_name: str | None
    last_name: str | None
    company_name: str | None
    email: str | None
    phone: str | None


class AccountContacts(msgspec.Struct):
    items: list[AccountContact]


class LinkBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    contact_id: RecordId
    role: Literal[CONTACT_ROLES] = "secondary"  # type: ignore[valid-type]


class Link(msgspec.Struct):
    account_id: int
    contact_id: int
    role: str


class LinkPath(msgspec.Struct, frozen=True):
    id: RecordId
    contact_id: RecordId


class StageChange(msgspec.Struct):
    id: int
    from_stage_id: int | None
    to_stage_id: int
    amount: float | None
    changed_by: int | None
    changed_at: dt.datetime


class StageHistory(msgspec.Struct):
    items: list[StageChange]


@functools.cache
def convert_models() -> tuple[type[msgspec.Struct], type[msgspec.Struct]]:
    """The conversion's body and result, built from the entity models."""
    body = msgspec.defstruct(
        "LeadConversion",
        [
            (
                "account_id",
                Annotated[RecordId, Meta(description="Convert into this existing account")] | None,
                None,
            ),
            ("create_opportunity", bool, True),
            ("account", models_for(ACCOUNTS).patch | None, None),
            ("contact", models_for(CONTACTS).patch | None, None),
            ("opportunity", models_for(OPPORTUNITIES).patch | None, None),
        ],
        kw_only=True,
        forbid_unknown_fields=True,
    )
    result = msgspec.defstruct(
        "LeadConversionResult",
        [
            ("lead", models_for(LEADS).record),
            ("account", models_for(ACCOUNTS).record),
            ("contact", models_for(CONTACTS).record),
            ("opportunity", models_for(OPPORTUNITIES).record | None),
            ("mapping", dict[str, dict[str, Any]]),
        ],
    )
    return body, result


async def convert(req: Req, path: RecordPath, body: Any) -> Reply[Row]:
    options: Row = {"create_opportunity": body.create_opportunity}
    if body.account_id is not None:
        async with req.connection() as conn:
            if not await may_see_account(conn, req.user, body.account_id):
                raise Unprocessable(
                    f"account_id: account {body.account_id} not found",
                    field="account_id",
                    code="unknown_reference",
                )
        options["account_id"] = body.account_id
    for part, entity in (
        ("account", ACCOUNTS),
        ("contact", CONTACTS),
        ("opportunity", OPPORTUNITIES),
    ):
        given = getattr(body, part)
        if given is not None:
            options[part] = to_values(entity, given)

    async def run(conn: Any) -> Reply[Row]:
        async with db_errors():
            return Reply(await records.convert_lead(conn, req.user, path.id, options))

    return await idempotent(req, body, run)


async def duplicates(req: Req) -> DuplicateGroups:
    async with req.connection() as conn:
        groups = await records.duplicate_groups(conn, req.user)
    return DuplicateGroups([DuplicateGroup(**g) for g in groups])


async def merge(req: Req, path: RecordPath, body: MergeBody) -> Reply[Row]:
    async with req.connection() as conn, conn.transaction():
        row = await records.merge_contacts(conn, req.user, path.id, list(body.merge_ids))
    return Reply(row, headers={"ETag": etag(row)})


async def rollup(req: Req, path: RecordPath) -> Rollup:
    async with req.connection() as conn:
        row = await records.rollup(conn, req.user, path.id)
    return msgspec.convert(row, Rollup, strict=False)


async def timeline(req: Req, path: RecordPath, query: TimelineQuery) -> Any:
    async with req.connection(autocommit=True) as conn:
        page = await records.timeline(
            conn,
            req.user,
            path.id,
            query.cursor,
            query.limit,
            account_checked=req.scoped is not None,
        )
    return page_body(page)


async def account_contacts(req: Req, path: RecordPath) -> AccountContacts:
    async with req.connection() as conn:
        rows = await records.account_contacts(conn, req.user, path.id)
    return AccountContacts([AccountContact(**r) for r in rows])


async def link_contact(req: Req, path: RecordPath, body: LinkBody) -> Link:
    async with req.connection() as conn, conn.transaction():
        row = await records.set_account_contact(conn, req.user, path.id, body.contact_id, body.role)
    return Link(**row)


async def unlink_contact(req: Req, path: LinkPath) -> None:
    async with req.connection() as conn, conn.transaction():
        await records.remove_account_contact(conn, req.user, path.id, path.contact_id)


async def stage_history(req: Req, path: RecordPath) -> StageHistory:
    async with req.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT id, from_stage_id, to_stage_id, amount, changed_by, changed_at"
            " FROM opportunity_stage_history WHERE opportunity_id = %s ORDER BY changed_at, id",
            (path.id,),
        )
        rows = await cur.fetchall()
    return StageHistory([msgspec.convert(r, StageChange, strict=False) for r in rows])


@functools.cache
def operation_routes() -> Routes:
    """The endpoints, declared once (their models are built from the entities)."""
    routes = Routes("crm", "CRM operations: conversion, dedupe, roll-ups, timelines")
    leads, contacts = record_scope(LEADS), record_scope(CONTACTS)
    accounts, opportunities = record_scope(ACCOUNTS), record_scope(OPPORTUNITIES)
    body, result = convert_models()
    routes.add(
        "POST",
        f"{API}/leads/{{id}}/convert",
        convert,
        access=Access.write(scope=leads),
        summary="Convert a lead into an account (new or existing), a contact and an opportunity",
        description="In one transaction; the field mapping is recorded on the lead. "
        "`Idempotency-Key` replays the first response.",
        body=body,
        response=result,
        errors=(403, 409),
    )
    routes.add(
        "GET",
        f"{API}/contacts/duplicates",
        duplicates,
        access=Access.read(unscoped="groups are formed of the contacts the caller may see"),
        summary="Contacts sharing a normalised e-mail or phone",
    )
    routes.add(
        "POST",
        f"{API}/contacts/{{id}}/merge",
        merge,
        access=Access.write(scope=contacts),
        summary="Merge duplicates into this contact",
        description="Empty fields are filled from the duplicates, roles, activities and "
        "opportunities move over, the duplicates are deleted.",
        response=models_for(CONTACTS).record,
        errors=(403,),
    )
    routes.add(
        "GET",
        f"{API}/accounts/{{id}}/rollup",
        rollup,
        access=Access.read(scope=accounts),
        summary="Revenue and open opportunities over the account and its descendants",
    )
    routes.add(
        "GET",
        f"{API}/accounts/{{id}}/timeline",
        timeline,
        access=Access.read(scope=accounts),
        summary="The account's activities, newest first",
        response=models_for(ACTIVITIES).page,
    )
    routes.add(
        "GET",
        f"{API}/accounts/{{id}}/contacts",
        account_contacts,
        access=Access.read(scope=accounts),
        summary="The account's contacts with their roles, primary first",
    )
    routes.add(
        "PUT",
        f"{API}/accounts/{{id}}/contacts",
        link_contact,
        access=Access.write(scope=accounts),
        summary="Link a contact to the account with a role (one primary per account)",
        errors=(403,),
    )
    routes.add(
        "DELETE",
        f"{API}/accounts/{{id}}/contacts/{{contact_id}}",
        unlink_contact,
        access=Access.write(scope=accounts),
        summary="Unlink a contact from the account",
        response=None,
        status=204,
        errors=(403,),
    )
    routes.add(
        "GET",
        f"{API}/opportunities/{{id}}/stage_history",
        stage_history,
        access=Access.read(scope=opportunities),
        summary="The opportunity's stage changes, oldest first",
    )

    return routes
