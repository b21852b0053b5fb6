"""The filter language, sorting and keyset cursors, compiled to parameterised SQL (pure).

A filter is JSON (the `filter` query parameter of every list endpoint):

    {"and": [F, ...]}    {"or": [F, ...]}    {"not": F}
    {"field": NAME, "op": OP, "value": V}

OP is one of eq, ne, lt, lte, gt, gte, in (V a list), contains (substring, case-insensitive,
for text; element for lists; sub-object for JSON objects), is_null (V true/false).
NAME is a field of the resource (the whitelist is the resource's fields) or
`custom.<key>` for a custom field (compared as JSON: numbers numerically, strings as text).
Example: {"and": [{"field": "type", "op": "eq", "value": "customer"},
                  {"or": [{"field": "health_score", "op": "lt", "value": 40},
                          {"field": "custom.tier", "op": "in", "value": ["gold", "silver"]}]}]}
Values are always bound parameters; field names only ever come from the whitelist.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from psycopg import sql

from crm.entities import Entity, Field, coerce
from crm.errors import CrmError

MAX_DEPTH = 8
MAX_NODES = 100
MAX_IN = 1000
_CUSTOM_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_ORDERED_KINDS = ("int", "decimal", "datetime", "date", "time", "text", "enum")
OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "is_null")
_CMP = {"eq": "=", "ne": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def _bad(message: str) -> CrmError:
    return CrmError(f"filter: {message}", field="filter", status=400, code="bad_filter")


@dataclass(slots=True)
class _Counter:
    nodes: int = 0


def parse_filter_param(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(f"not valid JSON: {exc.msg}") from None


def compile_filter(entity: Entity, node: Any, alias: str = "t") -> tuple[sql.Composable, list[Any]]:
    """SQL condition and its parameters; CrmError (400, field 'filter') on any bad part."""
    if node is None:
        return sql.SQL("TRUE"), []
    params: list[Any] = []
    cond = _compile(entity, node, alias, params, 0, _Counter())
    return cond, params


def _compile(
    entity: Entity, node: Any, alias: str, params: list[Any], depth: int, counter: _Counter
) -> sql.Composable:
    counter.nodes += 1
    if depth > MAX_DEPTH:
        raise _bad(f"nested deeper than {MAX_DEPTH} levels")
    if counter.nodes > MAX_NODES:
        raise _bad(f"more than {MAX_NODES} conditions")
    if not isinstance(node, dict):
        raise _bad("each condition must be a JSON object")
    if "and" in node or "or" in node:
        key = "and" if "and" in node else "or"
        items = node[key]
        if len(node) != 1 or not isinstance(items, list) or not items:
            raise _bad(f"'{key}' takes a non-empty list and nothing else")
        parts = [_compile(entity, item, alias, params, depth + 1, counter) for item in items]
        return sql.SQL("({})").format(sql.SQL(f" {key.upper()} ").join(parts))
    if "not" in node:
        if len(node) != 1:
            raise _bad("'not' takes one condition and nothing else")
        inner = _compile(entity, node["not"], alias, params, depth + 1, counter)
        return sql.SQL("(NOT COALESCE({}, FALSE))").format(inner)
    if set(node) - {"field", "op", "value"} or "field" not in node or "op" not in node:
        raise _bad('a condition is {"field": ..., "op": ..., "value": ...} or and/or/not')
    name, op = node["field"], node["op"]
    if not isinstance(name, str):
        raise _bad("field must be a string")
    if op not in OPS:
        raise _bad(f"unknown op {op!r}; use one of {', '.join(OPS)}")
    if op != "is_null" and "value" not in node:
        raise _bad(f"op {op} needs a value")
    value = node.get("value")
    if name.startswith("custom."):
        return _custom(entity, name[len("custom.") :], op, value, alias, params)
    f = entity.field(name)
    if f is None or not f.filterable:
        raise _bad(f"cannot filter on {name!r}")
    col = sql.Identifier(alias, f.name)
    if op == "is_null":
        if not isinstance(value, bool):
            raise _bad("is_null takes true or false")
        return sql.SQL("({} IS NULL)" if value else "({} IS NOT NULL)").format(col)
    if op == "contains":
        return _contains(f, col, value, params)
    if f.kind in ("text_list", "int_list", "object"):
        raise _bad(f"{name} supports only contains and is_null")
    if op == "in":
        if not isinstance(value, list) or not value or len(value) > MAX_IN:
            raise _bad(f"in takes a list of 1 to {MAX_IN} values")
        params.append([_value(f, v) for v in value])
        return sql.SQL("({} = ANY(%s))").format(col)
    if op in ("lt", "lte", "gt", "gte") and f.kind not in _ORDERED_KINDS:
        raise _bad(f"{name} cannot be compared with {op}")
    params.append(_value(f, value))
    return sql.SQL("({} {} %s)").format(col, sql.SQL(_CMP[op]))


def _value(f: Field, value: Any) -> Any:
    if value is None:
        raise _bad(f"{f.name}: use is_null to compare with null")
    loose = replace(f, required=False, max_len=None, minimum=None, maximum=None, nullable=False)
    if f.kind in ("int",):
        loose = replace(loose, minimum=-(2**63 - 1))
    try:
        return coerce(loose, value)
    except CrmError as exc:
        raise _bad(exc.message) from None


def _like(text: Any) -> str:
    if not isinstance(text, str) or "\x00" in text:
        raise _bad("contains on text takes a string")
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _contains(f: Field, col: sql.Composable, value: Any, params: list[Any]) -> sql.Composable:
    if f.kind in ("text", "enum"):
        params.append(_like(value))
        return sql.SQL("({} ILIKE %s)").format(col)
    if f.kind in ("text_list", "int_list"):
        elem = replace(f, kind="text" if f.kind == "text_list" else "int", max_len=None)
        params.append([_value(elem, value)])
        return sql.SQL("({} @> %s)").format(col)
    if f.kind == "object":
        if not isinstance(value, dict):
            raise _bad(f"contains on {f.name} takes a JSON object")
        params.append(json.dumps(value))
        return sql.SQL("({} @> %s::jsonb)").format(col)
    raise _bad(f"{f.name} does not support contains")


def _custom(
    entity: Entity, key: str, op: str, value: Any, alias: str, params: list[Any]
) -> sql.Composable:
    if entity.field("custom") is None:
        raise _bad(f"{entity.name} has no custom fields")
    if not _CUSTOM_KEY.match(key):
        raise _bad("custom field names are 1-64 letters, digits, '_' or '-'")
    col = sql.Identifier(alias, "custom")
    if op == "is_null":
        if not isinstance(value, bool):
            raise _bad("is_null takes true or false")
        params.append(key)
        expr = "(coalesce(jsonb_typeof({} -> %s), 'null') = 'null')"
        return sql.SQL(expr if value else f"(NOT {expr})").format(col)
    if op == "contains":
        params.extend([key, _like(value)])
        return sql.SQL("(({} ->> %s) ILIKE %s)").format(col)
    if op == "in":
        if not isinstance(value, list) or not value or len(value) > MAX_IN:
            raise _bad(f"in takes a list of 1 to {MAX_IN} values")
        params.extend([key, [json.dumps(_scalar(v)) for v in value]])
        return sql.SQL("(({} -> %s) = ANY(%s::jsonb[]))").format(col)
    scalar = _scalar(value)
    if op in ("eq", "ne"):
        params.append(json.dumps({key: scalar}))
        return sql.SQL("({} @> %s::jsonb)" if op == "eq" else "(NOT ({} @> %s::jsonb))").format(col)
    # Ordered comparisons only between values of the same JSON type.
    params.extend([key, json.dumps(scalar), key, json.dumps(scalar)])
    return sql.SQL(
        "(({} -> %s) {} %s::jsonb AND jsonb_typeof({} -> %s) = jsonb_typeof(%s::jsonb))"
    ).format(col, sql.SQL(_CMP[op]), col)


def _scalar(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)) and not (
        isinstance(value, str) and "\x00" in value
    ):
        return value
    raise _bad("custom field values must be strings, numbers or booleans")


# --------------------------------------------------------------------------- sorting, cursors


@dataclass(frozen=True, slots=True)
class Sort:
    field: Field
    descending: bool


def parse_sort(entity: Entity, text: str | None) -> Sort:
    spec = text or entity.default_sort
    desc = spec.startswith("-")
    name = spec.lstrip("-+")
    f = entity.field(name)
    if f is None or not f.sort:
        allowed = ", ".join(x.name for x in entity.fields if x.sort)
        raise CrmError(
            f"cannot sort on {name!r}; sortable: {allowed} (prefix '-' for descending)",
            field="sort",
            status=400,
            code="bad_sort",
        )
    return Sort(f, desc)


def encode_cursor(sort_value: Any, row_id: int) -> str:
    if isinstance(sort_value, (dt.datetime, dt.date, dt.time)):
        sort_value = sort_value.isoformat()
    elif isinstance(sort_value, Decimal):
        sort_value = str(sort_value)
    raw = json.dumps([sort_value, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: Sort, cursor: str) -> tuple[Any, int]:
    def bad() -> CrmError:
        return CrmError(
            "cursor is not one this list returned", field="cursor", status=400, code="bad_cursor"
        )

    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, row_id = json.loads(raw)
    except (ValueError, binascii.Error, TypeError):
        raise bad() from None
    if isinstance(row_id, bool) or not isinstance(row_id, int):
        raise bad()
    if value is None:
        return None, row_id
    try:
        return coerce(
            replace(
                sort.field, nullable=True, minimum=None, maximum=None, max_len=None, required=False
            ),
            value,
        ), row_id
    except CrmError:
        raise bad() from None


def keyset(
    sort: Sort, alias: str, cursor: str | None
) -> tuple[sql.Composable, sql.Composable, list[Any]]:
    """(WHERE condition after the cursor, ORDER BY clause, params). NULLs always sort last."""
    col = sql.Identifier(alias, sort.field.name)
    rid = sql.Identifier(alias, "id")
    direction = sql.SQL("DESC" if sort.descending else "ASC")
    if sort.field.name == "id":
        order = sql.SQL("{} {}").format(rid, direction)
    else:
        order = sql.SQL("{} {} NULLS LAST, {} {}").format(col, direction, rid, direction)
    if cursor is None:
        return sql.SQL("TRUE"), order, []
    value, last_id = decode_cursor(sort, cursor)
    cmp = sql.SQL("<" if sort.descending else ">")
    if sort.field.name == "id":
        return sql.SQL("({} {} %s)").format(rid, cmp), order, [last_id]
    if value is None:
        return sql.SQL("({} IS NULL AND {} {} %s)").format(col, rid, cmp), order, [last_id]
    cond = sql.SQL("({} IS NULL OR ({}, {}) {} (%s, %s))").format(col, col, rid, cmp)
    return cond, order, [value, last_id]
