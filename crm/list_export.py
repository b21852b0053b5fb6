"""A list as a file: the rows a list screen shows (its filter, search and sort, under the
caller's access), every readable column, as XLSX or CSV.

The rows are read page by page through `crm.store.list_records` (the list endpoint's own
query, keyset-paginated), so the export holds exactly what the caller could page through.
References are written as names (resolved per page under the caller's access; a record
they may not see is left blank), never as ids. XLSX is streamed (crm.xlsx) to a temporary
file, page by page off the event loop; CSV text cells
are neutralised against formula injection (`crm.csvio.neutralise`).

Columns a list shows that are not the entity's fields (the insights models' scores) are
computed columns: their owner registers them (`add_computed`, at app set-up) and fills
them a page at a time from the page's ids, in the database and under the caller's access.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import decimal
import io
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from crm.csvio import neutralise
from crm.entities import ENTITIES, Entity, Field
from crm.errors import CrmError
from crm.filters import Sort
from crm.labels import LABELS
from crm.store import list_records, scope
from crm.xlsx import XlsxWriter
from kernel.principal import Principal

MAX_ROWS = 250_000  # rows one export may hold: beyond, narrow the filter
PAGE = 5_000
SKIP_KINDS = ("password", "point", "multipolygon", "object", "array")


Values = Callable[[AsyncConnection[Any], Principal, list[int]], Awaitable[dict[int, Any]]]


@dataclass(frozen=True, slots=True)
class Computed:
    """A list column that is not a field: `values(conn, principal, ids)` answers its cells
    by record id for one page's ids (one query; a record the caller may not see, or with
    no value, is absent and its cell left blank)."""

    name: str  # as `columns=` names it
    header: str  # as the list's column heading reads
    values: Values


Column = Field | Computed

# entity -> its computed columns, in the list's order; filled at app set-up by their owners
COMPUTED: dict[str, tuple[Computed, ...]] = {}


def add_computed(entity: str, *cols: Computed) -> None:
    """Register computed columns of an entity's lists (idempotent: set-up may run twice)."""
    ent = ENTITIES[entity]
    clash = {c.name for c in cols} & {f.name for f in ent.fields}
    if clash:
        raise ValueError(f"computed columns of {entity} named like its fields: {sorted(clash)}")
    known = {c.name: c for c in COMPUTED.get(entity, ())}
    known.update({c.name: c for c in cols})
    COMPUTED[entity] = tuple(known.values())


def columns(entity: Entity, names: list[str] | None = None) -> list[Column]:
    """The exported columns: those named (the list's shown columns, in their order), else
    every readable field a spreadsheet can hold and the entity's computed columns."""
    fit = [f for f in entity.readable if f.kind not in SKIP_KINDS and f.name != "version"]
    computed = COMPUTED.get(entity.name, ())
    if not names:
        return [*fit, *computed]
    by_name: dict[str, Column] = {f.name: f for f in fit}
    by_name.update({c.name: c for c in computed})
    for n in names:
        if n not in by_name:
            raise CrmError(
                f"columns: {entity.name} has no exportable field {n[:40]!r}",
                field="columns",
                status=422,
            )
    out = [by_name[n] for n in dict.fromkeys(names)]
    money = {"amount", "annual_revenue", "estimated_amount"}
    if "currency" in by_name and "currency" not in names and money & set(names):
        out.append(by_name["currency"])  # an amount is only read with its currency
    return out


def header(f: Column) -> str:
    if isinstance(f, Computed):
        return f.header
    name = f.name[:-3] if f.ref and f.name.endswith("_id") else f.name
    return name.replace("_", " ").capitalize()


async def _names(
    conn: AsyncConnection[Any], principal: Principal, target: str, ids: set[int]
) -> dict[int, str]:
    if not ids or target not in LABELS:
        return {}
    ent = ENTITIES[target]
    acc, acc_p = scope(ent, principal)
    cur = await conn.execute(
        sql.SQL("SELECT t.id, {label} FROM {table} t WHERE t.id = ANY(%s) AND {acc}").format(
            label=sql.SQL(LABELS[target]), table=sql.Identifier(ent.table), acc=acc
        ),
        [list(ids), *acc_p],
    )
    return {int(r[0]): str(r[1]) for r in await cur.fetchall()}


async def pages(
    conn: AsyncConnection[Any],
    entity: Entity,
    principal: Principal,
    *,
    filter_node: Any,
    sort: Sort,
    q: str | None,
    cols: list[Column],
) -> AsyncIterator[list[list[Any]]]:
    """The list's rows, a page at a time, as cells in `cols` order."""
    first = await list_records(
        conn, entity, principal, filter_node=filter_node, sort=sort, q=q, limit=1, with_total=True
    )
    if (first.total or 0) > MAX_ROWS:
        raise CrmError(
            f"{first.total:,} rows: an export holds at most {MAX_ROWS:,}; narrow the filter",
            field="filter",
            status=422,
            code="too_many_rows",
        )
    cursor: str | None = None
    while True:
        page = await list_records(
            conn,
            entity,
            principal,
            filter_node=filter_node,
            sort=sort,
            q=q,
            cursor=cursor,
            limit=PAGE,
        )
        # per column, by record id: a reference's names, a computed column's values
        by_id: dict[str, dict[int, Any]] = {}
        for f in cols:
            if isinstance(f, Computed):
                if page.items:
                    by_id[f.name] = await f.values(
                        conn, principal, [int(r["id"]) for r in page.items]
                    )
            elif f.ref:
                ids = {int(r[f.name]) for r in page.items if r.get(f.name) is not None}
                by_id[f.name] = await _names(conn, principal, f.ref, ids)
        yield [[_cell(f, r, by_id) for f in cols] for r in page.items]
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _cell(f: Column, r: dict[str, Any], by_id: dict[str, dict[int, Any]]) -> Any:
    if isinstance(f, Computed):
        return by_id.get(f.name, {}).get(int(r["id"]))
    v = r.get(f.name)
    return by_id[f.name].get(int(v)) if f.ref and v is not None else v


def _plain(v: Any) -> Any:
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, list) and all(isinstance(x, str | int | float) for x in v):
        return ", ".join(str(x) for x in v)  # skills, competitors: "a, b" (never "['a']")
    return v


class XlsxFile:
    """An XLSX workbook written row by row to a temporary file (crm.xlsx: constant memory)."""

    def __init__(self, title: str, heads: list[str]) -> None:
        fd, path = tempfile.mkstemp(suffix=".xlsx", prefix="fm-export-")
        os.close(fd)
        self.path = path
        try:
            self.book = XlsxWriter(path, title, heads, other=_plain)
        except BaseException:
            os.unlink(path)
            raise

    def add(self, rows: list[list[Any]]) -> None:
        self.book.add(rows)

    def close(self) -> str:
        return self.book.close()


async def export_xlsx(
    conn: AsyncConnection[Any],
    entity: Entity,
    principal: Principal,
    *,
    filter_node: Any,
    sort: Sort,
    q: str | None,
    cols: list[Column],
) -> str:
    """The path of a temporary XLSX file of the list (the caller deletes it)."""
    book = await asyncio.to_thread(
        XlsxFile, entity.name.replace("_", " ").capitalize(), [header(f) for f in cols]
    )
    try:
        async for rows in pages(
            conn, entity, principal, filter_node=filter_node, sort=sort, q=q, cols=cols
        ):
            await asyncio.to_thread(book.add, rows)
        return await asyncio.to_thread(book.close)
    except BaseException:
        os.unlink(book.path)
        raise


async def export_csv(
    conn: AsyncConnection[Any],
    entity: Entity,
    principal: Principal,
    *,
    filter_node: Any,
    sort: Sort,
    q: str | None,
    cols: list[Column],
) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([header(f) for f in cols])
    async for rows in pages(
        conn, entity, principal, filter_node=filter_node, sort=sort, q=q, cols=cols
    ):
        for cells in rows:
            w.writerow(
                [
                    "" if v is None else neutralise(v) if isinstance(v, str) else v
                    for v in map(_plain, cells)
                ]
            )
    return out.getvalue().encode()
