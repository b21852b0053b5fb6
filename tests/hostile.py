"""Hostile requests for every operation of the OpenAPI document, from a fixed seed.

`cases(doc, ...)` yields, for each operation, requests a reviewer would try: path and
query parameters replaced by wrong types, huge and negative numbers, 2**63, NaN,
NUL and invalid UTF-8, traversal, very long strings and duplicates; bodies that are not
JSON, empty, deep, huge, of the wrong Content-Type, or whose fields are given wrong
values and unknown siblings; and the request without, with an invalid, or with another
role's token. `check(...)` says what is wrong with an answer: a 5xx, an error that is not
the JSON error shape, a success without a valid token (none, made up or expired), or a
2xx to a territory-1 user carrying a marker only territory-2 records hold (the marker
text, or an id or value that only territory 2's live data has: a phone's id, a GPS
coordinate)."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

BIG = 2**63
# raw (already percent-encoded where needed) values for path segments and query values
HOSTILE_SCALARS: list[str] = [
    "0",
    "-1",
    str(BIG),
    str(BIG - 1),
    str(-(BIG + 1)),
    "1e309",
    "NaN",
    "Infinity",
    "-Infinity",
    "1.5",
    "abc",
    "",
    "%00",
    "a%00b",
    "%FF%FE",
    "%C0%AF",
    "..%2F..%2Fetc%2Fpasswd",
    "....//....//etc/passwd",
    "x" * 5000,
    "%F0%9F%92%A9" * 50,
    "true",
    "null",
    "[]",
    "{}",
    "9999-99-99",
    "2024-02-30",
    "0000-01-01T00:00:00Z",
    "2024-01-01T25:61:00+99:00",
    "Mars/Olympus",
    "-0",
    "0x10",
    "１２３",  # fullwidth digits
]
FILTERS: list[str] = [
    "{",
    "[]",
    '{"field": "name"}',
    '{"field": "x", "op": "eq", "value": 1}',
    '{"field": "name", "op": "regex", "value": "("}',
    '{"field": "name; DROP TABLE accounts", "op": "eq", "value": "a"}',
    '{"field": "custom.a", "op": "gt", "value": {"b": 1}}',
    '{"field": "created_at", "op": "gt", "value": "9999-99-99"}',
    '{"field": "amount", "op": "gt", "value": 1e400}',
    '{"and": [' * 200 + "]}" * 200,
    '{"field": "amount", "op": "in", "value": [' + ",".join(["1"] * 5000) + "]}",
]
SORTS = ["-", "--name", "name,", "custom.", "custom.\u0000", "1", "name desc", "id;select 1"]
BODY_VALUES: list[Any] = [
    None,
    True,
    -1,
    0,
    BIG,
    -BIG - 1,
    10**30,
    1.5e308,
    "NaN",
    "Infinity",
    "",
    "x" * 70_000,
    "\u202e\u0000",
    [],
    {},
    [[[[[[]]]]]],
    {"a": {"b": {"c": {}}}},
    "9999-12-31T23:59:59Z",
    "0001-01-01",
    "1970-01-01T00:00:00+14:01",
    "Europe/Nowhere",
    "../../../etc/passwd",
    [1] * 2000,
]
# headers a write may carry: preconditions, idempotency keys, the read-your-writes cookie
HOSTILE_HEADERS: list[dict[str, str]] = [
    {"If-Match": '"garbage"'},
    {"If-Match": '*, W/"1", "' + "9" * 400 + '"'},
    {"If-None-Match": "*"},
    {"Idempotency-Key": "k" * 300},
    {"Idempotency-Key": ""},
    {"Idempotency-Key": "%00"},
    {"Cookie": "fm_wrote=nan"},
    {"Cookie": "fm_wrote=1e999"},
    {"X-Read-Consistency": "primary" * 100},
    {"Accept": "text/html"},
    {"Content-Encoding": "gzip"},
]
RAW_BODIES: list[tuple[bytes, str]] = [
    (b"", "application/json"),
    (b"null", "application/json"),
    (b"[]", "application/json"),
    (b'"x"', "application/json"),
    (b"{", "application/json"),
    (b'{"a":1,"a":2}', "application/json"),
    (b"\xff\xfe\xfd", "application/json"),
    (b'{"name": "\xc3\x28"}', "application/json"),
    (b'{"x": NaN}', "application/json"),
    (b'{"x": 1e999999}', "application/json"),
    (b"[" * 5000 + b"]" * 5000, "application/json"),
    (b'{"name": "' + b"a" * (2 * 1024 * 1024) + b'"}', "application/json"),
    (b"name=x", "application/x-www-form-urlencoded"),
    (b"<x/>", "text/xml"),
    (b'{"name": "x"}', "text/plain"),
    (b"--b\r\n\r\n--b--", "multipart/form-data; boundary=b"),
]


@dataclass
class Case:
    method: str
    path: str  # already encoded
    query: list[tuple[str, str]] = field(default_factory=list)  # values already encoded
    body: bytes | None = None
    content_type: str | None = None
    # a user of tests/world.py, "expired" (rep1's expired token), "anon" or "invalid"
    who: str = "admin"
    note: str = ""
    leak_probe: bool = False  # a territory-1 user naming territory-2 records
    headers: dict[str, str] = field(default_factory=dict)

    def url(self, base: str) -> str:
        q = "&".join(f"{quote(k, safe='%')}={v}" for k, v in self.query)
        return base + self.path + (("?" + q) if q else "")

    def label(self) -> str:
        q = "&".join(f"{k}={v[:40]}" for k, v in self.query)
        body = "" if self.body is None else f" body={self.body[:80]!r}"
        ctype = f" ({self.content_type})" if self.content_type else ""
        extra = f" {self.headers}" if self.headers else ""
        return f"[{self.who}] {self.method} {self.path[:120]}?{q}{body}{ctype}{extra} {self.note}"


def resolve(doc: dict[str, Any], schema: Any, depth: int = 0) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    if "$ref" in schema and depth < 10:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return resolve(doc, doc["components"]["schemas"].get(name, {}), depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            for sub in schema[key]:
                got = resolve(doc, sub, depth + 1)
                if got.get("type") != "null":
                    return got
    return schema


def sample(doc: dict[str, Any], schema: Any, depth: int = 0) -> Any:
    """A plausible value of the schema (the base a single field's mutation starts from)."""
    s = resolve(doc, schema)
    if "enum" in s:
        return s["enum"][0]
    if "default" in s and s["default"] is not None:
        return s["default"]
    t = s.get("type")
    if t == "object" or "properties" in s:
        if depth > 3:
            return {}
        return {
            k: sample(doc, v, depth + 1)
            for k, v in s.get("properties", {}).items()
            if k in s.get("required", [])
        }
    if t == "array":
        return [sample(doc, s.get("items", {}), depth + 1)] if s.get("minItems") else []
    if t == "integer":
        return max(int(s.get("minimum", 1)), 1)
    if t == "number":
        return 1.0
    if t == "boolean":
        return False
    if t == "string":
        fmt = s.get("format")
        if fmt == "date-time":
            return "2026-12-01T10:00:00Z"
        if fmt == "date":
            return "2026-12-01"
        return "fuzz"[: max(s.get("maxLength", 4), 1)].ljust(s.get("minLength", 0), "z")
    return None


def _path_with(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: values.get(m.group(1), "1"), path)


Ids = Mapping[str, int | str | Sequence[int | str]]


def _listed(value: int | str | Sequence[int | str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, int | str):
        return [str(value)]
    return [str(v) for v in value]


def cases(
    doc: dict[str, Any],
    ids: Ids,
    rng: random.Random,
    per_operation: int,
    excluded: set[tuple[str, str]],
    roles: tuple[str, ...] = ("admin", "manager", "rep1", "viewer"),
    probe_query: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[tuple[str, list[Case]]]:
    """For each operation (label), its cases: the leak probes, the token cases and the
    malformed bodies always, then `per_operation` picked by the seeded `rng` from all its hostile variants.
    `ids` maps a collection's path prefix (e.g. "/api/v1/accounts") to the id of a
    territory-2 record in it, or to several (each is probed). `probe_query` maps a query
    parameter's name (`device_id`, `from`) to the values the leak probes give it: the ids
    of territory-2 records, and a period that holds territory 2's live data; an operation
    with such parameters is probed with each of their values."""
    probe_query = probe_query or {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            method = method.upper()
            if (method, path) in excluded or not isinstance(op, dict):
                continue
            params = op.get("parameters", [])
            path_params = [p for p in params if p["in"] == "path"]
            query_params = [p for p in params if p["in"] == "query"]
            prefix = path.split("/{", 1)[0]
            others = _listed(ids.get(prefix))
            base_path = {p["name"]: others[0] if others else "1" for p in path_params}
            base_query = [
                (p["name"], quote(str(sample(doc, p.get("schema", {}))), safe=""))
                for p in query_params
                if p.get("required")
            ]
            body_schema = None
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                body_schema = resolve(doc, content["application/json"].get("schema", {}))
            base_body = None if body_schema is None else sample(doc, body_schema)

            def mk(
                who: str = "",
                pvals: dict[str, str] | None = None,
                query: list[tuple[str, str]] | None = None,
                body: Any = ...,
                raw: tuple[bytes, str] | None = None,
                note: str = "",
                probe: bool = False,
                headers: dict[str, str] | None = None,
                _path: str = path,
                _method: str = method,
                _bp: dict[str, str] = base_path,
                _bq: list[tuple[str, str]] = base_query,
                _bb: Any = base_body,
            ) -> Case:
                data: bytes | None = None
                ctype: str | None = None
                if raw is not None:
                    data, ctype = raw
                else:
                    b = _bb if body is ... else body
                    if b is not None or _bb is not None:
                        data = json.dumps(b).encode()
                        ctype = "application/json"
                return Case(
                    _method,
                    _path_with(_path, {**_bp, **(pvals or {})}),
                    list(_bq if query is None else query),
                    data,
                    ctype,
                    who or rng.choice(roles),
                    note,
                    probe,
                    dict(headers or {}),
                )

            fixed: list[Case] = []
            if op.get("x-access", {}).get("roles") and op.get("security") != []:
                fixed.append(mk(who="anon", note="no token"))
                fixed.append(mk(who="invalid", note="invalid token"))
                fixed.append(mk(who="expired", note="expired token"))
            territory_1 = ("rep1", "manager")
            for other in others:
                for who in territory_1:
                    pvals = {p["name"]: other for p in path_params}
                    fixed.append(mk(who=who, pvals=pvals, note="territory-2 id", probe=True))
            if method == "GET" or path_params or query_params or body_schema is not None:
                # no mutation: the plain leak check for listings as territory-1 users (every
                # read, also those without parameters: a map layer, a fleet summary)
                for who in territory_1 if method == "GET" else ("rep1",):
                    fixed.append(mk(who=who, note="plain", probe=True))
            named = [p["name"] for p in query_params if p["name"] in probe_query]
            for i in range(max((len(probe_query[n]) for n in named), default=0)):
                # territory-2 ids in the query (?device_id=, ?subject_id=) over a period
                # that holds territory 2's live data
                given = {n: probe_query[n][min(i, len(probe_query[n]) - 1)] for n in named}
                query = [(k, v) for k, v in base_query if k not in given]
                query += [(k, quote(v, safe="")) for k, v in given.items()]
                for who in territory_1:
                    fixed.append(
                        mk(who=who, query=query, note=f"territory-2 {sorted(given)}", probe=True)
                    )
            pool: list[Case] = []
            if method != "GET":
                for h in HOSTILE_HEADERS:
                    pool.append(mk(headers=h, note="header"))
            for p in path_params:
                for v in HOSTILE_SCALARS:
                    pool.append(mk(pvals={p["name"]: v}, note=f"path {p['name']}"))
            for p in query_params:
                name = p["name"]
                values = list(HOSTILE_SCALARS)
                if name == "filter":
                    values += [quote(f, safe="") for f in FILTERS]
                if name in ("sort", "order", "order_by"):
                    values += [quote(s, safe="") for s in SORTS]
                for v in values:
                    rest = [(k, x) for k, x in base_query if k != name]
                    pool.append(mk(query=[*rest, (name, v)], note=f"query {name}"))
                pool.append(mk(query=[*base_query, (name, "1"), (name, "2")], note="duplicate"))
            pool.append(mk(query=[*base_query, ("unknown_param", "1")], note="unknown param"))
            if body_schema is not None:
                # malformed bodies are cheap (refused before any handler) and reach the
                # shared decoding: every one for every operation
                for raw in RAW_BODIES:
                    big = len(raw[0]) > 1_000_000  # the oversized one costs an upload
                    (pool if big else fixed).append(mk(raw=raw, note="raw body"))
                props = dict(body_schema.get("properties", {}))
                for name in props:
                    for v in BODY_VALUES:
                        b = dict(base_body) if isinstance(base_body, dict) else {}
                        b[name] = v
                        pool.append(mk(body=b, note=f"body {name}"))
                b = dict(base_body) if isinstance(base_body, dict) else {}
                b["unknown_field_x"] = 1
                pool.append(mk(body=b, note="unknown field"))
            elif method in ("POST", "PUT", "PATCH"):
                for raw in RAW_BODIES[:8]:
                    pool.append(mk(raw=raw, note="raw body (none declared)"))
            rng.shuffle(pool)
            yield f"{method} {path}", fixed + pool[:per_operation]


def _fields_with(doc: Any, id_fields: Mapping[str, set[Any]]) -> str | None:
    """The first `"key": value` of the JSON document where `id_fields[key]` holds value."""
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if k in id_fields and not isinstance(v, dict | list | bool) and v in id_fields[k]:
                    return f'"{k}": {v!r}'
                stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)
    return None


def check(
    case: Case,
    status: int,
    ctype: str,
    body: bytes,
    markers: Sequence[str],
    id_fields: Mapping[str, set[Any]] | None = None,
) -> str | None:
    """What is wrong with this answer, or None. `markers`: strings only territory-2 records
    hold (the marker text; ids and values of live data that carry no text). `id_fields`:
    for records that are only numbers (a visit: its account, fence and rep), the ids a
    field of that name holds only in territory-2 records (`{"account_id": {17}}`)."""
    if status >= 500:
        return f"{status}: {body[:300]!r}"
    if status >= 400:
        if not ctype.startswith("application/") or "json" not in ctype:
            return f"{status} error not JSON ({ctype}): {body[:200]!r}"
        try:
            err = json.loads(body)["error"]
            assert {"code", "message"} <= set(err)
        except Exception:
            return f"{status} error not in the error shape: {body[:200]!r}"
    elif case.who in ("anon", "invalid", "expired"):
        return f"{status} to a request without a valid token"
    elif case.who in ("rep1", "manager"):
        for marker in markers:
            at = body.find(marker.encode())
            if at >= 0:
                shown = body[max(0, at - 150) : at + 150]
                return f"{status} carries territory-2 data ({marker}): ...{shown!r}..."
        if id_fields and "json" in ctype:
            try:
                doc = json.loads(body)
            except ValueError:
                return None
            found = _fields_with(doc, id_fields)
            if found is not None:
                return f"{status} names a territory-2 record ({found}): {body[:300]!r}"
    return None
