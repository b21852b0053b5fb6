"""The CRM's request and response models, built once from the entity field specs.

`models_for(entity)` turns the `Field`s of crm.entities into msgspec structs with
`msgspec.defstruct`: a create model (required fields required, unknown and read-only fields
refused), a patch model (every writable field optional), the record as returned and a page
of records. The HTTP endpoints decode bodies into them and the OpenAPI document is
generated from them, so validation and schema have one source. `to_values` turns a decoded
model into the column values the store writes, with the checks a type cannot express
(control characters, surrogates, times PostgreSQL and Python cannot both hold);
`parse_body` does both for bodies that are not JSON requests (CSV rows, reverted imports).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from crm.entities import INT_MAX, Entity, Field, described, implausible, window_rule
from crm.filters import OPS
from kernel.errors import ApiError, Unprocessable
from kernel.http import field_of
from kernel.jsonlimits import text_problem

Row = dict[str, Any]

Lon = Annotated[float, Meta(ge=-180, le=180)]
Lat = Annotated[float, Meta(ge=-90, le=90)]
Time = Annotated[dt.datetime, Meta(tz=True)]
RecordId = Annotated[int, Meta(ge=1, le=INT_MAX, description="record id")]
TZ_PATTERN = r"^(UTC|[A-Za-z_]+(/[A-Za-z0-9_+\-]+)*)$"
# Aware times must survive the round trip through UTC in both PostgreSQL and Python.
_MIN_TIME = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
_MAX_TIME = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)

FILTER_DOC = (
    'JSON filter: {"and": [F, ...]}, {"or": [F, ...]}, {"not": F} or '
    '{"field": NAME, "op": OP, "value": V} with OP one of '
    + ", ".join(OPS)
    + "; NAME a field of the resource or custom.<key>."
)


class Point(msgspec.Struct, frozen=True):
    """A GeoJSON Point, (lon, lat) in EPSG:4326."""

    type: Literal["Point"]
    coordinates: tuple[Lon, Lat]


# A linear ring: at least four positions, the last one the first (checked in column_value).
Ring = Annotated[list[tuple[Lon, Lat]], Meta(min_length=4, max_length=100_000)]
Polygon = Annotated[list[Ring], Meta(min_length=1, max_length=1000)]


class MultiPolygon(msgspec.Struct, frozen=True):
    """A GeoJSON MultiPolygon, (lon, lat) in EPSG:4326."""

    type: Literal["MultiPolygon"]
    coordinates: Annotated[list[Polygon], Meta(min_length=1, max_length=1000)]


class TimeWindow(msgspec.Struct, frozen=True):
    start: Time
    end: Time


class RecordPath(msgspec.Struct, frozen=True):
    id: RecordId


class ListQuery(msgspec.Struct, frozen=True):
    filter: Annotated[str, Meta(description=FILTER_DOC)] | None = None
    sort: (
        Annotated[str, Meta(max_length=100, description="[-]field; '-' sorts descending")] | None
    ) = None
    cursor: Annotated[str, Meta(max_length=1000, description="next_cursor of the page before")] | (
        None
    ) = None
    limit: Annotated[int, Meta(ge=1, le=500, description="page size")] = 50
    q: Annotated[str, Meta(max_length=200, description="search text")] | None = None
    total: Annotated[bool, Meta(description="also count every match")] = False


# --------------------------------------------------------------------------- types per kind


def _int_bounds(f: Field) -> tuple[int, int]:
    lo = (
        int(f.minimum)
        if f.minimum is not None
        else (1 if f.ref or f.name.endswith("_id") or f.name == "id" else -INT_MAX)
    )
    hi = int(f.maximum) if f.maximum is not None else INT_MAX
    return lo, hi


def _text_meta(f: Field) -> Meta:
    opts: dict[str, Any] = {"max_length": f.max_len or 100_000}
    if f.kind == "password":
        opts["min_length"] = 8
    if f.name == "currency":
        opts["pattern"] = "^[A-Z]{3}$"
    elif f.name in ("tz", "timezone"):
        opts["pattern"] = TZ_PATTERN
    elif f.name == "email":
        opts["pattern"] = "^[^@]*@"
        opts["min_length"] = 3
    elif f.required:
        opts["pattern"] = r"\S"  # not blank
    return Meta(**opts)


def write_type(f: Field) -> Any:
    """The type a request gives for one writable field (None added when nullable)."""
    k = f.kind
    t: Any
    if k in ("text", "password"):
        t = Annotated[str, _text_meta(f)]
    elif k == "enum":
        t = Literal[f.enum]
    elif k == "bool":
        t = bool
    elif k == "int":
        lo, hi = _int_bounds(f)
        t = Annotated[int, Meta(ge=lo, le=hi)]
    elif k == "decimal":
        bounds: dict[str, Any] = {"gt": -1e16, "lt": 1e16}  # numeric(18, 2) holds below 1e16
        if f.minimum is not None:
            bounds = {"ge": f.minimum, "lt": 1e16}
        if f.maximum is not None:
            bounds = {k: v for k, v in bounds.items() if k != "lt"} | {"le": f.maximum}
        t = Annotated[float, Meta(**bounds)]
    elif k == "datetime":
        t = Time
    elif k == "date":
        t = dt.date
    elif k == "time":
        t = dt.time
    elif k == "text_list":
        t = Annotated[list[Annotated[str, Meta(max_length=200)]], Meta(max_length=200)]
    elif k == "int_list":
        t = Annotated[list[Annotated[int, Meta(ge=1, le=INT_MAX)]], Meta(max_length=1000)]
    elif k == "object":
        t = dict[str, Any]
    elif k == "array":
        t = Annotated[list[TimeWindow], Meta(max_length=100)]
    elif k == "point":
        t = Point
    elif k == "multipolygon":
        t = MultiPolygon
    else:  # pragma: no cover - a new kind must be added here
        raise AssertionError(f"unknown field kind {k}")
    description = f.description
    if k in ("date", "datetime", "array"):
        description = f"{description} ({window_rule(f)})".strip()
    if description:
        t = Annotated[t, Meta(description=description)]
    return t | None if f.nullable else t


def read_type(f: Field) -> Any:
    """The type of one field in a record as returned."""
    simple: dict[str, Any] = {
        "text": str,
        "int": int,
        "decimal": float,
        "bool": bool,
        "datetime": dt.datetime,
        "date": dt.date,
        "time": str,
        "text_list": list[str],
        "int_list": list[int],
        "object": dict[str, Any],
        "array": list[Any],
        "point": Point,
        "multipolygon": dict[str, Any],
    }
    t: Any = Literal[f.enum] if f.kind == "enum" else simple[f.kind]
    if f.description:
        t = Annotated[t, Meta(description=f.description)]
    return t | None if f.nullable else t


# --------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class EntityModels:
    create: type[msgspec.Struct]
    patch: type[msgspec.Struct]
    record: type[msgspec.Struct]
    page: type[msgspec.Struct]


def models_for(entity: Entity) -> EntityModels:
    """The entity's models, built on first use and kept (one class per model)."""
    return _models(entity.name)


@functools.cache
def _models(entity_name: str) -> EntityModels:
    entity = described()[entity_name]
    name = entity.schema_name
    create = msgspec.defstruct(
        f"{name}Create",
        [
            (f.name, write_type(f)) if f.required else (f.name, write_type(f) | UnsetType, UNSET)
            for f in entity.writable
        ],
        kw_only=True,
        forbid_unknown_fields=True,
    )
    patch = msgspec.defstruct(
        f"{name}Patch",
        [(f.name, write_type(f) | UnsetType, UNSET) for f in entity.writable],
        kw_only=True,
        forbid_unknown_fields=True,
    )
    record = msgspec.defstruct(name, [(f.name, read_type(f)) for f in entity.readable])
    page = msgspec.defstruct(
        f"{name}Page",
        [
            ("items", list[record]),  # type: ignore[valid-type]  # built at run time
            ("next_cursor", str | None),
            ("total", Annotated[int, Meta(ge=0)] | UnsetType, UNSET),
        ],
    )
    return EntityModels(create, patch, record, page)


# --------------------------------------------------------------------------- values


def _bad(name: str, message: str) -> Unprocessable:
    return Unprocessable(f"{name}: {message}", field=name)


def _check_text(name: str, value: str) -> None:
    problem = text_problem(value, multiline=True)
    if problem is not None:
        raise _bad(name, problem)


def _check_json(name: str, value: Any) -> None:
    if isinstance(value, str):
        _check_text(name, value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(name, k)
            _check_json(name, v)
    elif isinstance(value, list):
        for v in value:
            _check_json(name, v)


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def _check_zone(name: str, value: str) -> None:
    # the pattern lets "Mars/Olympus" through; a rep's day, shift and ETA are computed in it
    if value not in _zones():
        raise _bad(name, "is not a known time zone (an IANA name like Europe/Paris)")


def _check_time(name: str, value: dt.datetime) -> None:
    try:
        ok = _MIN_TIME <= value <= _MAX_TIME
    except OverflowError:
        ok = False
    if not ok:
        raise _bad(name, "out of range (years 1 to 9999 in UTC)")


def _check_plausible(f: Field, value: Any) -> None:
    problem = implausible(f, value)
    if problem is not None:
        raise Unprocessable(f"{f.name}: {problem}", field=f.name, code="implausible")


def column_value(f: Field, value: Any) -> Any:
    """One decoded field as the value the store writes."""
    if value is None:
        return None
    k = f.kind
    if k in ("text", "password"):
        _check_text(f.name, value)
        if f.name in ("tz", "timezone"):
            _check_zone(f.name, value)
        _check_plausible(f, value)
        return value
    if k == "decimal":
        return Decimal(str(value))
    if k == "datetime":
        # the field's window first: a time in 9999 breaks the rule a person can act on,
        # not only the bounds of what the database can store
        _check_plausible(f, value)
        _check_time(f.name, value)
        return value
    if k == "date":
        _check_plausible(f, value)
        return value
    if k == "text_list":
        for v in value:
            _check_text(f.name, v)
        return value
    if k == "object":
        _check_json(f.name, value)
        return json.dumps(value)
    if k == "array":
        for w in value:
            for t in (w.start, w.end):
                _check_plausible(f, t)
                _check_time(f.name, t)
            if w.start > w.end:
                raise _bad(f.name, "a window ends before it starts")
        return msgspec.json.encode(value).decode()
    if k == "multipolygon":
        for polygon in value.coordinates:
            for ring in polygon:
                if ring[0] != ring[-1]:
                    raise _bad(f.name, "each ring must end where it starts")
        return msgspec.json.encode(value).decode()
    if k == "point":
        return msgspec.json.encode(value).decode()
    return value


def to_values(entity: Entity, obj: msgspec.Struct) -> Row:
    """The fields a decoded create or patch model sets, as {column: value}."""
    out: Row = {}
    for f in entity.writable:
        value = getattr(obj, f.name, UNSET)
        if value is not UNSET:
            out[f.name] = column_value(f, value)
    return out


_AT = re.compile(r" - at `\$[^`]*`")


def parse_body(entity: Entity, body: Any, *, partial: bool, strict: bool = True) -> Row:
    """A body given as Python values (a CSV row, stored values) as {column: value}; 422
    naming the field when it is not acceptable. `strict=False` accepts numbers, booleans
    and times written as text, as CSV cells are."""
    if not isinstance(body, dict):
        raise ApiError("the body must be a JSON object", code="bad_request")
    models = models_for(entity)
    try:
        obj = msgspec.convert(body, models.patch if partial else models.create, strict=strict)
    except msgspec.ValidationError as exc:
        fld = field_of(exc)
        message = _AT.sub("", str(exc))
        raise Unprocessable(f"{fld}: {message}" if fld else message, field=fld) from None
    return to_values(entity, obj)
