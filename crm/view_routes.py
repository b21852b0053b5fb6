"""Saved list views: each user's named searches of a record list (search text, filter, sort,
columns). A view is its owner's alone: other users' views answer 404. The filter and sort
are checked with the list endpoint's own parsers when saved, so a saved view always runs.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from psycopg.types.json import Jsonb

from crm.entities import ENTITIES
from crm.filters import compile_filter, parse_sort
from crm.record_routes import API
from crm.report_routes import no_nul
from kernel.errors import Conflict, NotFound, Unprocessable
from kernel.http import Access, Req, Routes

routes = Routes("views", "Saved list views, per user")

FieldName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z_]+$")]


class ViewParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    q: Annotated[str, Meta(max_length=200)] | None = None
    filter: dict[str, Any] | None = None
    sort: Annotated[str, Meta(max_length=100)] | None = None
    columns: Annotated[list[FieldName], Meta(max_length=30)] = []


class ViewIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    entity: Annotated[str, Meta(min_length=1, max_length=64)]
    name: Annotated[str, Meta(min_length=1, max_length=200, pattern=r"\S")]
    params: ViewParams


class SavedView(msgspec.Struct):
    id: int
    entity: str
    name: str
    params: ViewParams
    created_at: dt.datetime


class SavedViews(msgspec.Struct):
    items: list[SavedView]


class ViewQuery(msgspec.Struct, frozen=True):
    entity: Annotated[str, Meta(min_length=1, max_length=64)]


class ViewPath(msgspec.Struct, frozen=True):
    id: Annotated[int, Meta(ge=1, le=2**63 - 1)]


async def own_view(req: Req, path: ViewPath) -> None:
    async with req.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT 1 FROM saved_views WHERE id = %s AND owner_id = %s",
                (path.id, req.user.user_id),
            )
        ).fetchone()
    if row is None:
        raise NotFound(f"view {path.id} not found")


@routes.get(
    f"{API}/views",
    access=Access.read(unscoped="only the caller's own views are listed"),
    summary="The caller's saved views of one record list",
)
async def list_views(req: Req, query: ViewQuery) -> SavedViews:
    async with req.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id, entity, name, params, created_at FROM saved_views"
                " WHERE owner_id = %s AND entity = %s ORDER BY name",
                (req.user.user_id, query.entity),
            )
        ).fetchall()
    return SavedViews(
        [SavedView(r[0], r[1], r[2], msgspec.convert(r[3], ViewParams), r[4]) for r in rows]
    )


@routes.post(
    f"{API}/views",
    access=Access.read(unscoped="a view belongs to its creator; it holds no records"),
    summary="Save a view of a record list (same name: replaced)",
    status=201,
    errors=(409, 422),
)
async def save_view(req: Req, body: ViewIn) -> SavedView:
    no_nul(name=body.name, params=msgspec.json.encode(body.params).decode())
    entity = ENTITIES.get(body.entity)
    if entity is None:
        raise Unprocessable(f"entity: unknown record type {body.entity[:64]!r}", field="entity")
    compile_filter(entity, body.params.filter)  # 400 naming the problem, as the list would
    parse_sort(entity, body.params.sort)
    unknown = [c for c in body.params.columns if entity.field(c) is None]
    if unknown:
        raise Unprocessable(
            f"params.columns: {entity.name} has no field {unknown[0]!r}", field="params.columns"
        )
    async with req.connection() as conn:
        count = await (
            await conn.execute(
                "SELECT count(*) FROM saved_views WHERE owner_id = %s", (req.user.user_id,)
            )
        ).fetchone()
        if count and count[0] >= 200:
            raise Conflict("at most 200 saved views per user: delete one first", field="name")
        row = await (
            await conn.execute(
                "INSERT INTO saved_views (owner_id, entity, name, params) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (owner_id, entity, name) DO UPDATE SET params = excluded.params"
                " RETURNING id, entity, name, params, created_at",
                (
                    req.user.user_id,
                    entity.name,
                    body.name,
                    Jsonb(json.loads(msgspec.json.encode(body.params))),
                ),
            )
        ).fetchone()
    assert row is not None
    return SavedView(row[0], row[1], row[2], msgspec.convert(row[3], ViewParams), row[4])


@routes.delete(
    f"{API}/views/{{id}}",
    access=Access.read(scope=own_view),
    summary="Delete one of the caller's saved views",
    response=None,
    status=204,
)
async def delete_view(req: Req, path: ViewPath) -> None:
    async with req.connection() as conn:
        await conn.execute(
            "DELETE FROM saved_views WHERE id = %s AND owner_id = %s", (path.id, req.user.user_id)
        )
