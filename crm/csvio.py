"""CSV import and export of accounts, contacts and leads, as background jobs.

Import: each row is parsed and written in its own savepoint, so a bad row is recorded with
its line number and reason (import_job_errors) while the good rows are kept. A row whose
upsert key (id, external_id, email or name) matches a visible record updates it; otherwise
it inserts. What each row did is kept in import_job_rows, so the job can be reverted.
Progress is committed every COMMIT_EVERY rows. Access rules are those of the user who
started the job.

CSV columns are field names; `custom.<key>` fills a custom field; `lon` and `lat` together
fill `location`; list fields are separated by ';'; object fields are JSON. A cell with a
control character (NUL included) or a lone surrogate refuses its row, reported with its
line, never the job.

Export: a text cell a spreadsheet would run as a formula (starting with =, +, -, @, tab or
CR) is written with a leading ' (CSV injection); numbers are written as they are.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from crm.entities import ENTITIES, Entity, Field
from crm.errors import CrmError
from crm.filters import parse_sort
from crm.schema import parse_body
from crm.store import Row, create_record, get_record, list_records, scope, update_record
from identity.auth import load_principal
from kernel.errors import ApiError
from kernel.jsonlimits import text_problem
from kernel.principal import Principal

log = logging.getLogger(__name__)
COMMIT_EVERY = 200
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


class RowError(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


# --------------------------------------------------------------------------- parsing (pure)


def _cell(f: Field, text: str) -> Any:
    k = f.kind
    if k == "int":
        try:
            return int(text)
        except ValueError:
            raise RowError(f"{f.name}: not an integer: {text!r}", f.name) from None
    if k == "bool":
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise RowError(f"{f.name}: not a boolean: {text!r}", f.name)
    if k == "text_list":
        return [x.strip() for x in text.split(";") if x.strip()]
    if k == "int_list":
        try:
            return [int(x) for x in text.split(";") if x.strip()]
        except ValueError:
            raise RowError(f"{f.name}: not a ';'-separated list of integers", f.name) from None
    if k in ("object", "array", "point", "multipolygon"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise RowError(f"{f.name}: not valid JSON", f.name) from None
    return text


def row_to_body(entity: Entity, row: dict[str, str | None]) -> dict[str, Any]:
    """One CSV row as an API body (empty cells are left out, not set to null)."""
    body: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    lon = lat = None
    for column, raw in row.items():
        if column is None:
            raise RowError("more cells than header columns")
        problem = text_problem(column, multiline=True) or text_problem(raw or "", multiline=True)
        if problem is not None:
            raise RowError(f"{column}: {problem}", column)
        text = (raw or "").strip()
        if text == "":
            continue
        if column.startswith("custom."):
            custom[column[len("custom.") :]] = text
            continue
        if column in ("lon", "lat"):
            try:
                value = float(text)
            except ValueError:
                raise RowError(f"{column}: not a number: {text!r}", "location") from None
            lon, lat = (value, lat) if column == "lon" else (lon, value)
            continue
        f = entity.field(column)
        assert f is not None  # columns are checked against the entity before the rows
        body[column] = _cell(f, text)
    if (lon is None) != (lat is None):
        raise RowError("lon and lat must be given together", "location")
    if lon is not None:
        body["location"] = {"type": "Point", "coordinates": [lon, lat]}
    if custom:
        body["custom"] = {**body.get("custom", {}), **custom}
    return body


def check_header(entity: Entity, header: list[str], key: str) -> None:
    for column in header:
        if column.startswith("custom.") or column in ("lon", "lat") or column == "id":
            continue
        f = entity.field(column)
        if f is None or not f.write:
            raise CrmError(
                f"CSV column {column!r} is not a writable field of {entity.name}",
                field=column,
                status=422,
            )
    if key not in header:
        raise CrmError(
            f"the upsert key column {key!r} is missing from the CSV", field="key", status=422
        )


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """A text cell that spreadsheets will not run as a formula (OWASP CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _cell_out(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, list):
        return neutralise(";".join(str(v) for v in value))
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


# --------------------------------------------------------------------------- import job


async def _find_existing(
    conn: AsyncConnection[Any], entity: Entity, principal: Principal, key: str, value: Any
) -> int | None:
    acc, acc_p = scope(entity, principal)
    col: sql.Composable
    if key == "email":
        col = sql.SQL("lower(btrim(t.email)) = lower(btrim(%s))")
    elif key == "name":
        col = sql.SQL("lower(t.name) = lower(%s)")
    else:
        col = sql.SQL("{} = %s").format(sql.Identifier("t", key))
    cur = await conn.execute(
        sql.SQL("SELECT t.id FROM {} t WHERE {} AND {} LIMIT 2").format(
            sql.Identifier(entity.table), col, acc
        ),
        [value, *acc_p],
    )
    rows = await cur.fetchall()
    if len(rows) > 1:
        raise RowError(f"{key} {value!r} matches more than one record", key)
    return int(rows[0][0]) if rows else None


async def _import_row(
    conn: AsyncConnection[Any],
    entity: Entity,
    principal: Principal,
    key: str,
    row: dict[str, str | None],
) -> tuple[int, str, Row | None]:
    body = row_to_body(entity, row)
    key_value = body.pop("id", None) if key == "id" else body.get(key)
    if key == "id" and key_value is not None:
        try:
            key_value = int(key_value)
        except (TypeError, ValueError):
            raise RowError(f"id: not an integer: {key_value!r}", "id") from None
    existing = (
        await _find_existing(conn, entity, principal, key, key_value)
        if key_value is not None
        else None
    )
    values = parse_body(entity, body, partial=existing is not None, strict=False)
    if existing is None:
        if key == "id" and key_value is not None:
            raise RowError(f"no {entity.singular} with id {key_value}", "id")
        new = await create_record(conn, entity, principal, values)
        return int(new["id"]), "inserted", None
    current = await get_record(conn, entity, principal, existing)
    previous = {k: current.get(k) for k in values}
    await update_record(conn, entity, principal, existing, values, None, check_etag=False)
    return existing, "updated", previous


async def run_import(pool: AsyncConnectionPool[Any], job_id: int) -> None:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        # Run by the job system at least once: a finished job is left alone, and a job
        # that was running when its worker died resumes after the lines it recorded.
        await cur.execute(
            "UPDATE import_jobs SET status = 'running', started_at = coalesce(started_at, now())"
            " WHERE id = %s AND status IN ('queued', 'running') RETURNING *",
            (job_id,),
        )
        job = await cur.fetchone()
        await conn.commit()
        if job is None:
            return
        cur = await conn.execute(
            "SELECT line_no, action FROM import_job_rows WHERE job_id = %s"
            " UNION ALL SELECT line_no, 'failed' FROM import_job_errors WHERE job_id = %s",
            (job_id, job_id),
        )
        seen = {int(r[0]): str(r[1]) for r in await cur.fetchall()}
        await conn.commit()
        try:
            entity = ENTITIES[job["entity"]]
            principal = await load_principal(conn, job["created_by"])
            if principal is None:
                raise CrmError("the user who started the import no longer exists")
            text = bytes(job["content"]).decode("utf-8-sig")
            total = max(sum(1 for _ in csv.reader(io.StringIO(text))) - 1, 0)
            await conn.execute(
                "UPDATE import_jobs SET total_rows = %s WHERE id = %s", (total, job_id)
            )
            reader = csv.DictReader(io.StringIO(text))
            check_header(entity, list(reader.fieldnames or []), job["key_field"])
            counts = {"inserted": 0, "updated": 0, "failed": 0, "processed": 0}
            for earlier in seen.values():
                counts[earlier] += 1
                counts["processed"] += 1
            end_of_previous = 1  # the header's last line
            for row in reader:
                line = end_of_previous + 1  # where the record starts (a quoted cell may span lines)
                end_of_previous = reader.line_num
                if line in seen:  # done by an earlier attempt
                    continue
                try:
                    async with conn.transaction():
                        record_id, action, previous = await _import_row(
                            conn, entity, principal, job["key_field"], row
                        )
                        await conn.execute(
                            "INSERT INTO import_job_rows (job_id, line_no, record_id, action, previous) "
                            "VALUES (%s, %s, %s, %s, %s::jsonb)",
                            (
                                job_id,
                                line,
                                record_id,
                                action,
                                json.dumps(previous, default=str) if previous else None,
                            ),
                        )
                    counts[action] += 1
                except (RowError, ApiError) as exc:
                    counts["failed"] += 1
                    await conn.execute(
                        "INSERT INTO import_job_errors (job_id, line_no, field, message, raw) VALUES (%s, %s, %s, %s, %s::jsonb)",
                        (job_id, line, _printable(exc.field), _printable(exc.message), _raw(row)),
                    )
                counts["processed"] += 1
                if counts["processed"] % COMMIT_EVERY == 0:
                    await _progress(conn, job_id, counts)
                    await conn.commit()
            await _progress(conn, job_id, counts)
            await conn.execute(
                "UPDATE import_jobs SET status = 'done', finished_at = now() WHERE id = %s",
                (job_id,),
            )
            await conn.commit()
        except (CrmError, UnicodeDecodeError, csv.Error) as exc:
            await conn.rollback()
            message = exc.message if isinstance(exc, CrmError) else f"cannot read the CSV: {exc}"
            await conn.execute(
                "UPDATE import_jobs SET status = 'failed', error = %s, finished_at = now() WHERE id = %s",
                (message, job_id),
            )
            await conn.commit()
        except Exception:
            log.exception("import job %s failed", job_id)
            await conn.rollback()
            await conn.execute(
                "UPDATE import_jobs SET status = 'failed', error = 'internal error', finished_at = now() WHERE id = %s",
                (job_id,),
            )
            await conn.commit()


def _printable(text: str | None) -> str | None:
    """Text PostgreSQL can store: control characters and surrogates shown as escapes."""
    if text is None or text_problem(text, multiline=True) is None:
        return text
    return "".join(
        c if text_problem(c, multiline=True) is None else c.encode("unicode_escape").decode()
        for c in text
    )


def _raw(row: dict[str | None, Any]) -> str:
    """The refused row as stored JSON (cells beyond the header under "")."""
    cells = {
        _printable(k or "") or "": [_printable(x) for x in v]
        if isinstance(v, list)
        else _printable(v)
        for k, v in row.items()
    }
    return json.dumps(cells)


async def _progress(conn: AsyncConnection[Any], job_id: int, counts: dict[str, int]) -> None:
    await conn.execute(
        "UPDATE import_jobs SET processed_rows = %s, inserted_rows = %s, updated_rows = %s, failed_rows = %s WHERE id = %s",
        (counts["processed"], counts["inserted"], counts["updated"], counts["failed"], job_id),
    )


async def revert_import(conn: AsyncConnection[Any], principal: Principal, job_id: int) -> None:
    """Undo a finished import in one transaction: inserted records deleted, updated
    records given back the values they had before the import."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM import_jobs WHERE id = %s FOR UPDATE", (job_id,))
    job = await cur.fetchone()
    if job is None or (job["created_by"] != principal.user_id and not principal.is_admin):
        raise CrmError(f"import {job_id} not found", status=404, code="not_found")
    if job["status"] != "done":
        raise CrmError(
            f"only a finished import can be reverted (this one is {job['status']})",
            status=409,
            code="conflict",
        )
    entity = ENTITIES[job["entity"]]
    await cur.execute(
        "SELECT * FROM import_job_rows WHERE job_id = %s ORDER BY line_no DESC", (job_id,)
    )
    from crm.store import set_actor

    await set_actor(conn, principal)
    for row in await cur.fetchall():
        if row["action"] == "inserted":
            await conn.execute(
                sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(entity.table)),
                (row["record_id"],),
            )
            continue
        previous = row["previous"] or {}
        given = {name: v for name, v in previous.items() if (f := entity.field(name)) and f.write}
        values = parse_body(entity, given, partial=True, strict=False)
        if values:
            try:
                await update_record(
                    conn, entity, principal, row["record_id"], values, None, check_etag=False
                )
            except ApiError as exc:
                if exc.status != 404:
                    raise
    await conn.execute(
        "UPDATE import_jobs SET status = 'reverted', reverted_at = now() WHERE id = %s", (job_id,)
    )


# --------------------------------------------------------------------------- export job


async def run_export(pool: AsyncConnectionPool[Any], job_id: int, page_size: int = 1000) -> None:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "UPDATE export_jobs SET status = 'running' WHERE id = %s"
            " AND status IN ('queued', 'running') RETURNING *",
            (job_id,),
        )
        job = await cur.fetchone()
        await conn.commit()
        if job is None:
            return
        try:
            entity = ENTITIES[job["entity"]]
            principal = await load_principal(conn, job["created_by"])
            if principal is None:
                raise CrmError("the user who started the export no longer exists")
            first = await list_records(
                conn,
                entity,
                principal,
                filter_node=job["filter"],
                sort=parse_sort(entity, "id"),
                limit=1,
                with_total=True,
            )
            await conn.execute(
                "UPDATE export_jobs SET total_rows = %s WHERE id = %s", (first.total, job_id)
            )
            await conn.commit()
            out = io.StringIO()
            columns = [f.name for f in entity.readable]
            writer = csv.writer(out)
            writer.writerow(columns)
            cursor = None
            done = 0
            while True:
                page = await list_records(
                    conn,
                    entity,
                    principal,
                    filter_node=job["filter"],
                    sort=parse_sort(entity, "id"),
                    cursor=cursor,
                    limit=page_size,
                )
                for item in page.items:
                    writer.writerow([_cell_out(item[c]) for c in columns])
                done += len(page.items)
                await conn.execute(
                    "UPDATE export_jobs SET processed_rows = %s WHERE id = %s", (done, job_id)
                )
                await conn.commit()
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            await conn.execute(
                "UPDATE export_jobs SET status = 'done', result = %s, finished_at = now() WHERE id = %s",
                (out.getvalue().encode(), job_id),
            )
            await conn.commit()
        except Exception as exc:
            if not isinstance(exc, ApiError):
                log.exception("export job %s failed", job_id)
            await conn.rollback()
            await conn.execute(
                "UPDATE export_jobs SET status = 'failed', error = %s, finished_at = now() WHERE id = %s",
                (exc.message if isinstance(exc, ApiError) else "internal error", job_id),
            )
            await conn.commit()
