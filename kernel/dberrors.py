"""Database refusals as API errors, for every package: a constraint or a value PostgreSQL
refused is the client's to correct (409 or 422 naming the field where the database says
which), never a 500. Packages map their own refusals where they know better words (e.g.
crm.store.db_errors); the error middleware maps what escapes them, such as a deferred
constraint that fires only at COMMIT."""

from __future__ import annotations

import re

import psycopg
from psycopg import errors

from kernel.errors import ApiError, Conflict, Unprocessable

_KEY_RE = re.compile(r"Key \(([^)]+)\)")


def field_of(exc: psycopg.Error) -> str | None:
    """The column a refusal names: the first of its key, else the one it reports."""
    m = _KEY_RE.search(exc.diag.message_detail or "")
    if m:
        name = m.group(1).split(",")[0].strip()
        return name.removeprefix("lower(").rstrip(")")
    return exc.diag.column_name


def refusal(exc: psycopg.Error) -> ApiError | None:
    """The API error for a refusal caused by the request's data; None for anything else
    (a bug or an outage stays a 500 or 503)."""
    detail = exc.diag.message_detail or ""
    if isinstance(exc, errors.UniqueViolation):
        fld = field_of(exc)
        return Conflict(
            f"{fld or 'record'} already exists: {detail}".strip(), code="duplicate", field=fld
        )
    if isinstance(exc, errors.ForeignKeyViolation):
        fld = field_of(exc)
        if "still referenced" in detail:
            return Conflict(f"the record is still referenced: {detail}", code="referenced")
        return Unprocessable(
            f"{fld}: no such record ({detail})", field=fld, code="unknown_reference"
        )
    if isinstance(exc, errors.CheckViolation | errors.NotNullViolation | errors.RaiseException):
        return Unprocessable(
            exc.diag.message_primary or "refused by a database rule",
            field=exc.diag.column_name or field_of(exc),
        )
    if isinstance(exc, psycopg.DataError | errors.ProgramLimitExceeded):
        # out-of-range numbers or dates, invalid text for a type, NUL in text, a value too
        # large for an index
        return Unprocessable(
            exc.diag.message_primary or str(exc) or "a value cannot be stored",
            field=exc.diag.column_name,
        )
    if isinstance(exc, psycopg.IntegrityError):  # any other constraint (exclusion, ...)
        return Conflict(
            exc.diag.message_primary or "refused by a database rule", field=field_of(exc)
        )
    return None
