"""Generic record storage on PostgreSQL for every CRM entity (the database adapter).

Every read and write goes through `access_clause`, so record-level access holds in lists,
totals, search, exports, timelines and by-id reads alike. Writes set the transaction's
`fieldmesh.actor_id`, which the audit trigger records with each changed field.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection, errors, sql
from psycopg.rows import dict_row

from crm.entities import ENTITIES, Entity, Field
from crm.errors import CrmError
from crm.filters import Sort, compile_filter, encode_cursor, keyset
from identity.auth import forget_tokens, hash_password
from kernel.dberrors import refusal
from kernel.errors import NotFound, Unprocessable
from kernel.principal import Forbidden, Principal, access_branches, access_clause

Row = dict[str, Any]
MAX_LIMIT = 500


# --------------------------------------------------------------------------- errors


@asynccontextmanager
async def db_errors() -> AsyncIterator[None]:
    """Database refusals as API errors naming the field (kernel.dberrors), with the CRM's
    own words for its rules across fields."""
    try:
        yield
    except errors.CheckViolation as exc:
        # a rule across fields, in words and on the field a person corrects (the database's
        # own sentence names a constraint, never a field)
        known = _CHECKS.get(exc.diag.constraint_name or "")
        if known is not None:
            raise Unprocessable(f"{known[0]}: {known[1]}", field=known[0]) from None
        raise refusal(exc) or exc from None
    except errors.InternalError_ as exc:  # bad GeoJSON (PostGIS raises it)
        raise Unprocessable(
            exc.diag.message_primary or str(exc) or "a value cannot be stored",
            field=exc.diag.column_name,
        ) from None
    except psycopg.Error as exc:
        mapped = refusal(exc)
        if mapped is None:
            raise
        raise mapped from None


# Check constraints over several columns (crm/migrations): the field to correct and why.
_CHECKS: dict[str, tuple[str, str]] = {
    "activities_check": ("end_at", "ends before it starts"),
    "work_orders_check": ("latest_end", "is before the earliest start"),
    "contacts_check": ("last_name", "a contact needs a first name, a last name or a company name"),
    "leads_check": ("last_name", "a lead needs a first name, a last name or a company"),
    "accounts_check": ("parent_id", "an account cannot be its own parent"),
}


# --------------------------------------------------------------------------- SQL pieces


def select_expr(entity: Entity, alias: str = "t") -> sql.Composable:
    parts: list[sql.Composable] = []
    for f in entity.readable:
        col = sql.Identifier(alias, f.name)
        if f.kind in ("point", "multipolygon"):
            parts.append(
                sql.SQL("ST_AsGeoJSON({})::jsonb AS {}").format(col, sql.Identifier(f.name))
            )
        elif f.kind == "time":
            parts.append(sql.SQL("{}::text AS {}").format(col, sql.Identifier(f.name)))
        else:
            parts.append(col)
    return sql.SQL(", ").join(parts)


def _value_expr(f: Field) -> sql.Composable:
    if f.kind == "point":
        return sql.SQL("ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326)::geography")
    if f.kind == "multipolygon":
        return sql.SQL("ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326))::geography")
    if f.kind in ("object", "array"):
        return sql.SQL("%s::jsonb")
    return sql.SQL("%s")


async def _columns(entity: Entity, values: Row) -> list[tuple[sql.Identifier, sql.Composable, Any]]:
    out: list[tuple[sql.Identifier, sql.Composable, Any]] = []
    for name, value in values.items():
        f = entity.field(name)
        if f is None:
            raise AssertionError(f"{entity.name} has no field {name}")
        if f.kind == "password":
            # Argon2 takes tens of milliseconds of CPU: off the event loop, so an admin
            # setting passwords does not stall every other request of this worker
            hashed = await asyncio.to_thread(hash_password, value) if value else None
            out.append((sql.Identifier("password_hash"), sql.SQL("%s"), hashed))
        else:
            out.append((sql.Identifier(name), _value_expr(f), value))
    return out


def etag(row: Row) -> str:
    return f'"{row["id"]}.{row.get("version", 0)}"'


async def set_actor(conn: AsyncConnection[Any], principal: Principal | None) -> None:
    await conn.execute(
        "SELECT set_config('fieldmesh.actor_id', %s, true)",
        (str(principal.user_id) if principal else "",),
    )


def scope(
    entity: Entity, principal: Principal, alias: str = "t"
) -> tuple[sql.Composable, list[Any]]:
    if not entity.scoped:
        return sql.SQL("TRUE"), []
    return access_clause(principal, alias, extra_owner_columns=entity.extra_owner_columns)


# --------------------------------------------------------------------------- reads


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Row]
    next_cursor: str | None
    total: int | None


def search_clause(
    entity: Entity, q: str | None, alias: str = "t"
) -> tuple[sql.Composable, list[Any]]:
    if not q:
        return sql.SQL("TRUE"), []
    if not entity.search:
        raise CrmError(f"{entity.name} cannot be searched with q", field="q", status=400)
    if "\x00" in q:
        raise CrmError("q may not contain NUL characters", field="q", status=400)
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    parts = [sql.SQL("{} ILIKE %s").format(sql.Identifier(alias, c)) for c in entity.search]
    return sql.SQL("({})").format(sql.SQL(" OR ").join(parts)), [pattern] * len(parts)


async def list_records(
    conn: AsyncConnection[Any],
    entity: Entity,
    principal: Principal,
    *,
    filter_node: Any = None,
    sort: Sort,
    cursor: str | None = None,
    limit: int = 50,
    with_total: bool = False,
    q: str | None = None,
    extra: tuple[sql.Composable, list[Any]] | None = None,
) -> Page:
    acc, acc_p = scope(entity, principal)
    flt, flt_p = compile_filter(entity, filter_node)
    srch, srch_p = search_clause(entity, q)
    ext, ext_p = extra if extra is not None else (sql.SQL("TRUE"), [])
    base = sql.SQL("{} AND {} AND {} AND {}").format(acc, flt, srch, ext)
    base_p = [*acc_p, *flt_p, *srch_p, *ext_p]
    after, order, after_p = keyset(sort, "t", cursor)
    rest = sql.SQL("{} AND {} AND {}").format(flt, srch, ext)
    rest_p = [*flt_p, *srch_p, *ext_p]
    branches = (
        access_branches(principal, "t", extra_owner_columns=entity.extra_owner_columns)
        if entity.scoped and not principal.sees_everything
        else [(sql.SQL("TRUE"), [])]
    )
    # One ordered, limited scan per access branch (territory, owner, ...), merged: each can
    # walk an index in sort order instead of filtering a whole OR.
    parts: list[sql.Composed] = []
    params: list[Any] = []
    for cond, cond_p in branches:
        parts.append(
            sql.SQL("(SELECT {} FROM {} t WHERE {} AND {} AND {} ORDER BY {} LIMIT %s)").format(
                select_expr(entity), sql.Identifier(entity.table), cond, rest, after, order
            )
        )
        params += [*cond_p, *rest_p, *after_p, limit + 1]
    if len(parts) == 1:
        query: sql.Composed = parts[0]
    else:
        query = sql.SQL("SELECT * FROM ({}) t ORDER BY {} LIMIT %s").format(
            sql.SQL(" UNION ALL ").join(parts), order
        )
        params.append(limit + 1)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query, params)
    rows = await cur.fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last[sort.field.name], last["id"])
    total = None
    if with_total:
        await cur.execute(
            sql.SQL("SELECT count(*) AS n FROM {} t WHERE {}").format(
                sql.Identifier(entity.table), base
            ),
            base_p,
        )
        row = await cur.fetchone()
        total = int(row["n"]) if row else 0
    return Page(rows, next_cursor, total)


async def get_record(
    conn: AsyncConnection[Any],
    entity: Entity,
    principal: Principal,
    record_id: int,
    *,
    for_update: bool = False,
) -> Row:
    """The record, or 404 if it does not exist OR the principal may not see it."""
    acc, acc_p = scope(entity, principal)
    query = sql.SQL("SELECT {} FROM {} t WHERE t.id = %s AND {}{}").format(
        select_expr(entity),
        sql.Identifier(entity.table),
        acc,
        sql.SQL(" FOR UPDATE OF t" if for_update else ""),
    )
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query, [record_id, *acc_p])
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"{entity.singular} {record_id} not found")
    return row


async def check_visible_refs(
    conn: AsyncConnection[Any], entity: Entity, principal: Principal, values: Row
) -> None:
    """A referenced scoped record the principal may not see is reported as not found (422)."""
    for name, value in values.items():
        f = entity.field(name)
        if f is None or f.ref is None or value is None:
            continue
        target = ENTITIES.get(f.ref)
        if target is None:
            continue
        acc, acc_p = scope(target, principal)
        cur = await conn.execute(
            sql.SQL("SELECT 1 FROM {} t WHERE t.id = %s AND {}").format(
                sql.Identifier(target.table), acc
            ),
            [value, *acc_p],
        )
        if await cur.fetchone() is None:
            raise Unprocessable(
                f"{name}: {target.singular} {value} not found", field=name, code="unknown_reference"
            )


# --------------------------------------------------------------------------- writes

Hook = Callable[[AsyncConnection[Any], Principal, Row | None, Row], Awaitable[None]]
AfterHook = Callable[[AsyncConnection[Any], Principal, Row | None, Row], Awaitable[None]]
BEFORE: dict[str, Hook] = {}  # (conn, principal, current row or None on create, values to write)
AFTER: dict[str, AfterHook] = {}  # (conn, principal, old row or None, new row)
# Listeners of every create and update, in the write's transaction, after AFTER:
# (conn, entity name, old row or None, new row). Higher layers subscribe (insights queues
# the record's re-scoring), so the CRM knows nothing of them.
ChangeListener = Callable[[AsyncConnection[Any], str, Row | None, Row], Awaitable[None]]
ON_CHANGE: list[ChangeListener] = []


def require_writer(entity: Entity, principal: Principal) -> None:
    principal.require_write()
    if entity.admin_writes:
        principal.require_admin()


async def create_record(
    conn: AsyncConnection[Any], entity: Entity, principal: Principal, values: Row
) -> Row:
    require_writer(entity, principal)
    await set_actor(conn, principal)
    async with db_errors():
        await check_visible_refs(conn, entity, principal, values)
        hook = BEFORE.get(entity.name)
        if hook is not None:
            await hook(conn, principal, None, values)
        if entity.scoped and "owner_id" not in values and entity.field("owner_id") is not None:
            values["owner_id"] = principal.user_id
        if entity.scoped and entity.field("territory_id") is not None:
            if "territory_id" not in values:
                values["territory_id"] = principal.territory_id
            owners = [values.get("owner_id")] + [values.get(c) for c in entity.extra_owner_columns]
            if not any(principal.may_see(o, values.get("territory_id")) for o in owners):
                raise Forbidden(
                    f"you may only create {entity.name} in your own territory or owned by your team"
                )
        cols = await _columns(entity, values)
        if cols:
            query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
                sql.Identifier(entity.table),
                sql.SQL(", ").join(c[0] for c in cols),
                sql.SQL(", ").join(c[1] for c in cols),
            )
        else:
            query = sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING id").format(
                sql.Identifier(entity.table)
            )
        cur = await conn.execute(query, [c[2] for c in cols])
        row = await cur.fetchone()
        assert row is not None
        new = await get_record(conn, entity, _unscoped(principal), int(row[0]))
        after = AFTER.get(entity.name)
        if after is not None:
            await after(conn, principal, None, new)
        for listener in ON_CHANGE:
            await listener(conn, entity.name, None, new)
    return new


def _unscoped(principal: Principal) -> Principal:
    """The same user, seeing everything: for re-reading what they just wrote."""
    from dataclasses import replace

    return replace(principal, role="admin")


def check_if_match(entity: Entity, current: Row, if_match: str | None) -> None:
    if not entity.versioned:
        return
    if if_match is None:
        raise CrmError(
            "updates need an If-Match header with the record's ETag",
            status=428,
            code="precondition_required",
            field="If-Match",
        )
    tags = [t.strip() for t in if_match.split(",")]
    if "*" not in tags and etag(current) not in tags and etag(current).strip('"') not in tags:
        raise CrmError(
            f"the {entity.singular} changed since you read it (current ETag {etag(current)})",
            status=412,
            code="precondition_failed",
            field="If-Match",
        )


async def update_record(
    conn: AsyncConnection[Any],
    entity: Entity,
    principal: Principal,
    record_id: int,
    values: Row,
    if_match: str | None,
    *,
    check_etag: bool = True,
) -> Row:
    require_writer(entity, principal)
    await set_actor(conn, principal)
    current = await get_record(conn, entity, principal, record_id, for_update=True)
    if check_etag:
        check_if_match(entity, current, if_match)
    async with db_errors():
        await check_visible_refs(conn, entity, principal, values)
        hook = BEFORE.get(entity.name)
        if hook is not None:
            await hook(conn, principal, current, values)
        cols = await _columns(entity, values)
        sets: list[sql.Composable] = [sql.SQL("{} = {}").format(c[0], c[1]) for c in cols]
        if entity.field("updated_at") is not None:
            sets.append(sql.SQL("updated_at = now()"))
        if entity.versioned:
            sets.append(sql.SQL("version = version + 1"))
        if sets:
            await conn.execute(
                sql.SQL("UPDATE {} SET {} WHERE id = %s").format(
                    sql.Identifier(entity.table), sql.SQL(", ").join(sets)
                ),
                [*(c[2] for c in cols), record_id],
            )
        new = await get_record(conn, entity, _unscoped(principal), record_id)
        after = AFTER.get(entity.name)
        if after is not None:
            await after(conn, principal, current, new)
        for listener in ON_CHANGE:
            await listener(conn, entity.name, current, new)
    if entity.name == "users":
        forget_tokens()  # role, territory or team may have changed
    return new


async def delete_record(
    conn: AsyncConnection[Any],
    entity: Entity,
    principal: Principal,
    record_id: int,
    if_match: str | None,
) -> None:
    require_writer(entity, principal)
    await set_actor(conn, principal)
    current = await get_record(conn, entity, principal, record_id, for_update=True)
    check_if_match(entity, current, if_match)
    async with db_errors():
        await conn.execute(
            sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(entity.table)),
            [record_id],
        )
    if entity.name == "users":
        forget_tokens()
