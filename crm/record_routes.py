"""Generic CRUD over every CRM entity: one endpoint per entity and verb.

For each entity of crm.entities (users included: admins write them), built at start-up
from the entity's models (crm.schema): list (filter, sort, keyset cursor, limit, q,
total=true), create (201 with ETag and Location; Idempotency-Key replays the first
response), get (ETag), PATCH and DELETE (If-Match: 412 when stale, 428 when missing, for
versioned entities) and the record's audit trail. Record endpoints are scoped: a record the
caller may not see answers 404 before the handler runs (`record_scope`, the store's
`get_record` with its access clause). Writes an entity keeps for admins are declared so;
the store refuses (403) records a rep would create outside their territory or team.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from psycopg.rows import dict_row

from crm.entities import ENTITIES, Entity
from crm.filters import parse_filter_param, parse_sort
from crm.idempotency import idempotent
from crm.schema import ListQuery, RecordPath, models_for, to_values
from crm.store import (
    Page,
    Row,
    create_record,
    db_errors,
    delete_record,
    etag,
    get_record,
    list_records,
    update_record,
)
from kernel.http import ADMIN_ROLES, WRITE_ROLES, Access, Reply, Req, Routes, Scope

API = "/api/v1"


class AuditQuery(msgspec.Struct, frozen=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class AuditEntry(msgspec.Struct):
    id: int
    action: str
    field: str | None
    old_value: Any
    new_value: Any
    actor_id: int | None
    at: dt.datetime
    ledger_receipt: Any


class AuditTrail(msgspec.Struct):
    items: list[AuditEntry]


def page_body(page: Page) -> Row:
    out: Row = {"items": page.items, "next_cursor": page.next_cursor}
    if page.total is not None:
        out["total"] = page.total
    return out


def record_scope(entity: Entity) -> Scope:
    """404 unless the record in the path exists and the caller may see it."""

    async def scope(req: Req, path: Any) -> None:
        async with req.connection(autocommit=True) as conn:
            req.scoped = await get_record(conn, entity, req.user, path.id)

    scope.__qualname__ = f"record_scope[{entity.name}]"
    return scope


def entity_routes(entity: Entity) -> Routes:
    """The six endpoints of one entity."""
    models = models_for(entity)
    routes = Routes(entity.name, f"{entity.singular.replace('_', ' ').capitalize()} records")
    base = f"{API}/{entity.name}"
    scope = record_scope(entity)
    writers = ADMIN_ROLES if entity.admin_writes else WRITE_ROLES
    create_access = (
        Access.admin(unscoped="admins create these shared records")
        if entity.admin_writes
        else Access.write(
            unscoped="a new record has no scope yet; the store refuses (403) one outside "
            "the caller's territory or team, and references the caller may not see (422)"
        )
    )
    versioned = " Needs `If-Match` with the record's ETag (412 when stale, 428 when missing)."
    if_match = versioned if entity.versioned else ""

    async def list_(req: Req, query: ListQuery) -> Any:
        sort = parse_sort(entity, query.sort)
        node = parse_filter_param(query.filter)
        # a list tolerates the replica's bounded lag; the writer reads the primary
        async with req.read_connection() as conn, db_errors():
            page = await list_records(
                conn,
                entity,
                req.user,
                filter_node=node,
                sort=sort,
                cursor=query.cursor,
                limit=query.limit,
                with_total=query.total,
                q=query.q,
            )
        return page_body(page)

    async def create(req: Req, body: Any) -> Reply[Row]:
        values = to_values(entity, body)

        async def run(conn: Any) -> Reply[Row]:
            row = await create_record(conn, entity, req.user, values)
            return Reply(row, 201, {"ETag": etag(row), "Location": f"{base}/{row['id']}"})

        return await idempotent(req, body, run)

    async def get(req: Req, path: RecordPath) -> Reply[Row]:
        row: Row = req.scoped  # the scope check has just read it
        return Reply(row, headers={"ETag": etag(row)})

    async def patch(req: Req, path: RecordPath, body: Any) -> Reply[Row]:
        values = to_values(entity, body)
        async with req.connection() as conn, conn.transaction():
            row = await update_record(
                conn, entity, req.user, path.id, values, req.header("If-Match")
            )
        return Reply(row, headers={"ETag": etag(row)})

    async def delete(req: Req, path: RecordPath) -> None:
        async with req.connection() as conn, conn.transaction():
            await delete_record(conn, entity, req.user, path.id, req.header("If-Match"))

    async def audit(req: Req, path: RecordPath, query: AuditQuery) -> AuditTrail:
        async with req.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT id, action, field, old_value, new_value, actor_id, at, ledger_receipt"
                " FROM audit_log WHERE table_name = %s AND record_id = %s"
                " ORDER BY id DESC LIMIT %s",
                (entity.table, path.id, query.limit),
            )
            rows = await cur.fetchall()
        return AuditTrail([AuditEntry(**r) for r in rows])

    name = entity.name
    one = ("an " if entity.singular[0] in "aeiou" else "a ") + entity.singular.replace("_", " ")
    routes.add(
        "GET",
        base,
        list_,
        access=Access.read(unscoped="the list holds only records the caller may see"),
        summary=f"List {name}",
        description="Filter, sort, keyset cursor, limit, `q` search; `total=true` counts.",
        query=ListQuery,
        response=models.page,
        operation_id=f"list_{name}",
    )
    routes.add(
        "POST",
        base,
        create,
        access=create_access,
        summary=f"Create {one}",
        description="`Idempotency-Key` makes a retry safe: the first response is replayed.",
        body=models.create,
        response=models.record,
        status=201,
        errors=(409,),
        operation_id=f"create_{name}",
    )
    routes.add(
        "GET",
        f"{base}/{{id}}",
        get,
        access=Access.read(scope=scope),
        summary=f"{one.capitalize()}, with its ETag",
        path_model=RecordPath,
        response=models.record,
        operation_id=f"get_{name}",
    )
    routes.add(
        "PATCH",
        f"{base}/{{id}}",
        patch,
        access=Access.users(writers, scope=scope),
        summary=f"Change fields of {one}",
        description=f"Only the fields given change.{if_match}",
        path_model=RecordPath,
        body=models.patch,
        response=models.record,
        errors=(409, 412, 428) if entity.versioned else (409,),
        operation_id=f"update_{name}",
    )
    routes.add(
        "DELETE",
        f"{base}/{{id}}",
        delete,
        access=Access.users(writers, scope=scope),
        summary=f"Delete {one}",
        description=if_match.strip(),
        path_model=RecordPath,
        response=None,
        status=204,
        errors=(409, 412, 428) if entity.versioned else (409,),
        operation_id=f"delete_{name}",
    )
    routes.add(
        "GET",
        f"{base}/{{id}}/audit",
        audit,
        access=Access.read(scope=scope),
        summary=f"Every field change of {one}, newest first",
        path_model=RecordPath,
        query=AuditQuery,
        response=AuditTrail,
        operation_id=f"audit_{name}",
    )
    return routes


def all_routes() -> list[Routes]:
    return [entity_routes(e) for e in ENTITIES.values()]
