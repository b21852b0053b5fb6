"""Lists as files over HTTP: the rows a list shows as XLSX, CSV or PDF (crm.list_export,
crm.report_pdf), under the caller's access."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta

from crm.entities import ENTITIES
from crm.errors import CrmError
from crm.filters import parse_filter_param, parse_sort
from crm.list_export import MAX_ROWS, columns, export_csv, export_xlsx, header, pages
from crm.record_routes import API
from crm.report_pdf import MAX_PDF_ROWS, check_rows, print_pdf, table_html
from crm.report_routes import XLSX, printed_note
from crm.schema import FILTER_DOC
from crm.store import db_errors
from kernel.errors import NotFound
from kernel.http import Access, Req, Routes

routes = Routes("exports", "Lists (search, filter, sort, columns) as XLSX, CSV or PDF")


# --------------------------------------------------------------------------- list exports


class ListExportPath(msgspec.Struct, frozen=True):
    entity: Annotated[str, Meta(max_length=40, pattern=r"^[a-z_]+$", description="record type")]
    format: Annotated[str, Meta(pattern=r"^(xlsx|csv|pdf)$", description="xlsx, csv or pdf")]


class ListExportQuery(msgspec.Struct, frozen=True):
    # 4,000 characters: percent-encoded, any of them still fits the 64 KiB request line
    filter: Annotated[str, Meta(max_length=4000, description=FILTER_DOC)] | None = None
    sort: Annotated[str, Meta(max_length=100, description="[-]field")] | None = None
    q: Annotated[str, Meta(max_length=200, description="search text")] | None = None
    columns: (
        Annotated[
            str,
            Meta(
                max_length=2000,
                pattern=r"^[a-z_]+(,[a-z_]+)*$",
                description="comma-separated fields or computed columns in order (default: "
                "every readable field, then the computed columns)",
            ),
        ]
        | None
    ) = None


@routes.get(
    f"{API}/list_exports/{{entity}}.{{format}}",
    access=Access.read(unscoped="the rows are the caller's own list, under its access clause"),
    summary="A list (filter, search, sort) as an XLSX workbook, a CSV file or a PDF",
    description="Every readable column (and the columns other packages compute for the list: "
    "the model scores `score` of leads, `win_pct` of opportunities, `churn_risk` and `health` "
    f"of accounts); references as names. At most {MAX_ROWS:,} rows, "
    f"{MAX_PDF_ROWS:,} in a PDF (422 beyond: narrow the filter). 404 for an unknown record "
    "type; 503 when the server has no Chromium to print the PDF with.",
    content_type="application/octet-stream",
    errors=(404, 422),
)
async def export_list(req: Req, path: ListExportPath, query: ListExportQuery) -> web.StreamResponse:
    entity = ENTITIES.get(path.entity)
    if entity is None:
        raise NotFound(f"no record type {path.entity!r}")
    if query.q is not None and "\x00" in query.q:
        raise CrmError("q may not contain NUL characters", field="q", status=422)
    sort = parse_sort(entity, query.sort)
    node = parse_filter_param(query.filter)
    cols = columns(entity, query.columns.split(",") if query.columns else None)
    name = f"{entity.name}.{path.format}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    async with req.read_connection() as conn, db_errors():
        if path.format == "pdf":
            rows: list[list[Any]] = []
            async for page in pages(
                conn, entity, req.user, filter_node=node, sort=sort, q=query.q, cols=cols
            ):
                rows += page
                check_rows(len(rows))
            title = entity.name.replace("_", " ").capitalize()
            doc = table_html(
                title, [header(f) for f in cols], rows, printed_note(req.user, len(rows))
            )
            return web.Response(
                body=await print_pdf(doc), content_type="application/pdf", headers=disposition
            )
        if path.format == "csv":
            body = await export_csv(
                conn, entity, req.user, filter_node=node, sort=sort, q=query.q, cols=cols
            )
            return web.Response(
                body=body, content_type="text/csv", charset="utf-8", headers=disposition
            )
        file = await export_xlsx(
            conn, entity, req.user, filter_node=node, sort=sort, q=query.q, cols=cols
        )
    resp = web.FileResponse(file, headers={**disposition, "Content-Type": XLSX})
    try:
        await resp.prepare(req.request)  # sends the file
    finally:
        await asyncio.to_thread(os.unlink, file)
    return resp
