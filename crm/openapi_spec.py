"""The CRM's OpenAPI 3 paths and schemas, generated from the entity definitions (pure)."""

from __future__ import annotations

from typing import Any

from crm.entities import ENTITIES, Entity, Field
from crm.filters import OPS
from kernel.openapi import error_response

Json = dict[str, Any]
API = "/api/v1"
INT64_MAX = 2**63 - 1

FILTER_DOC = (
    'JSON filter: {"and": [F, ...]}, {"or": [F, ...]}, {"not": F} or '
    '{"field": NAME, "op": OP, "value": V} with OP one of '
    + ", ".join(OPS)
    + "; NAME a field of the resource or custom.<key>."
)


def _point() -> Json:
    return {
        "type": "object",
        "required": ["type", "coordinates"],
        "properties": {
            "type": {"type": "string", "enum": ["Point"]},
            "coordinates": {
                "type": "array",
                "minItems": 2,
                "maxItems": 2,
                "items": {"type": "number", "minimum": -180, "maximum": 180},
            },
        },
    }


def field_schema(f: Field, *, for_write: bool) -> Json:
    k = f.kind
    s: Json
    if k in ("text", "password"):
        s = {"type": "string"}
        if f.max_len:
            s["maxLength"] = f.max_len
        if f.name == "currency":
            s["pattern"] = "^[A-Z]{3}$"
        if f.name in ("tz", "timezone"):
            s["pattern"] = "^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$"
        if f.name == "email" and for_write:
            s["format"] = "email"
        if f.required and for_write:
            s["minLength"] = 1
    elif k == "enum":
        s = {"type": "string", "enum": list(f.enum)}
    elif k == "int":
        lo = (
            f.minimum
            if f.minimum is not None
            else (1 if f.name.endswith("_id") or f.name == "id" else None)
        )
        s = {
            "type": "integer",
            "format": "int64",
            "maximum": f.maximum if f.maximum is not None else INT64_MAX,
        }
        if lo is not None:
            s["minimum"] = lo
        elif for_write:
            s["minimum"] = -INT64_MAX
    elif k == "decimal":
        s = {"type": "number"}
        if f.minimum is not None:
            s["minimum"] = f.minimum
        s["maximum"] = f.maximum if f.maximum is not None else 1e15
    elif k == "bool":
        s = {"type": "boolean"}
    elif k == "datetime":
        s = {"type": "string", "format": "date-time"}
    elif k == "date":
        s = {"type": "string", "format": "date"}
    elif k == "time":
        s = {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9](:[0-5][0-9])?$"}
    elif k == "text_list":
        s = {"type": "array", "items": {"type": "string"}}
    elif k == "int_list":
        s = {
            "type": "array",
            "items": {"type": "integer", "format": "int64", "minimum": 1, "maximum": INT64_MAX},
        }
    elif k == "object":
        s = {"type": "object"}
    elif k == "array":
        s = {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["start", "end"],
                "properties": {
                    "start": {"type": "string", "format": "date-time"},
                    "end": {"type": "string", "format": "date-time"},
                },
            },
        }
    elif k == "point":
        s = _point()
    elif k == "multipolygon":
        s = {"type": "object", "description": "GeoJSON MultiPolygon"}
    else:  # pragma: no cover - a new kind must be added here
        raise AssertionError(k)
    if f.nullable and not (for_write and f.required):
        s["nullable"] = True
    if f.description:
        s["description"] = f.description
    if k == "password":
        s["writeOnly"] = True
    return s


def entity_schemas(e: Entity) -> Json:
    name = e.schema_name
    read = {f.name: field_schema(f, for_write=False) for f in e.readable}
    write = {f.name: field_schema(f, for_write=True) for f in e.writable}
    return {
        name: {"type": "object", "required": list(read), "properties": read},
        f"{name}Create": {
            "type": "object",
            "additionalProperties": False,
            "required": [f.name for f in e.writable if f.required],
            "properties": write,
        },
        f"{name}Update": {"type": "object", "additionalProperties": False, "properties": write},
        f"{name}Page": _page_schema(f"#/components/schemas/{name}"),
    }


def _page_schema(ref: str) -> Json:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": ref}},
            "next_cursor": {"type": "string", "nullable": True},
            "total": {"type": "integer", "minimum": 0},
        },
    }


def _json(schema: Json, description: str = "OK") -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*names: str) -> Json:
    codes = {
        "BadRequest": "400",
        "Unauthorized": "401",
        "Forbidden": "403",
        "NotFound": "404",
        "Conflict": "409",
        "PreconditionFailed": "412",
        "Unprocessable": "422",
        "PreconditionRequired": "428",
    }
    return {codes[n]: error_response(n) for n in names}


_ID_PARAM: Json = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": INT64_MAX},
}
_IF_MATCH: Json = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
}
_IDEMPOTENCY: Json = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    "description": "Repeat a creating request safely: the first response is replayed",
}
_ETAG_HEADER: Json = {"ETag": {"schema": {"type": "string"}}}


def _list_params(e: Entity, extra: bool = True) -> list[Json]:
    params: list[Json] = [
        {
            "name": "cursor",
            "in": "query",
            "schema": {"type": "string"},
            "description": "next_cursor of the previous page",
        },
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
        },
    ]
    if extra:
        sortable = [f.name for f in e.fields if f.sort]
        params += [
            {
                "name": "filter",
                "in": "query",
                "schema": {"type": "string"},
                "description": FILTER_DOC,
            },
            {
                "name": "sort",
                "in": "query",
                "schema": {"type": "string", "enum": sortable + [f"-{s}" for s in sortable]},
            },
            {"name": "total", "in": "query", "schema": {"type": "boolean", "default": False}},
        ]
        if e.search:
            params.append(
                {
                    "name": "q",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "search " + ", ".join(e.search),
                }
            )
    return params


def entity_paths(e: Entity) -> Json:
    name = e.schema_name
    tag = [e.name]
    paths: Json = {
        f"{API}/{e.name}": {
            "get": {
                "tags": tag,
                "operationId": f"list_{e.name}",
                "summary": f"List {e.name} the caller may see",
                "parameters": _list_params(e),
                "responses": {
                    "200": _json(_ref(f"{name}Page")),
                    **_errors("BadRequest", "Unauthorized"),
                },
            },
            "post": {
                "tags": tag,
                "operationId": f"create_{e.singular}",
                "parameters": [_IDEMPOTENCY],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(f"{name}Create")}},
                },
                "responses": {
                    "201": {**_json(_ref(name), "Created"), "headers": _ETAG_HEADER},
                    **_errors(
                        "BadRequest", "Unauthorized", "Forbidden", "Conflict", "Unprocessable"
                    ),
                },
            },
        },
        f"{API}/{e.name}/{{id}}": {
            "parameters": [_ID_PARAM],
            "get": {
                "tags": tag,
                "operationId": f"get_{e.singular}",
                "responses": {
                    "200": {**_json(_ref(name)), "headers": _ETAG_HEADER},
                    **_errors("BadRequest", "Unauthorized", "NotFound"),
                },
            },
            "patch": {
                "tags": tag,
                "operationId": f"update_{e.singular}",
                "parameters": [_IF_MATCH],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(f"{name}Update")}},
                },
                "responses": {
                    "200": {**_json(_ref(name)), "headers": _ETAG_HEADER},
                    **_errors(
                        "BadRequest",
                        "Unauthorized",
                        "Forbidden",
                        "NotFound",
                        "Conflict",
                        "PreconditionFailed",
                        "Unprocessable",
                        "PreconditionRequired",
                    ),
                },
            },
            "delete": {
                "tags": tag,
                "operationId": f"delete_{e.singular}",
                "parameters": [_IF_MATCH],
                "responses": {
                    "204": {"description": "Deleted"},
                    **_errors(
                        "BadRequest",
                        "Unauthorized",
                        "Forbidden",
                        "NotFound",
                        "Conflict",
                        "PreconditionFailed",
                        "PreconditionRequired",
                    ),
                },
            },
        },
        f"{API}/{e.name}/{{id}}/audit": {
            "parameters": [_ID_PARAM],
            "get": {
                "tags": tag,
                "operationId": f"audit_{e.singular}",
                "summary": "Who changed which field from what to what, newest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    }
                ],
                "responses": {
                    "200": _json(_items(_ref("AuditEntry"))),
                    **_errors("BadRequest", "Unauthorized", "NotFound"),
                },
            },
        },
    }
    return paths


def _items(item: Json) -> Json:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": item}},
    }


_OBJ: Json = {"type": "object"}


def _op(op_id: str, tag: str, responses: Json, **more: Any) -> Json:
    return {"tags": [tag], "operationId": op_id, "responses": responses, **more}


def _body(schema: Json) -> Json:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def special_paths() -> Json:
    period = [
        {"name": "start", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "end", "in": "query", "schema": {"type": "string", "format": "date-time"}},
    ]
    pipeline = [
        {
            "name": "pipeline_id",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
        }
    ]
    analytics_err = _errors("BadRequest", "Unauthorized", "NotFound")
    job_errors = _errors(
        "BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict", "Unprocessable"
    )
    return {
        f"{API}/auth/token": {
            "post": _op(
                "login",
                "auth",
                {
                    "201": _json(_ref("Token")),
                    **_errors("BadRequest", "Unauthorized", "Unprocessable"),
                },
                security=[],
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["email", "password"],
                        "properties": {"email": {"type": "string"}, "password": {"type": "string"}},
                    }
                ),
            )
        },
        f"{API}/auth/me": {
            "get": _op("me", "auth", {"200": _json(_OBJ), **_errors("Unauthorized")})
        },
        f"{API}/auth/tokens": {
            "get": _op(
                "list_tokens", "auth", {"200": _json(_items(_OBJ)), **_errors("Unauthorized")}
            ),
            "post": _op(
                "create_token",
                "auth",
                {
                    "201": _json(_ref("Token")),
                    **_errors("BadRequest", "Unauthorized", "Unprocessable"),
                },
                requestBody={
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"name": {"type": "string", "maxLength": 200}},
                            }
                        }
                    },
                },
            ),
        },
        f"{API}/auth/tokens/{{id}}": {
            "parameters": [_ID_PARAM],
            "delete": _op(
                "revoke_token",
                "auth",
                {
                    "204": {"description": "Revoked"},
                    **_errors("BadRequest", "Unauthorized", "NotFound"),
                },
            ),
        },
        f"{API}/leads/{{id}}/convert": {
            "parameters": [_ID_PARAM],
            "post": _op(
                "convert_lead",
                "leads",
                {
                    "200": _json(_ref("Conversion")),
                    **_errors(
                        "BadRequest",
                        "Unauthorized",
                        "Forbidden",
                        "NotFound",
                        "Conflict",
                        "Unprocessable",
                    ),
                },
                parameters=[_IDEMPOTENCY],
                requestBody={
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "account_id": {
                                        "type": "integer",
                                        "minimum": 1,
                                        "maximum": INT64_MAX,
                                        "nullable": True,
                                    },
                                    "create_opportunity": {"type": "boolean"},
                                    "account": _ref("AccountUpdate"),
                                    "contact": _ref("ContactUpdate"),
                                    "opportunity": _ref("OpportunityUpdate"),
                                },
                            }
                        }
                    },
                },
            ),
        },
        f"{API}/contacts/duplicates": {
            "get": _op(
                "contact_duplicates",
                "contacts",
                {"200": _json(_items(_OBJ)), **_errors("Unauthorized")},
            ),
        },
        f"{API}/contacts/{{id}}/merge": {
            "parameters": [_ID_PARAM],
            "post": _op(
                "merge_contacts",
                "contacts",
                {
                    "200": _json(_ref("Contact")),
                    **_errors(
                        "BadRequest",
                        "Unauthorized",
                        "Forbidden",
                        "NotFound",
                        "Conflict",
                        "Unprocessable",
                    ),
                },
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["merge_ids"],
                        "properties": {
                            "merge_ids": {
                                "type": "array",
                                "minItems": 1,
                                "items": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
                            }
                        },
                    }
                ),
            ),
        },
        f"{API}/accounts/{{id}}/rollup": {
            "parameters": [_ID_PARAM],
            "get": _op(
                "account_rollup",
                "accounts",
                {"200": _json(_ref("Rollup")), **_errors("BadRequest", "Unauthorized", "NotFound")},
            ),
        },
        f"{API}/accounts/{{id}}/timeline": {
            "parameters": [_ID_PARAM],
            "get": _op(
                "account_timeline",
                "accounts",
                {
                    "200": _json(_ref("ActivityPage")),
                    **_errors("BadRequest", "Unauthorized", "NotFound"),
                },
                parameters=_list_params(ENTITIES["activities"], extra=False),
            ),
        },
        f"{API}/accounts/{{id}}/contacts": {
            "parameters": [_ID_PARAM],
            "get": _op(
                "account_contacts",
                "accounts",
                {"200": _json(_items(_OBJ)), **_errors("BadRequest", "Unauthorized", "NotFound")},
            ),
            "put": _op(
                "set_account_contact",
                "accounts",
                {
                    "200": _json(_OBJ),
                    **_errors(
                        "BadRequest",
                        "Unauthorized",
                        "Forbidden",
                        "NotFound",
                        "Conflict",
                        "Unprocessable",
                    ),
                },
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["contact_id"],
                        "properties": {
                            "contact_id": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
                            "role": {
                                "type": "string",
                                "enum": ["primary", "secondary", "decision_maker"],
                            },
                        },
                    }
                ),
            ),
        },
        f"{API}/accounts/{{id}}/contacts/{{contact_id}}": {
            "parameters": [_ID_PARAM, {**_ID_PARAM, "name": "contact_id"}],
            "delete": _op(
                "remove_account_contact",
                "accounts",
                {
                    "204": {"description": "Removed"},
                    **_errors("BadRequest", "Unauthorized", "Forbidden", "NotFound"),
                },
            ),
        },
        f"{API}/opportunities/{{id}}/stage_history": {
            "parameters": [_ID_PARAM],
            "get": _op(
                "stage_history",
                "opportunities",
                {"200": _json(_items(_OBJ)), **_errors("BadRequest", "Unauthorized", "NotFound")},
            ),
        },
        f"{API}/analytics/pipeline/stages": {
            "get": _op(
                "pipeline_stages_summary",
                "analytics",
                {"200": _json(_OBJ), **analytics_err},
                parameters=pipeline,
            ),
        },
        f"{API}/analytics/pipeline/conversion": {
            "get": _op(
                "pipeline_conversion",
                "analytics",
                {"200": _json(_OBJ), **analytics_err},
                parameters=pipeline + period,
            ),
        },
        f"{API}/analytics/pipeline/forecast": {
            "get": _op(
                "pipeline_forecast",
                "analytics",
                {"200": _json(_OBJ), **analytics_err},
                parameters=pipeline + period,
            ),
        },
        f"{API}/analytics/pipeline/owners": {
            "get": _op(
                "pipeline_owners",
                "analytics",
                {"200": _json(_OBJ), **analytics_err},
                parameters=period,
            ),
        },
        f"{API}/imports": {
            "post": _op(
                "create_import",
                "imports",
                {"202": _json(_OBJ, "Accepted"), **job_errors},
                parameters=[
                    {
                        "name": "entity",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "enum": ["accounts", "contacts", "leads"]},
                    },
                    {
                        "name": "key",
                        "in": "query",
                        "schema": {
                            "type": "string",
                            "enum": ["id", "external_id", "email", "name"],
                        },
                    },
                    {"name": "filename", "in": "query", "schema": {"type": "string"}},
                    _IDEMPOTENCY,
                ],
                requestBody={
                    "required": True,
                    "content": {"text/csv": {"schema": {"type": "string"}}},
                },
            ),
        },
        f"{API}/imports/{{id}}": {
            "parameters": [_ID_PARAM],
            "get": _op(
                "get_import",
                "imports",
                {"200": _json(_OBJ), **_errors("BadRequest", "Unauthorized", "NotFound")},
            ),
        },
        f"{API}/imports/{{id}}/errors": {
            "parameters": [_ID_PARAM],
            "get": _op(
                "import_errors",
                "imports",
                {"200": _json(_items(_OBJ)), **_errors("BadRequest", "Unauthorized", "NotFound")},
            ),
        },
        f"{API}/imports/{{id}}/revert": {
            "parameters": [_ID_PARAM],
            "post": _op("revert_import", "imports", {"200": _json(_OBJ), **job_errors}),
        },
        f"{API}/exports": {
            "post": _op(
                "create_export",
                "exports",
                {"202": _json(_OBJ, "Accepted"), **job_errors},
                parameters=[_IDEMPOTENCY],
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["entity"],
                        "properties": {
                            "entity": {"type": "string", "enum": ["accounts", "contacts", "leads"]},
                            "filter": {"nullable": True},
                        },
                    }
                ),
            ),
        },
        f"{API}/exports/{{id}}": {
            "parameters": [_ID_PARAM],
            "get": _op(
                "get_export",
                "exports",
                {"200": _json(_OBJ), **_errors("BadRequest", "Unauthorized", "NotFound")},
            ),
        },
        f"{API}/exports/{{id}}/download": {
            "parameters": [_ID_PARAM],
            "get": _op(
                "download_export",
                "exports",
                {
                    "200": {
                        "description": "The CSV",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    **_errors("BadRequest", "Unauthorized", "NotFound", "Conflict"),
                },
            ),
        },
    }


def special_schemas() -> Json:
    nullable_obj = {"type": "object", "nullable": True}
    return {
        "Token": {
            "type": "object",
            "required": ["token", "token_id"],
            "properties": {"token": {"type": "string"}, "token_id": {"type": "integer"}},
        },
        "AuditEntry": {
            "type": "object",
            "required": ["id", "action", "field", "actor_id", "at"],
            "properties": {
                "id": {"type": "integer"},
                "action": {"type": "string", "enum": ["insert", "update", "delete"]},
                "field": {"type": "string", "nullable": True},
                "old_value": {"nullable": True},
                "new_value": {"nullable": True},
                "actor_id": {"type": "integer", "nullable": True},
                "at": {"type": "string", "format": "date-time"},
                "ledger_receipt": {"nullable": True},
            },
        },
        "Conversion": {
            "type": "object",
            "required": ["lead", "account", "contact", "opportunity", "mapping"],
            "properties": {
                "lead": _ref("Lead"),
                "account": _ref("Account"),
                "contact": _ref("Contact"),
                "opportunity": {"allOf": [_ref("Opportunity")], "nullable": True},
                "mapping": nullable_obj,
            },
        },
        "Rollup": {
            "type": "object",
            "required": [
                "account_id",
                "accounts",
                "annual_revenue",
                "open_opportunities",
                "open_amount",
            ],
            "properties": {
                "account_id": {"type": "integer"},
                "accounts": {"type": "integer"},
                "depth": {"type": "integer", "nullable": True},
                "annual_revenue": {"type": "number"},
                "open_opportunities": {"type": "integer"},
                "open_amount": {"type": "number"},
            },
        },
    }


def fragment() -> Json:
    paths: Json = {}
    schemas: Json = {}
    for e in ENTITIES.values():
        paths.update(entity_paths(e))
        schemas.update(entity_schemas(e))
    paths.update(special_paths())
    schemas.update(special_schemas())
    tags = [{"name": n} for n in ("auth", *ENTITIES, "analytics", "imports", "exports")]
    return {"paths": paths, "schemas": schemas, "tags": tags}
