"""What the console needs to draw any record: the entities' fields, what the caller may do
with them, and readable labels for referenced records (names, never internal ids).

The field list is `crm.entities` itself (the same source as validation and OpenAPI), so a
form cannot offer a field the API refuses; entities other packages serve (assets, of
crm_sync) are described from there too. Dates carry the window the API accepts and phone
fields their format (crm.entities' plausibility limits). `may_create/may_update/may_delete` are the
role rules of `crm.store.require_writer`; record-level rules (territory, owner) still answer
403/404 per record, which the console shows next to the action. A currency field's default
is the tenant's default currency (crm.tenant), what the database gives a record created
without one, so a New form preselects what saving it empty would store.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from psycopg import sql

from crm.entities import ENTITIES, Entity, described, window
from crm.labels import LABELS
from crm.record_routes import API
from crm.store import scope
from crm.tenant import default_currency
from kernel.errors import Unprocessable
from kernel.http import Access, Req, Routes
from kernel.principal import Principal


class FieldMeta(msgspec.Struct):
    name: str
    kind: str
    write: bool
    required: bool
    nullable: bool
    enum: list[str]
    minimum: float | None
    maximum: float | None
    max_len: int | None
    ref: str | None
    description: str
    default: Any
    sortable: bool
    earliest: str | None = None  # dates and times: the window the API accepts (inclusive)
    latest: str | None = None
    format: str = ""  # a text field's format the API checks ("phone")


class EntityMeta(msgspec.Struct):
    name: str
    singular: str
    fields: list[FieldMeta]
    searchable: bool
    may_create: bool
    may_update: bool
    may_delete: bool


class EntitiesMeta(msgspec.Struct):
    role: str
    items: list[EntityMeta]


def may_write(entity: Entity, principal: Principal) -> bool:
    """The role rule of crm.store.require_writer, without raising."""
    return principal.can_write and (principal.is_admin or not entity.admin_writes)


def entity_meta(entity: Entity, principal: Principal, currency: str) -> EntityMeta:
    """`currency`: the tenant's default currency, the default of currency fields."""
    writer = may_write(entity, principal)
    return EntityMeta(
        entity.name,
        entity.singular,
        [
            FieldMeta(
                f.name,
                f.kind,
                f.write,
                f.required,
                f.nullable,
                list(f.enum),
                f.minimum,
                f.maximum,
                f.max_len,
                f.ref,
                f.description,
                currency if f.name == "currency" else f.default,
                f.sort,
                w[0].isoformat() if (w := window(f)) else None,
                w[1].isoformat() if w else None,
                f.format,
            )
            for f in entity.readable
        ],
        bool(entity.search),
        writer,
        writer,
        writer,
    )


async def entities(req: Req) -> EntitiesMeta:
    async with req.connection(autocommit=True) as conn:
        currency = await default_currency(conn)
    return EntitiesMeta(
        req.user.role, [entity_meta(e, req.user, currency) for e in described().values()]
    )


class LabelQuery(msgspec.Struct, frozen=True):
    entity: Annotated[str, Meta(max_length=64, description="an entity name, e.g. accounts")]
    ids: Annotated[
        str,
        Meta(max_length=2200, pattern=r"^\d{1,19}(,\d{1,19}){0,199}$", description="up to 200 ids"),
    ]


class Label(msgspec.Struct):
    id: int
    label: str


class Labels(msgspec.Struct):
    items: list[Label]


async def labels(req: Req, query: LabelQuery) -> Labels:
    entity = ENTITIES.get(query.entity)
    if entity is None or entity.name not in LABELS:
        raise Unprocessable(f"entity: unknown entity {query.entity[:64]!r}", field="entity")
    ids = sorted({int(i) for i in query.ids.split(",")})
    if any(i > 2**63 - 1 for i in ids):
        raise Unprocessable("ids: an id is out of range", field="ids")
    acc, acc_p = scope(entity, req.user)
    stmt = sql.SQL("SELECT t.id, {} FROM {} t WHERE t.id = ANY(%s) AND {}").format(
        sql.SQL(LABELS[entity.name]), sql.Identifier(entity.table), acc
    )
    async with req.connection() as conn:
        rows = await (await conn.execute(stmt, [ids, *acc_p])).fetchall()
    return Labels([Label(int(r[0]), str(r[1])) for r in rows])


@functools.cache
def meta_routes() -> Routes:
    routes = Routes("meta", "What the console needs to draw records: fields, permissions, labels")
    routes.add(
        "GET",
        f"{API}/meta/entities",
        entities,
        access=Access.read(unscoped="the entities' shape and the caller's own role rules"),
        summary="Every CRM entity's fields and what the caller's role may do with it",
        response=EntitiesMeta,
    )
    routes.add(
        "GET",
        f"{API}/meta/labels",
        labels,
        access=Access.read(unscoped="only records the caller may see are named"),
        summary="Readable names of records by id (records the caller may not see are left out)",
        query=LabelQuery,
        response=Labels,
        errors=(422,),
    )
    return routes
