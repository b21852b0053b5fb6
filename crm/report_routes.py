"""Reports and dashboards over HTTP: run a definition, save and share reports, export CSV,
compose dashboards of report tiles.

A saved report or dashboard is visible to its owner, to everyone when shared, and to admins;
only its owner (or an admin) changes or deletes it; others get 404 (it does not leak). Running
a report — anyone's — always applies the caller's own record-level access (`crm.reports`).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from crm.csvio import neutralise
from crm.errors import CrmError
from crm.record_routes import API
from crm.report_pdf import MAX_PDF_ROWS, check_rows, print_pdf, table_html
from crm.reports import ReportDefinition, ReportResult, run_report
from kernel.errors import NotFound
from kernel.http import Access, Req, Routes
from kernel.principal import Forbidden, Principal

routes = Routes("reports", "Reports (run, save, share, export) and dashboards of report tiles")

Title = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"\S")]
Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]
MAX_TILES = 24


class SavedPath(msgspec.Struct, frozen=True):
    id: Id


class ReportIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Title
    definition: ReportDefinition
    description: Annotated[str, Meta(max_length=2000)] | None = None
    shared: bool = False


class ReportPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Title | None = None
    definition: ReportDefinition | None = None
    description: Annotated[str, Meta(max_length=2000)] | None = None
    shared: bool | None = None


class SavedReport(msgspec.Struct):
    id: int
    name: str
    description: str | None
    definition: ReportDefinition
    owner_id: int
    owner_name: str
    shared: bool
    mine: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class SavedReports(msgspec.Struct):
    items: list[SavedReport]


class DashboardTile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    report_id: Id
    width: Annotated[int, Meta(ge=1, le=2)] = 1


class DashboardIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Title
    tiles: Annotated[list[DashboardTile], Meta(max_length=MAX_TILES)] = []
    shared: bool = False


class DashboardPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Title | None = None
    tiles: Annotated[list[DashboardTile], Meta(max_length=MAX_TILES)] | None = None
    shared: bool | None = None


class Dashboard(msgspec.Struct):
    id: int
    name: str
    owner_id: int
    owner_name: str
    shared: bool
    mine: bool
    tiles: list[DashboardTile]
    created_at: dt.datetime
    updated_at: dt.datetime


class Dashboards(msgspec.Struct):
    items: list[Dashboard]


# --------------------------------------------------------------------------- storage


def no_nul(**texts: str | None) -> None:
    """PostgreSQL text and jsonb cannot hold NUL: refuse it as bad input (422), not a 500."""
    for name, value in texts.items():
        if value is not None and ("\x00" in value or "\\u0000" in value):
            raise CrmError(f"{name}: may not contain NUL characters", field=name, status=422)


_VISIBLE = "(x.owner_id = %s OR x.shared OR %s)"
_REPORT_SELECT = (
    "SELECT x.id, x.name, x.description, x.definition, x.owner_id, u.name, x.shared,"
    " x.owner_id = %s, x.created_at, x.updated_at FROM saved_reports x JOIN users u ON u.id = x.owner_id"
)
_DASH_SELECT = (
    "SELECT x.id, x.name, x.owner_id, u.name, x.shared, x.owner_id = %s, x.tiles,"
    " x.created_at, x.updated_at FROM dashboards x JOIN users u ON u.id = x.owner_id"
)


def _report(r: tuple[Any, ...]) -> SavedReport:
    return SavedReport(r[0], r[1], r[2], msgspec.convert(r[3], ReportDefinition), *r[4:10])


def _dashboard(r: tuple[Any, ...]) -> Dashboard:
    return Dashboard(
        r[0], r[1], r[2], r[3], r[4], r[5], msgspec.convert(r[6], list[DashboardTile]), r[7], r[8]
    )


async def get_report(
    conn: AsyncConnection[Any], principal: Principal, report_id: int, *, for_write: bool = False
) -> SavedReport:
    """A saved report the principal may see, or 404; for_write: 403 unless theirs (or admin)."""
    cur = await conn.execute(
        f"{_REPORT_SELECT} WHERE x.id = %s AND {_VISIBLE}",
        (principal.user_id, report_id, principal.user_id, principal.is_admin),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"report {report_id} not found")
    report = _report(row)
    if for_write and not (report.mine or principal.is_admin):
        raise Forbidden("only the report's owner or an admin may change it")
    return report


async def _get_dashboard(
    conn: AsyncConnection[Any], principal: Principal, dash_id: int, *, for_write: bool = False
) -> Dashboard:
    cur = await conn.execute(
        f"{_DASH_SELECT} WHERE x.id = %s AND {_VISIBLE}",
        (principal.user_id, dash_id, principal.user_id, principal.is_admin),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"dashboard {dash_id} not found")
    dash = _dashboard(row)
    if for_write and not (dash.mine or principal.is_admin):
        raise Forbidden("only the dashboard's owner or an admin may change it")
    return dash


async def _check_definition(
    conn: AsyncConnection[Any], principal: Principal, d: ReportDefinition
) -> None:
    """Compile and plan it now, so a bad definition is refused when saved, not when run."""
    async with conn.transaction():
        await run_report(conn, principal, msgspec.structs.replace(d, limit=1))


async def _check_tiles(
    conn: AsyncConnection[Any], principal: Principal, tiles: list[DashboardTile]
) -> None:
    for i, t in enumerate(tiles):
        try:
            await get_report(conn, principal, t.report_id)
        except NotFound:
            raise CrmError(
                f"tiles[{i}].report_id: report {t.report_id} not found",
                field=f"tiles[{i}].report_id",
                status=422,
                code="unknown_reference",
            ) from None


async def save_report(
    conn: AsyncConnection[Any], principal: Principal, body: ReportIn
) -> SavedReport:
    """Save a new report owned by `principal` (the service behind POST /reports; the demo
    seeds through it too): its definition is compiled and planned first (422 when bad)."""
    no_nul(
        name=body.name,
        description=body.description,
        definition=msgspec.json.encode(body.definition).decode(),
    )
    await _check_definition(conn, principal, body.definition)
    cur = await conn.execute(
        "INSERT INTO saved_reports (name, description, definition, owner_id, shared)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (
            body.name,
            body.description,
            Jsonb(msgspec.to_builtins(body.definition)),
            principal.user_id,
            body.shared,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return await get_report(conn, principal, int(row[0]))


async def save_dashboard(
    conn: AsyncConnection[Any], principal: Principal, body: DashboardIn
) -> Dashboard:
    """Create a dashboard owned by `principal` (the service behind POST /dashboards): its
    tiles must be reports the principal may open (422 otherwise)."""
    no_nul(name=body.name)
    await _check_tiles(conn, principal, body.tiles)
    cur = await conn.execute(
        "INSERT INTO dashboards (name, owner_id, shared, tiles) VALUES (%s, %s, %s, %s) RETURNING id",
        (body.name, principal.user_id, body.shared, Jsonb(msgspec.to_builtins(body.tiles))),
    )
    row = await cur.fetchone()
    assert row is not None
    return await _get_dashboard(conn, principal, int(row[0]))


# --------------------------------------------------------------------------- reports


async def report_scope(req: Req, path: SavedPath) -> None:
    async with req.connection() as conn:
        await get_report(conn, req.user, path.id)


async def dashboard_scope(req: Req, path: SavedPath) -> None:
    async with req.connection() as conn:
        await _get_dashboard(conn, req.user, path.id)


_RUN = "Only rows the caller may see are counted (their record-level access applies)."


@routes.post(
    f"{API}/reports/run",
    access=Access.read(unscoped=_RUN),
    summary="Run a report definition (a preview of an unsaved report)",
    description="Grouped by up to two fields (dates by day, week, month, quarter or year), "
    "measured by count, sum, avg, min, max; money is grouped by currency. " + _RUN,
    errors=(422,),
)
async def run(req: Req, body: ReportDefinition) -> ReportResult:
    async with req.read_connection() as conn:
        return await run_report(conn, req.user, body)


@routes.get(
    f"{API}/reports",
    access=Access.read(unscoped="lists the caller's own reports, shared ones, all for admins"),
    summary="Saved reports the caller may open",
)
async def list_reports(req: Req) -> SavedReports:
    p = req.user
    async with req.connection() as conn:
        cur = await conn.execute(
            f"{_REPORT_SELECT} WHERE {_VISIBLE} ORDER BY x.name, x.id LIMIT 500",
            (p.user_id, p.user_id, p.is_admin),
        )
        return SavedReports([_report(r) for r in await cur.fetchall()])


@routes.post(
    f"{API}/reports",
    access=Access.write(unscoped="a new report belongs to its creator"),
    summary="Save a report",
    status=201,
    errors=(422,),
)
async def create_report(req: Req, body: ReportIn) -> SavedReport:
    async with req.connection() as conn:
        return await save_report(conn, req.user, body)


@routes.get(
    f"{API}/reports/{{id}}",
    access=Access.read(scope=report_scope),
    summary="A saved report",
)
async def get_one_report(req: Req, path: SavedPath) -> SavedReport:
    async with req.connection() as conn:
        return await get_report(conn, req.user, path.id)


@routes.patch(
    f"{API}/reports/{{id}}",
    access=Access.write(scope=report_scope),
    summary="Change a saved report (its owner or an admin)",
    errors=(403, 422),
)
async def patch_report(req: Req, path: SavedPath, body: ReportPatch) -> SavedReport:
    p = req.user
    no_nul(
        name=body.name,
        description=body.description,
        definition=msgspec.json.encode(body.definition).decode(),
    )
    async with req.connection() as conn:
        cur = await get_report(conn, p, path.id, for_write=True)
        if body.definition is not None:
            await _check_definition(conn, p, body.definition)
        await conn.execute(
            "UPDATE saved_reports SET name = %s, description = %s, definition = %s, shared = %s,"
            " updated_at = now() WHERE id = %s",
            (
                body.name or cur.name,
                body.description if body.description is not None else cur.description,
                Jsonb(msgspec.to_builtins(body.definition or cur.definition)),
                cur.shared if body.shared is None else body.shared,
                path.id,
            ),
        )
        return await get_report(conn, p, path.id)


@routes.delete(
    f"{API}/reports/{{id}}",
    access=Access.write(scope=report_scope),
    summary="Delete a saved report (its owner or an admin)",
    response=None,
    status=204,
    errors=(403,),
)
async def delete_report(req: Req, path: SavedPath) -> None:
    async with req.connection() as conn:
        await get_report(conn, req.user, path.id, for_write=True)
        await conn.execute("DELETE FROM saved_reports WHERE id = %s", (path.id,))


class ResultQuery(msgspec.Struct, frozen=True):
    max_age_s: Annotated[
        int,
        Meta(
            ge=0,
            le=3600,
            description="a result computed at most this long ago for the caller may be "
            "answered instead of running the report again (dashboards); 0: run it now",
        ),
    ] = 0


def _result_key(saved: SavedReport, user: Principal) -> str:
    """The definition and the caller's access: a cached result is valid for both only."""
    scope = [user.role, user.territory_id, list(user.team_user_ids), list(user.team_territory_ids)]
    blob = msgspec.json.encode([saved.definition, scope])
    return hashlib.sha256(blob).hexdigest()


@routes.get(
    f"{API}/reports/{{id}}/result",
    access=Access.read(scope=report_scope),
    summary="Run a saved report",
    description=_RUN + " `as_of` says when the result was computed.",
)
async def report_result(req: Req, path: SavedPath, query: ResultQuery) -> ReportResult:
    async with req.connection() as conn:
        saved = await get_report(conn, req.user, path.id)
        key = _result_key(saved, req.user)
        if query.max_age_s:
            cur = await conn.execute(
                "SELECT result::text FROM report_results WHERE report_id = %s AND user_id = %s"
                " AND definition_hash = %s AND computed_at > now() - make_interval(secs => %s)",
                (path.id, req.user.user_id, key, query.max_age_s),
            )
            row = await cur.fetchone()
            if row is not None:
                return msgspec.json.decode(row[0], type=ReportResult)
    async with req.read_connection() as conn:
        result = await run_report(conn, req.user, saved.definition)
    result.as_of = dt.datetime.now(dt.UTC)
    async with req.connection() as conn:
        await conn.execute(
            "INSERT INTO report_results (report_id, user_id, definition_hash, computed_at, result)"
            " VALUES (%s, %s, %s, %s, %s::jsonb) ON CONFLICT (report_id, user_id) DO UPDATE"
            " SET definition_hash = excluded.definition_hash,"
            " computed_at = excluded.computed_at, result = excluded.result"
            " WHERE report_results.computed_at < excluded.computed_at",
            (path.id, req.user.user_id, key, result.as_of, msgspec.json.encode(result).decode()),
        )
    return result


def result_csv(result: ReportResult) -> bytes:
    """The result as CSV: a header of the columns' labels; text cells neutralised against
    formula injection (crm.csvio.neutralise), numbers as they are."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([neutralise(c.label) for c in result.columns])
    for row in result.rows:
        w.writerow(["" if v is None else neutralise(v) if isinstance(v, str) else v for v in row])
    return out.getvalue().encode()


def result_xlsx(result: ReportResult, title: str) -> bytes:
    """The result as an XLSX workbook: text written as text (never a formula), numbers as
    numbers, money with thousands separators beside its currency column."""
    import xlsxwriter  # only here: the export is its one user

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False})
    sheet = book.add_worksheet(
        (title or "Report")[:31].translate(str.maketrans("[]:*?/\\", " " * 7))
    )
    bold = book.add_format({"bold": True})
    money = book.add_format({"num_format": "#,##0.00"})
    for j, c in enumerate(result.columns):
        sheet.write_string(0, j, c.label, bold)
        sheet.set_column(j, j, max(12, min(40, len(c.label) + 2)))
    for i, row in enumerate(result.rows, start=1):
        for j, v in enumerate(row):
            if v is None:
                continue
            if isinstance(v, bool):
                sheet.write_boolean(i, j, v)
            elif isinstance(v, (int, float)):
                sheet.write_number(i, j, v, money if result.columns[j].money else None)
            else:
                sheet.write_string(i, j, str(v))
    book.close()
    return out.getvalue()


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _filename(name: str, ext: str = "csv") -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:80].strip("-")
    return f"{safe or 'report'}.{ext}"


@routes.get(
    f"{API}/reports/{{id}}/export.csv",
    access=Access.read(scope=report_scope),
    summary="A saved report's result as CSV",
    description=_RUN,
    content_type="text/csv",
)
async def export_report(req: Req, path: SavedPath) -> web.StreamResponse:
    async with req.connection() as conn:
        saved = await get_report(conn, req.user, path.id)
    async with req.read_connection() as conn:
        result = await run_report(conn, req.user, saved.definition)
    return web.Response(
        body=result_csv(result),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_filename(saved.name)}"'},
    )


@routes.post(
    f"{API}/reports/export.csv",
    access=Access.read(unscoped=_RUN),
    summary="An unsaved report definition's result as CSV",
    content_type="text/csv",
    errors=(422,),
)
async def export_definition(req: Req, body: ReportDefinition) -> web.StreamResponse:
    async with req.read_connection() as conn:
        result = await run_report(conn, req.user, body)
    return web.Response(
        body=result_csv(result),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="report.csv"'},
    )


@routes.get(
    f"{API}/reports/{{id}}/export.xlsx",
    access=Access.read(scope=report_scope),
    summary="A saved report's result as an XLSX workbook",
    description=_RUN,
    content_type=XLSX,
)
async def export_report_xlsx(req: Req, path: SavedPath) -> web.StreamResponse:
    async with req.connection() as conn:
        saved = await get_report(conn, req.user, path.id)
    async with req.read_connection() as conn:
        result = await run_report(conn, req.user, saved.definition)
    body = await asyncio.to_thread(result_xlsx, result, saved.name)  # CPU work off the loop
    return web.Response(
        body=body,
        content_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{_filename(saved.name, "xlsx")}"'},
    )


@routes.post(
    f"{API}/reports/export.xlsx",
    access=Access.read(unscoped=_RUN),
    summary="An unsaved report definition's result as an XLSX workbook",
    content_type=XLSX,
    errors=(422,),
)
async def export_definition_xlsx(req: Req, body: ReportDefinition) -> web.StreamResponse:
    async with req.read_connection() as conn:
        result = await run_report(conn, req.user, body)
    data = await asyncio.to_thread(result_xlsx, result, "Report")
    return web.Response(
        body=data,
        content_type=XLSX,
        headers={"Content-Disposition": 'attachment; filename="report.xlsx"'},
    )


# --------------------------------------------------------------------------- dashboards


def printed_note(user: Principal, count: int) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{count:,} rows, as {user.email} may see them, printed {when}"


async def result_pdf(result: ReportResult, title: str, user: Principal) -> bytes:
    check_rows(len(result.rows))
    heads = [c.label for c in result.columns]
    return await print_pdf(
        table_html(title, heads, result.rows, printed_note(user, len(result.rows)))
    )


@routes.get(
    f"{API}/reports/{{id}}/export.pdf",
    access=Access.read(scope=report_scope),
    summary="A saved report's result as a PDF (printed by headless Chromium)",
    description=_RUN + f" At most {MAX_PDF_ROWS:,} rows (422 beyond); 503 without Chromium.",
    content_type="application/pdf",
    errors=(422, 503),
)
async def export_report_pdf(req: Req, path: SavedPath) -> web.StreamResponse:
    async with req.connection() as conn:
        saved = await get_report(conn, req.user, path.id)
    async with req.read_connection() as conn:
        result = await run_report(conn, req.user, saved.definition)
    return web.Response(
        body=await result_pdf(result, saved.name, req.user),
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{_filename(saved.name, "pdf")}"'},
    )


@routes.post(
    f"{API}/reports/export.pdf",
    access=Access.read(unscoped=_RUN),
    summary="An unsaved report definition's result as a PDF (printed by headless Chromium)",
    description=f"At most {MAX_PDF_ROWS:,} rows (422 beyond); 503 without Chromium.",
    content_type="application/pdf",
    errors=(422, 503),
)
async def export_definition_pdf(req: Req, body: ReportDefinition) -> web.StreamResponse:
    async with req.read_connection() as conn:
        result = await run_report(conn, req.user, body)
    return web.Response(
        body=await result_pdf(result, "Report", req.user),
        content_type="application/pdf",
        headers={"Content-Disposition": 'attachment; filename="report.pdf"'},
    )


@routes.get(
    f"{API}/dashboards",
    access=Access.read(unscoped="lists the caller's own dashboards, shared ones, all for admins"),
    summary="Dashboards the caller may open",
)
async def list_dashboards(req: Req) -> Dashboards:
    p = req.user
    async with req.connection() as conn:
        cur = await conn.execute(
            f"{_DASH_SELECT} WHERE {_VISIBLE} ORDER BY x.name, x.id LIMIT 500",
            (p.user_id, p.user_id, p.is_admin),
        )
        return Dashboards([_dashboard(r) for r in await cur.fetchall()])


@routes.post(
    f"{API}/dashboards",
    access=Access.write(
        unscoped="a new dashboard belongs to its creator; tiles must be reports the caller may open"
    ),
    summary="Create a dashboard",
    status=201,
    errors=(422,),
)
async def create_dashboard(req: Req, body: DashboardIn) -> Dashboard:
    async with req.connection() as conn:
        return await save_dashboard(conn, req.user, body)


@routes.get(
    f"{API}/dashboards/{{id}}",
    access=Access.read(scope=dashboard_scope),
    summary="A dashboard and its tiles",
)
async def get_dashboard(req: Req, path: SavedPath) -> Dashboard:
    async with req.connection() as conn:
        return await _get_dashboard(conn, req.user, path.id)


@routes.patch(
    f"{API}/dashboards/{{id}}",
    access=Access.write(scope=dashboard_scope),
    summary="Rename, share or change the tiles of a dashboard (its owner or an admin)",
    errors=(403, 422),
)
async def patch_dashboard(req: Req, path: SavedPath, body: DashboardPatch) -> Dashboard:
    p = req.user
    no_nul(name=body.name)
    async with req.connection() as conn:
        cur = await _get_dashboard(conn, p, path.id, for_write=True)
        if body.tiles is not None:
            await _check_tiles(conn, p, body.tiles)
        await conn.execute(
            "UPDATE dashboards SET name = %s, shared = %s, tiles = %s, updated_at = now() WHERE id = %s",
            (
                body.name or cur.name,
                cur.shared if body.shared is None else body.shared,
                Jsonb(msgspec.to_builtins(cur.tiles if body.tiles is None else body.tiles)),
                path.id,
            ),
        )
        return await _get_dashboard(conn, p, path.id)


@routes.delete(
    f"{API}/dashboards/{{id}}",
    access=Access.write(scope=dashboard_scope),
    summary="Delete a dashboard (its owner or an admin)",
    response=None,
    status=204,
    errors=(403,),
)
async def delete_dashboard(req: Req, path: SavedPath) -> None:
    async with req.connection() as conn:
        await _get_dashboard(conn, req.user, path.id, for_write=True)
        await conn.execute("DELETE FROM dashboards WHERE id = %s", (path.id,))
