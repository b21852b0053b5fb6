"""CSV import and export jobs over HTTP.

A job belongs to the user who started it (admins see every job): its endpoints are scoped
by that (`job_scope`, 404 otherwise). The jobs run in the background with the starter's
access rules (crm.csvio): enqueued (crm.jobs) in the transaction that records them, run
by the `jobs` role of `fieldmesh run`. `Idempotency-Key` on the creating POSTs replays
the first response without starting a second job.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from msgspec import Meta
from psycopg.rows import dict_row

from crm import csvio
from crm import jobs as crm_jobs
from crm.entities import ENTITIES
from crm.errors import CrmError
from crm.filters import compile_filter
from crm.idempotency import idempotent
from crm.record_routes import API
from crm.schema import RecordPath
from crm.store import Row
from kernel.errors import NotFound
from kernel.http import Access, RawBody, Reply, Req, Routes, Scope

CsvEntity = Literal["accounts", "contacts", "leads"]
UpsertKey = Literal["id", "external_id", "email", "name"]
MAX_CSV_BYTES = 16 * 1024 * 1024
OWN_JOB = "a job is seen by the user who started it and by admins"

_IMPORT_COLS = (
    "id, entity, key_field, filename, status, total_rows, processed_rows, inserted_rows,"
    " updated_rows, failed_rows, error, created_by, created_at, started_at, finished_at,"
    " reverted_at"
)
_EXPORT_COLS = (
    "id, entity, filter, status, total_rows, processed_rows, error, created_by, created_at,"
    " finished_at"
)


class ImportQuery(msgspec.Struct, frozen=True):
    entity: CsvEntity
    key: Annotated[UpsertKey, Meta(description="the column that finds existing records")] = "id"
    filename: Annotated[str, Meta(max_length=255)] | None = None


class ImportAccepted(msgspec.Struct):
    id: int
    entity: str
    key_field: str | None
    status: str
    created_at: dt.datetime


class ImportJob(msgspec.Struct):
    id: int
    entity: str
    key_field: str | None
    filename: str | None
    status: str
    total_rows: int | None
    processed_rows: int
    inserted_rows: int
    updated_rows: int
    failed_rows: int
    error: str | None
    created_by: int | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    reverted_at: dt.datetime | None


class ImportRowError(msgspec.Struct):
    line_no: int
    field: str | None
    message: str
    raw: Any


class ImportErrors(msgspec.Struct):
    items: list[ImportRowError]


class ExportBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    entity: CsvEntity
    filter: Annotated[Any, Meta(description="a filter as in the list endpoints")] = None


class ExportJob(msgspec.Struct):
    id: int
    entity: str
    filter: Any
    status: str
    total_rows: int | None
    processed_rows: int
    error: str | None
    created_by: int | None
    created_at: dt.datetime
    finished_at: dt.datetime | None


async def _own_job(req: Req, table: str, cols: str, job_id: int) -> Row:
    async with req.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(f"SELECT {cols}, created_by FROM {table} WHERE id = %s", (job_id,))
        job = await cur.fetchone()
    if job is None or (job["created_by"] != req.user.user_id and not req.user.is_admin):
        raise NotFound(f"job {job_id} not found")
    return job


def job_scope(table: str) -> Scope:
    async def scope(req: Req, path: Any) -> None:
        await _own_job(req, table, "id", path.id)

    scope.__qualname__ = f"job_scope[{table}]"
    return scope


# --------------------------------------------------------------------------- imports


async def create_import(req: Req, query: ImportQuery, body: bytes) -> Reply[Row]:
    entity = ENTITIES[query.entity]
    if query.key not in entity.upsert_keys:
        raise CrmError(
            f"key must be one of {', '.join(entity.upsert_keys)}", field="key", status=422
        )
    if not body:
        raise CrmError("the body must be the CSV file", status=400)
    try:  # a bad header is refused now; bad rows are reported by the job
        header = next(csv.reader(io.StringIO(body.decode("utf-8-sig"))), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CrmError(f"the body is not a UTF-8 CSV file: {exc}", status=400) from None
    csvio.check_header(entity, header, query.key)
    user = req.user

    async def run(conn: Any) -> Reply[Row]:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "INSERT INTO import_jobs (entity, key_field, filename, content, created_by)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id, entity, key_field, status, created_at",
            (entity.name, query.key, query.filename, body, user.user_id),
        )
        job = await cur.fetchone()
        await crm_jobs.enqueue_import(conn, int(job["id"]))  # runs once this commits
        return Reply(job, 202, {"Location": f"{API}/imports/{job['id']}"})

    return await idempotent(req, body, run)


async def get_import(req: Req, path: RecordPath) -> Row:
    return await _own_job(req, "import_jobs", _IMPORT_COLS, path.id)


async def import_errors(req: Req, path: RecordPath) -> ImportErrors:
    async with req.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT line_no, field, message, raw FROM import_job_errors WHERE job_id = %s"
            " ORDER BY line_no",
            (path.id,),
        )
        rows = await cur.fetchall()
    return ImportErrors([ImportRowError(**r) for r in rows])


async def revert_import(req: Req, path: RecordPath) -> Row:
    async with req.connection() as conn, conn.transaction():
        await csvio.revert_import(conn, req.user, path.id)
    return await _own_job(req, "import_jobs", _IMPORT_COLS, path.id)


# --------------------------------------------------------------------------- exports


async def create_export(req: Req, body: ExportBody) -> Reply[Row]:
    entity = ENTITIES[body.entity]
    compile_filter(entity, body.filter)  # refuse a bad filter now, not in the job
    user = req.user

    async def run(conn: Any) -> Reply[Row]:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"INSERT INTO export_jobs (entity, filter, created_by) VALUES (%s, %s::jsonb, %s)"
            f" RETURNING {_EXPORT_COLS}",
            (
                entity.name,
                json.dumps(body.filter) if body.filter is not None else None,
                user.user_id,
            ),
        )
        job = await cur.fetchone()
        await crm_jobs.enqueue_export(conn, int(job["id"]))  # runs once this commits
        return Reply(job, 202, {"Location": f"{API}/exports/{job['id']}"})

    return await idempotent(req, body, run)


async def get_export(req: Req, path: RecordPath) -> Row:
    return await _own_job(req, "export_jobs", _EXPORT_COLS, path.id)


async def download_export(req: Req, path: RecordPath) -> web.StreamResponse:
    job = await _own_job(req, "export_jobs", "id, status, result, entity", path.id)
    if job["status"] != "done":
        raise CrmError(
            f"export {path.id} is {job['status']}, not done", status=409, code="not_ready"
        )
    return web.Response(
        body=bytes(job["result"]),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{job["entity"]}-{path.id}.csv"'},
    )


@functools.cache
def job_routes() -> Routes:
    routes = Routes("csv", "CSV import and export jobs")
    imports, exports = job_scope("import_jobs"), job_scope("export_jobs")
    routes.add(
        "POST",
        f"{API}/imports",
        create_import,
        access=Access.write(unscoped="the job writes with the starter's access rules, row by row"),
        summary="Start importing a CSV file (upsert by `key`)",
        description="Columns are field names; `custom.<key>` fills a custom field; `lon` and "
        "`lat` fill `location`; lists are ';'-separated; objects are JSON. Bad rows (with "
        "control characters, bad values, records the user may not see) are reported with "
        "their line numbers; the good rows are kept.",
        body=RawBody(("text/csv",), "The CSV file, UTF-8, with a header row"),
        response=ImportAccepted,
        status=202,
        max_body_bytes=MAX_CSV_BYTES,
        errors=(403,),
    )
    routes.add(
        "GET",
        f"{API}/imports/{{id}}",
        get_import,
        access=Access.read(scope=imports),
        summary="An import job and its progress",
        response=ImportJob,
    )
    routes.add(
        "GET",
        f"{API}/imports/{{id}}/errors",
        import_errors,
        access=Access.read(scope=imports),
        summary="The rows an import refused, with line numbers and reasons",
    )
    routes.add(
        "POST",
        f"{API}/imports/{{id}}/revert",
        revert_import,
        access=Access.write(scope=imports),
        summary="Undo a finished import (inserted rows deleted, updated ones restored)",
        response=ImportJob,
        errors=(403, 409),
    )
    routes.add(
        "POST",
        f"{API}/exports",
        create_export,
        access=Access.read(unscoped="the export holds only records the caller may see"),
        summary="Start exporting the records a filter selects as CSV",
        response=ExportJob,
        status=202,
    )
    routes.add(
        "GET",
        f"{API}/exports/{{id}}",
        get_export,
        access=Access.read(scope=exports),
        summary="An export job and its progress",
        response=ExportJob,
    )
    routes.add(
        "GET",
        f"{API}/exports/{{id}}/download",
        download_export,
        access=Access.read(scope=exports),
        summary="The exported CSV file (when the job is done)",
        description="Cells that a spreadsheet would run as a formula (starting with =, +, -, "
        "@, tab or CR) are written with a leading '.",
        content_type="text/csv",
        errors=(409,),
    )
    return routes
