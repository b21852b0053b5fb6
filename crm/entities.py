"""What each CRM record type looks like through the API: fields, types, rules (pure).

One `Entity` per resource drives the generic CRUD (crm/store.py), the request and response
models with their OpenAPI schemas (crm/schema.py), the filter whitelist and filter values
(crm/filters.py, `coerce`) and CSV import/export (crm/csvio.py), so they cannot drift apart.
API field names are the column names.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from crm.errors import CrmError

ACCOUNT_TYPES = ("customer", "prospect", "partner", "competitor")
LEAD_SOURCES = ("website", "referral", "cold_call", "social_media", "event", "partner", "other")
LEAD_STATUSES = ("new", "contacted", "qualified", "unqualified", "converted")
ACTIVITY_TYPES = ("call", "email", "meeting", "task", "note")
ACTIVITY_STATUSES = ("open", "done", "cancelled")
WO_PRIORITIES = ("low", "normal", "high", "urgent")
WO_STATUSES = ("new", "assigned", "scheduled", "in_progress", "done", "cancelled")
CONTACT_ROLES = ("primary", "secondary", "decision_maker")
INT_MAX = 2**63 - 1

# --------------------------------------------------------------------------- plausible values
# A type accepts values no real record holds (a deal closing in year 1, a phone number of two
# digits). These are the limits the API enforces on top of the types, in one place: the
# request models (crm.schema) check them on every write, JSON or CSV, and answer 422 naming
# the field and the rule; the field's OpenAPI description and /meta/entities state them.
#
# Dates and times: between EARLIEST_DATE and LATEST_DATE unless a field narrows its window
# (`Field.earliest/latest`), times compared in UTC.
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_DATE = dt.date(2200, 12, 31)
# Phone numbers: digits with an optional leading '+', separated by spaces, dashes, dots or
# parentheses, 5 to 20 digits, and an optional extension ("x12", "ext. 12", "#12").
PHONE_MIN_DIGITS = 5
PHONE_MAX_DIGITS = 20
PHONE_RE = re.compile(
    r"^\+?[0-9 ().\-]+?(?:\s*(?:x|ext\.?|extension|#)\s*([0-9]{1,6}))?$", re.IGNORECASE
)
PHONE_RULE = (
    f"{PHONE_MIN_DIGITS} to {PHONE_MAX_DIGITS} digits, with an optional leading +, spaces, "
    "dashes, dots or parentheses and an optional extension (x123)"
)

# kinds: text, int, decimal, bool, datetime, date, time, enum, text_list, int_list,
#        object, array, point, multipolygon, password


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: str
    write: bool = True  # settable through the API
    required: bool = False  # on create
    nullable: bool = True
    enum: tuple[str, ...] = ()
    # the enum lists its values in their order (a life cycle, a scale), not just a set:
    # reports grouped by it read the values in that order
    ordinal: bool = False
    minimum: float | None = None
    maximum: float | None = None
    max_len: int | None = None
    ref: str | None = None  # the entity an id points at (checked for visibility)
    sort: bool = False
    default: Any = None  # documented default (the database applies it)
    read: bool = True  # returned in responses (false for passwords)
    description: str = ""
    # plausibility (see "plausible values" below): a date/datetime field's window, and a
    # text field's format ("phone")
    earliest: dt.date | None = None
    latest: dt.date | None = None
    format: str = ""

    @property
    def filterable(self) -> bool:
        return self.read and self.kind not in ("point", "multipolygon", "password", "array")


_ID = Field("id", "int", write=False, nullable=False, sort=True)
_CREATED = Field("created_at", "datetime", write=False, nullable=False, sort=True)
_UPDATED = Field("updated_at", "datetime", write=False, nullable=False, sort=True)
_VERSION = Field("version", "int", write=False, nullable=False)
_CUSTOM = Field(
    "custom",
    "object",
    nullable=False,
    default={},
    description="Free custom fields; filter on them as custom.<key>",
)


def _owner() -> Field:
    return Field("owner_id", "int", ref="users", description="Defaults to the creating user")


def _territory(write: bool = True) -> Field:
    return Field(
        "territory_id",
        "int",
        write=write,
        ref="territories",
        description="Defaults to the creator's (or the linked account's) territory",
    )


def _phone() -> Field:
    return Field(
        "phone", "text", max_len=50, format="phone", description=f"A phone number: {PHONE_RULE}"
    )


def _currency() -> Field:
    return Field(
        "currency",
        "text",
        nullable=False,
        max_len=3,
        description="ISO 4217 code; defaults to the tenant's (GET /api/v1/tenant/settings)",
    )


@dataclass(frozen=True, slots=True)
class Entity:
    name: str  # URL segment and table name
    singular: str
    fields: tuple[Field, ...]
    scoped: bool = True  # record-level access applies (owner / territory)
    admin_writes: bool = False  # only admins create/update/delete
    search: tuple[str, ...] = ()  # columns the `q` parameter searches
    default_sort: str = "id"
    versioned: bool = True  # ETag / If-Match
    extra_owner_columns: tuple[str, ...] = ()
    csv: bool = False
    upsert_keys: tuple[str, ...] = ("id",)
    table_name: str = ""

    @property
    def table(self) -> str:
        return self.table_name or self.name

    @property
    def schema_name(self) -> str:
        return "".join(p.capitalize() for p in self.singular.split("_"))

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def readable(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.read)

    @property
    def writable(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.write)


ENTITIES: dict[str, Entity] = {}


def _register(entity: Entity) -> Entity:
    ENTITIES[entity.name] = entity
    return entity


TERRITORIES = _register(
    Entity(
        "territories",
        "territory",
        (
            _ID,
            Field("name", "text", required=True, nullable=False, max_len=200, sort=True),
            Field("region", "text", max_len=200),
            Field("geom", "multipolygon", description="GeoJSON MultiPolygon (lon, lat)"),
            _CREATED,
            _UPDATED,
        ),
        scoped=False,
        admin_writes=True,
        search=("name",),
        versioned=False,
    )
)

USERS = _register(
    Entity(
        "users",
        "user",
        (
            _ID,
            Field("email", "text", required=True, nullable=False, max_len=320, sort=True),
            Field("name", "text", required=True, nullable=False, max_len=200, sort=True),
            Field(
                "role",
                "enum",
                required=True,
                nullable=False,
                enum=("admin", "manager", "rep", "viewer"),
            ),
            Field("manager_id", "int", ref="users"),
            Field("territory_id", "int", ref="territories"),
            Field(
                "password", "password", read=False, description="Write-only; hashed with Argon2id"
            ),
            Field("skills", "text_list", nullable=False, default=[]),
            Field("home_location", "point"),
            Field("shift_start", "time", nullable=False, default="08:00:00"),
            Field("shift_end", "time", nullable=False, default="17:00:00"),
            Field("timezone", "text", nullable=False, max_len=64, default="UTC"),
            Field("active", "bool", nullable=False, default=True),
            _CREATED,
            _UPDATED,
        ),
        scoped=False,
        admin_writes=True,
        search=("name", "email"),
        versioned=False,
    )
)

ACCOUNTS = _register(
    Entity(
        "accounts",
        "account",
        (
            _ID,
            Field("name", "text", required=True, nullable=False, max_len=300, sort=True),
            Field("type", "enum", nullable=False, enum=ACCOUNT_TYPES, default="prospect"),
            Field(
                "parent_id", "int", ref="accounts", description="Parent account; cycles are refused"
            ),
            Field("annual_revenue", "decimal", minimum=0, sort=True),
            _currency(),
            Field("address", "text", max_len=1000),
            Field("location", "point", description="GeoJSON Point (lon, lat)"),
            _territory(),
            _owner(),
            Field("health_score", "int", minimum=0, maximum=100, sort=True),
            Field(
                "visit_frequency_days",
                "int",
                minimum=1,
                maximum=3650,
                description="Periodic visit cadence; defaults per account type",
            ),
            Field("last_visit_at", "datetime", sort=True),
            Field("external_id", "text", max_len=200),
            _CUSTOM,
            _CREATED,
            _UPDATED,
            _VERSION,
        ),
        search=("name",),
        csv=True,
        upsert_keys=("id", "external_id", "name"),
    )
)

CONTACTS = _register(
    Entity(
        "contacts",
        "contact",
        (
            _ID,
            Field(
                "kind", "enum", nullable=False, enum=("individual", "company"), default="individual"
            ),
            Field("first_name", "text", max_len=200, sort=True),
            Field("last_name", "text", max_len=200, sort=True),
            Field("company_name", "text", max_len=300),
            Field("title", "text", max_len=200),
            Field("email", "text", max_len=320, sort=True),
            _phone(),
            Field("phone_normalized", "text", write=False),
            Field(
                "comm_prefs",
                "object",
                nullable=False,
                default={},
                description='e.g. {"email": true, "phone": false, "preferred": "email", "do_not_contact": false}',
            ),
            Field("address", "text", max_len=1000),
            _owner(),
            _territory(),
            Field("external_id", "text", max_len=200),
            _CUSTOM,
            _CREATED,
            _UPDATED,
            _VERSION,
        ),
        search=("last_name", "first_name", "company_name", "email"),
        csv=True,
        upsert_keys=("id", "external_id", "email"),
    )
)

LEADS = _register(
    Entity(
        "leads",
        "lead",
        (
            _ID,
            Field("first_name", "text", max_len=200),
            Field("last_name", "text", max_len=200, sort=True),
            Field("company", "text", max_len=300, sort=True),
            Field("title", "text", max_len=200),
            Field("email", "text", max_len=320),
            _phone(),
            Field("phone_normalized", "text", write=False),
            Field("source", "enum", nullable=False, enum=LEAD_SOURCES, default="other"),
            Field(
                "status",
                "enum",
                nullable=False,
                enum=LEAD_STATUSES,
                ordinal=True,
                default="new",
                description="converted only through /convert",
            ),
            Field("region", "text", max_len=200),
            Field("address", "text", max_len=1000),
            Field("location", "point"),
            Field("estimated_amount", "decimal", minimum=0),
            _currency(),
            Field(
                "owner_id", "int", ref="users", description="Set by assignment rules when absent"
            ),
            _territory(),
            Field("assignment_rule_id", "int", write=False),
            Field("converted_at", "datetime", write=False),
            Field("converted_account_id", "int", write=False, ref="accounts"),
            Field("converted_contact_id", "int", write=False, ref="contacts"),
            Field("converted_opportunity_id", "int", write=False, ref="opportunities"),
            Field("conversion_mapping", "object", write=False),
            Field("external_id", "text", max_len=200),
            _CUSTOM,
            _CREATED,
            _UPDATED,
            _VERSION,
        ),
        search=("last_name", "company", "email"),
        csv=True,
        upsert_keys=("id", "external_id", "email"),
    )
)

PIPELINES = _register(
    Entity(
        "pipelines",
        "pipeline",
        (
            _ID,
            Field("name", "text", required=True, nullable=False, max_len=200, sort=True),
            Field("is_default", "bool", nullable=False, default=False),
            _CREATED,
        ),
        scoped=False,
        admin_writes=True,
        versioned=False,
    )
)

PIPELINE_STAGES = _register(
    Entity(
        "pipeline_stages",
        "pipeline_stage",
        (
            _ID,
            Field("pipeline_id", "int", required=True, nullable=False, ref="pipelines"),
            Field("name", "text", required=True, nullable=False, max_len=200),
            Field(
                "position",
                "int",
                required=True,
                nullable=False,
                minimum=0,
                maximum=10000,
                sort=True,
            ),
            Field("probability", "decimal", required=True, nullable=False, minimum=0, maximum=100),
            Field("is_won", "bool", nullable=False, default=False),
            Field("is_lost", "bool", nullable=False, default=False),
        ),
        scoped=False,
        admin_writes=True,
        versioned=False,
    )
)

OPPORTUNITIES = _register(
    Entity(
        "opportunities",
        "opportunity",
        (
            _ID,
            Field("name", "text", required=True, nullable=False, max_len=300, sort=True),
            Field("account_id", "int", required=True, nullable=False, ref="accounts"),
            Field("contact_id", "int", ref="contacts"),
            Field(
                "pipeline_id",
                "int",
                nullable=False,
                ref="pipelines",
                description="Defaults to the default pipeline",
            ),
            Field(
                "stage_id",
                "int",
                nullable=False,
                ref="pipeline_stages",
                description="Defaults to the pipeline's first stage",
            ),
            Field("amount", "decimal", nullable=False, minimum=0, sort=True, default=0),
            _currency(),
            Field("close_date", "date", sort=True),
            Field(
                "probability",
                "decimal",
                nullable=False,
                minimum=0,
                maximum=100,
                description="Defaults from the stage; a value given overrides it",
            ),
            Field("probability_is_override", "bool", write=False),
            Field("status", "enum", write=False, enum=("open", "won", "lost"), ordinal=True),
            Field("competitors", "text_list", nullable=False, default=[]),
            _owner(),
            _territory(write=False),
            Field("lead_id", "int", write=False, ref="leads"),
            Field("closed_at", "datetime", write=False),
            _CUSTOM,
            _CREATED,
            _UPDATED,
            _VERSION,
        ),
        search=("name",),
    )
)

ACTIVITIES = _register(
    Entity(
        "activities",
        "activity",
        (
            _ID,
            Field("type", "enum", required=True, nullable=False, enum=ACTIVITY_TYPES),
            Field("subject", "text", required=True, nullable=False, max_len=500),
            Field("body", "text", max_len=100_000),
            Field(
                "status",
                "enum",
                nullable=False,
                enum=ACTIVITY_STATUSES,
                ordinal=True,
                default="open",
            ),
            Field("due_at", "datetime", sort=True),
            Field("start_at", "datetime", sort=True),
            Field("end_at", "datetime"),
            Field(
                "tz",
                "text",
                nullable=False,
                max_len=64,
                default="UTC",
                description="IANA time zone name",
            ),
            Field("account_id", "int", ref="accounts"),
            Field("contact_id", "int", ref="contacts"),
            Field("lead_id", "int", ref="leads"),
            Field("opportunity_id", "int", ref="opportunities"),
            Field("work_order_id", "int", ref="work_orders"),
            _owner(),
            _territory(write=False),
            Field("source", "text", nullable=False, max_len=50, default="manual"),
            Field("source_ref", "text", max_len=200),
            Field("completed_at", "datetime", write=False),
            Field("occurred_at", "datetime", write=False, nullable=False, sort=True),
            _CREATED,
            _UPDATED,
            _VERSION,
        ),
        search=("subject",),
        default_sort="-occurred_at",
    )
)

WORK_ORDERS = _register(
    Entity(
        "work_orders",
        "work_order",
        (
            _ID,
            Field("account_id", "int", required=True, nullable=False, ref="accounts"),
            Field("title", "text", required=True, nullable=False, max_len=300),
            Field("description", "text", max_len=100_000),
            Field(
                "priority",
                "enum",
                nullable=False,
                enum=WO_PRIORITIES,
                ordinal=True,
                default="normal",
            ),
            Field(
                "status",
                "enum",
                nullable=False,
                enum=WO_STATUSES,
                ordinal=True,
                default="new",
                description="Life cycle enforced",
            ),
            Field("sla_due_at", "datetime", sort=True),
            Field("required_skills", "text_list", nullable=False, default=[]),
            Field(
                "estimated_duration_min",
                "int",
                nullable=False,
                minimum=1,
                maximum=100_000,
                default=60,
            ),
            Field("earliest_start", "datetime"),
            Field("latest_end", "datetime"),
            Field(
                "time_windows",
                "array",
                nullable=False,
                default=[],
                description='[{"start": ISO, "end": ISO}]',
            ),
            Field("assignee_id", "int", ref="users"),
            Field("scheduled_start", "datetime"),
            Field("scheduled_end", "datetime"),
            Field("source", "text", nullable=False, max_len=50, default="manual"),
            Field(
                "source_ref",
                "text",
                max_len=200,
                description="With source: idempotency key for automated creators",
            ),
            _owner(),
            _territory(write=False),
            Field("completed_at", "datetime", write=False),
            _CUSTOM,
            _CREATED,
            _UPDATED,
            _VERSION,
        ),
        search=("title",),
        extra_owner_columns=("assignee_id",),
    )
)

ASSIGNMENT_RULES = _register(
    Entity(
        "lead_assignment_rules",
        "lead_assignment_rule",
        (
            _ID,
            Field("name", "text", required=True, nullable=False, max_len=200),
            Field(
                "priority",
                "int",
                nullable=False,
                minimum=0,
                maximum=1_000_000,
                sort=True,
                default=100,
            ),
            Field("active", "bool", nullable=False, default=True),
            Field("match_source", "enum", enum=LEAD_SOURCES),
            Field("match_region", "text", max_len=200),
            Field("match_territory_id", "int", ref="territories"),
            Field(
                "strategy",
                "enum",
                nullable=False,
                enum=("round_robin", "fixed"),
                default="round_robin",
            ),
            Field("assignee_ids", "int_list", nullable=False, default=[]),
            Field("set_territory_id", "int", ref="territories"),
            _CREATED,
        ),
        scoped=False,
        admin_writes=True,
        versioned=False,
        default_sort="priority",
    )
)


# Entities another package serves with routes of its own (not crm's generic CRUD), described
# here all the same: their request models (crm.schema.models_for), plausibility limits and
# /meta/entities come from the same `Field`s as every other entity's.
SERVED_ELSEWHERE: dict[str, Entity] = {}

ASSETS = Entity(
    "assets",
    "asset",
    (
        _ID,
        Field(
            "account_id",
            "int",
            required=True,
            nullable=False,
            ref="accounts",
            description="The account where the equipment is installed; it stays on changes",
        ),
        Field("equipment_model", "text", required=True, nullable=False, max_len=100),
        Field(
            "device_id",
            "text",
            max_len=200,
            ref="devices",
            description="The connected device on this equipment (one the caller may link)",
        ),
        Field("serial", "text", max_len=200),
        Field("installed_on", "date"),
        Field(
            "contract_tier",
            "enum",
            nullable=False,
            enum=("basic", "standard", "premium"),
            ordinal=True,
            default="standard",
        ),
        Field(
            "sla_hours",
            "int",
            nullable=False,
            minimum=1,
            maximum=24 * 365,
            default=48,
            description="Hours to fix an alert's work order",
        ),
        Field("required_skills", "text_list", nullable=False, default=[]),
        _CREATED,
        _UPDATED,
        _VERSION,
    ),
)
SERVED_ELSEWHERE[ASSETS.name] = ASSETS


def described() -> dict[str, Entity]:
    """Every entity the API describes: crm's own, then those served elsewhere."""
    return {**ENTITIES, **SERVED_ELSEWHERE}


# --------------------------------------------------------------------------- plausibility


def window(f: Field) -> tuple[dt.date, dt.date] | None:
    """The dates a date or datetime field may hold (inclusive), None for other kinds."""
    if f.kind not in ("date", "datetime", "array"):
        return None
    return (f.earliest or EARLIEST_DATE, f.latest or LATEST_DATE)


def window_rule(f: Field) -> str:
    w = window(f)
    assert w is not None
    return f"must be between {w[0].isoformat()} and {w[1].isoformat()}"


def implausible(f: Field, value: Any) -> str | None:
    """Why `value` (already of the field's type) is no plausible value of `f`, or None.

    Dates and times must lie in the field's window (times in UTC: a time that is the last
    day of the window somewhere is still inside); phone numbers must look like one."""
    w = window(f)
    if w is not None and isinstance(value, (dt.date, dt.datetime)):
        try:
            day = value.astimezone(dt.UTC).date() if isinstance(value, dt.datetime) else value
        except OverflowError:
            return window_rule(f)
        if not w[0] <= day <= w[1]:
            return window_rule(f)
    if f.format == "phone" and isinstance(value, str):
        return phone_problem(value)
    return None


def phone_problem(text: str) -> str | None:
    """None when `text` is a plausible phone number (PHONE_RULE), else the rule."""
    m = PHONE_RE.match(text.strip())
    main = text.strip()[: m.start(1)] if m and m.group(1) else text
    digits = sum(c.isdigit() for c in main)
    if m is None or not PHONE_MIN_DIGITS <= digits <= PHONE_MAX_DIGITS:
        return f"is not a phone number: {PHONE_RULE}"
    return None


# --------------------------------------------------------------------------- parsing

_TZ_RE = re.compile(r"^[A-Za-z_]+(/[A-Za-z0-9_+\-]+)*$|^UTC$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


def _bad(f: Field, message: str) -> CrmError:
    return CrmError(f"{f.name}: {message}", field=f.name, status=422, code="invalid")


def parse_datetime(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("needs a time zone offset (e.g. 2025-01-31T09:00:00Z)")
    return value


def coerce(f: Field, value: Any) -> Any:
    """One field's API value as the Python value to store; CrmError (422) naming it if bad."""
    if value is None:
        if not f.nullable:
            raise _bad(f, "may not be null")
        return None
    k = f.kind
    if k in ("text", "password"):
        if not isinstance(value, str):
            raise _bad(f, "must be a string")
        if "\x00" in value:
            raise _bad(f, "may not contain NUL characters")
        if f.max_len is not None and len(value) > f.max_len:
            raise _bad(f, f"longer than {f.max_len} characters")
        if f.required and not value.strip():
            raise _bad(f, "may not be empty")
        if f.name == "currency" and not _CURRENCY_RE.match(value):
            raise _bad(f, "must be an ISO 4217 code like USD")
        if f.name in ("tz", "timezone") and not _TZ_RE.match(value):
            raise _bad(f, "must be an IANA time zone name like Europe/Paris")
        if f.name == "email" and ("@" not in value or len(value) < 3):
            raise _bad(f, "is not an e-mail address")
        if k == "password" and len(value) < 8:
            raise _bad(f, "must have at least 8 characters")
        return value
    if k == "enum":
        if value not in f.enum:
            raise _bad(f, f"must be one of {', '.join(f.enum)}")
        return value
    if k == "bool":
        if not isinstance(value, bool):
            raise _bad(f, "must be true or false")
        return value
    if k == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(f, "must be an integer")
        lo = (
            f.minimum
            if f.minimum is not None
            else (1 if f.ref or f.name.endswith("_id") else -INT_MAX)
        )
        hi = f.maximum if f.maximum is not None else INT_MAX
        if not lo <= value <= hi:
            raise _bad(f, f"must be between {lo:g} and {hi:g}")
        return value
    if k == "decimal":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _bad(f, "must be a number")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise _bad(f, "must be a number") from None
        if not number.is_finite() or abs(number) >= Decimal("1e16"):
            raise _bad(f, "must be a finite number below 1e16")
        if f.minimum is not None and number < Decimal(str(f.minimum)):
            raise _bad(f, f"must be at least {f.minimum:g}")
        if f.maximum is not None and number > Decimal(str(f.maximum)):
            raise _bad(f, f"must be at most {f.maximum:g}")
        return number
    if k in ("datetime", "date", "time"):
        if not isinstance(value, str):
            raise _bad(f, f"must be an ISO 8601 {k} string")
        try:
            if k == "datetime":
                return parse_datetime(value)
            if k == "date":
                return dt.date.fromisoformat(value)
            return dt.time.fromisoformat(value)
        except ValueError as exc:
            raise _bad(f, f"not an ISO 8601 {k}: {exc}") from None
    if k in ("text_list", "int_list"):
        if not isinstance(value, list):
            raise _bad(f, "must be a list")
        want = str if k == "text_list" else int
        if any(isinstance(v, bool) or not isinstance(v, want) for v in value):
            raise _bad(f, f"must be a list of {'strings' if want is str else 'integers'}")
        if k == "int_list" and any(not 1 <= v <= INT_MAX for v in value):
            raise _bad(f, "ids must be positive 64-bit integers")
        if k == "text_list" and any("\x00" in v for v in value):
            raise _bad(f, "may not contain NUL characters")
        return value
    if k == "object":
        if not isinstance(value, dict):
            raise _bad(f, "must be a JSON object")
        return _json_safe(f, value)
    if k == "array":
        if not isinstance(value, list):
            raise _bad(f, "must be a JSON array")
        if f.name == "time_windows":
            for w in value:
                if (
                    not isinstance(w, dict)
                    or not isinstance(w.get("start"), str)
                    or not isinstance(w.get("end"), str)
                ):
                    raise _bad(f, 'each window must be {"start": ISO-8601, "end": ISO-8601}')
                try:
                    if parse_datetime(w["start"]) > parse_datetime(w["end"]):
                        raise _bad(f, "a window ends before it starts")
                except ValueError as exc:
                    raise _bad(f, f"bad window time: {exc}") from None
        return _json_safe(f, value)
    if k == "point":
        return json.dumps(parse_point(f, value))
    if k == "multipolygon":
        if (
            not isinstance(value, dict)
            or value.get("type") != "MultiPolygon"
            or not isinstance(value.get("coordinates"), list)
        ):
            raise _bad(f, "must be a GeoJSON MultiPolygon")
        return json.dumps(value)
    raise AssertionError(f"unknown field kind {k}")


def _json_safe(f: Field, value: Any) -> str:
    text = json.dumps(value)
    if "\\u0000" in text:
        raise _bad(f, "may not contain NUL characters")
    return text


def parse_point(f: Field, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("type") != "Point":
        raise _bad(f, 'must be a GeoJSON Point {"type": "Point", "coordinates": [lon, lat]}')
    coords = value.get("coordinates")
    if (
        not isinstance(coords, list)
        or len(coords) != 2
        or any(isinstance(c, bool) or not isinstance(c, (int, float)) for c in coords)
    ):
        raise _bad(f, "coordinates must be [lon, lat]")
    lon, lat = float(coords[0]), float(coords[1])
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise _bad(f, "lon must be within [-180, 180] and lat within [-90, 90]")
    return {"type": "Point", "coordinates": [lon, lat]}


def normalize_phone(phone: str | None) -> str | None:
    """Digits with a leading '+' kept (00 becomes +); None when nothing is left."""
    if phone is None:
        return None
    text = phone.strip()
    plus = text.startswith("+") or text.startswith("00")
    digits = re.sub(r"\D", "", text)
    if text.startswith("00"):
        digits = digits[2:]
    if not digits:
        return None
    return ("+" if plus else "") + digits
