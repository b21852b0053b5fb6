"""Workflow definitions as data: msgspec models (the published JSON Schema comes from them),
decoding and validation whose errors name the step.

A definition is a trigger, an ordered list of steps (a step may hold steps: `branch`,
`for_each`) and optional exit rules. Steps are a tagged union on `action`. Values that are
strings may hold `{{path}}` placeholders read from the run's context (`record.name`,
`trigger.event`, `steps.<id>.<field>`, `item.<field>` in a loop).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from automation.conditions import OPS
from automation.cron import CronError, parse_cron
from automation.phrases import PhraseError, expand

MAX_STEPS = 100  # in a definition, nested ones included
MAX_DEPTH = 4  # nesting of branch / for_each

StepId = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="unique in the definition")
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(max_length=4000)]
FieldPath = Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_]{0,62}(\.[a-z0-9_]{1,63}){0,3}$")]
Seconds = Annotated[int, msgspec.Meta(ge=0, le=400 * 86400)]

# Objects a workflow can listen to and act on, and the events of each.
RECORD_OBJECTS = ("accounts", "contacts", "leads", "opportunities", "activities", "work_orders")
RecordObject = Literal[
    "accounts", "contacts", "leads", "opportunities", "activities", "work_orders"
]
EVENTS: dict[str, tuple[str, ...]] = {
    **{o: ("created", "updated", "deleted") for o in RECORD_OBJECTS},
    "alert": ("raised", "escalated", "acknowledged", "cleared"),
    "geofence": ("enter", "exit", "dwell"),
    "visit": ("started", "completed"),
    "work_order_sla": ("approaching", "breached"),
    "email": ("received", "opened", "replied", "bounced", "unsubscribed"),
    "sms": ("received", "replied", "unsubscribed"),
    "meeting": ("booked",),
    "lead": ("converted",),
    "form": ("submitted",),
    "chat": ("submitted",),
    "segment": ("entered", "left"),
}
STANDALONE = ("schedule", "manual", "webhook", "voice")
MAX_PHRASES = 20
# the known keys are the schema's examples: the builder offers them as choices
EventKey = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z][a-z_]{0,39}\.[a-z][a-z_]{0,39}$|^(schedule|manual|webhook|voice)$",
        examples=[f"{o}.{e}" for o, evs in EVENTS.items() for e in evs] + list(STANDALONE),
    ),
]
# The object whose changes the capture trigger must write for an event key.
CAPTURED = {
    **{o: o for o in RECORD_OBJECTS},
    "alert": "alert",
    "geofence": "geofence",
    "visit": "visit",
    # engage's inbound messages, opens and consent (triggers on engage's tables)
    "email": "engage",
    "sms": "engage",
    "chat": "engage",
    # from the CRM's tables (a meeting activity for a contact or lead, a lead converted)
    "meeting": "meeting",
    "lead": "lead",
    # insights' segment membership of an account (a trigger on insights_account_value)
    "segment": "segment",
}


class Condition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`field` of the record (dotted into `custom`), compared by `op` with `value`.
    `changed`, `changed_to`, `changed_from`, `crossed_above`, `crossed_below` compare the
    record before and after the change."""

    field: FieldPath
    op: Literal[
        "eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "is_null",
        "not_null", "changed", "changed_to", "changed_from", "crossed_above", "crossed_below",
    ]  # fmt: skip
    value: Any = None


Phrase = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Trigger(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`on: voice`: a command said (or typed) to the assistant by a user of `roles` (empty:
    every role that writes) starts a run; `phrases` are sentence templates
    (`call for backup`, `(need|send) [some] backup`), `object` (accounts or work_orders)
    starts it from the speaker's current stop. The run's `trigger` holds `by_user`, `text`
    and the `phrase` matched."""

    on: EventKey
    when: list[Condition] = []
    cron: Annotated[str, msgspec.Meta(max_length=100)] | None = None  # on = schedule (UTC)
    object: RecordObject | None = None  # on = manual: the kind of record a run starts from
    phrases: Annotated[list[Phrase], msgspec.Meta(max_length=MAX_PHRASES)] = []  # on = voice
    roles: list[Literal["admin", "manager", "rep"]] = []  # on = voice: who may say it


class ExitRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A run ends (status `exited`) when this event happens to its record."""

    on: EventKey
    when: list[Condition] = []


class BusinessHours(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Messages and tasks of a sequence go out only in these hours, in the record's zone
    (`tz_field` of the record, else `default_tz`)."""

    start_hour: Annotated[int, msgspec.Meta(ge=0, le=23)] = 9
    end_hour: Annotated[int, msgspec.Meta(ge=1, le=24)] = 17
    days: list[Annotated[int, msgspec.Meta(ge=0, le=6)]] = msgspec.field(
        default_factory=lambda: [0, 1, 2, 3, 4]
    )  # Monday = 0
    tz_field: FieldPath = "tz"
    default_tz: Annotated[str, msgspec.Meta(max_length=64)] = "UTC"


Recipient = (
    Literal[
        "record_owner",
        "workflow_owner",
        "owner_manager",
        "assignee",
        "triggered_by",
        "triggered_by_manager",
    ]
    | Annotated[int, msgspec.Meta(ge=1)]
)


class _Step(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="action"):
    id: StepId


class CreateRecord(_Step, tag="create_record", frozen=True):
    object: RecordObject
    values: dict[str, Any]


class UpdateRecord(_Step, tag="update_record", frozen=True):
    """Update the run's record (or, in a loop, the current item)."""

    values: dict[str, Any]
    target: Literal["record", "item"] = "record"


class CreateTask(_Step, tag="create_task", frozen=True):
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    body: Text = ""
    type: Literal["task", "call", "email", "meeting", "note"] = "task"
    due_in_s: Seconds = 86400
    owner: Recipient = "record_owner"


class Assign(_Step, tag="assign", frozen=True):
    """Set the record's owner (or a work order's assignee) by a rule."""

    strategy: Literal["round_robin", "territory", "least_loaded", "skills"]
    users: list[Annotated[int, msgspec.Meta(ge=1)]] = []
    skills: list[Annotated[str, msgspec.Meta(max_length=64)]] = []
    field: Literal["owner_id", "assignee_id"] = "owner_id"


class Notify(_Step, tag="notify", frozen=True):
    to: list[Recipient]
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    body: Text = ""
    urgent: bool = False


class Webhook(_Step, tag="webhook", frozen=True):
    """POST the run's record and trigger, signed (crm_sync's signature), to a public URL."""

    url: Annotated[str, msgspec.Meta(min_length=8, max_length=2048)]
    secret: Annotated[str, msgspec.Meta(min_length=16, max_length=200)]
    payload: dict[str, Any] = {}


class SendMessage(_Step, tag="send_message", frozen=True):
    """E-mail or SMS to the record's contact or lead, through the channel (engage): a `body`
    (and `subject`) with `{{...}}` fields, or one of engage's templates by name. `purpose`
    decides which consent applies (default: marketing in a sequence, else transactional)."""

    channel: Literal["email", "sms"]
    body: Text = ""
    subject: Annotated[str, msgspec.Meta(max_length=500)] = ""
    template: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    purpose: Literal["transactional", "service", "marketing"] | None = None
    business_hours: bool = True


class SendReport(_Step, tag="send_report", frozen=True):
    """Run a saved report (the console's, `crm.reports`) as the workflow's owner and e-mail
    it as attachments (XLSX, CSV, PDF) from the owner's mailbox, through engage."""

    report_id: Annotated[int, msgspec.Meta(ge=1)]
    to: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=254, pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+$")]],
        msgspec.Meta(max_length=20),
    ] = []
    to_users: Annotated[list[Annotated[int, msgspec.Meta(ge=1)]], msgspec.Meta(max_length=20)] = []
    formats: Annotated[
        list[Literal["xlsx", "csv", "pdf"]], msgspec.Meta(min_length=1, max_length=3)
    ] = msgspec.field(default_factory=lambda: ["xlsx"])
    subject: Annotated[str, msgspec.Meta(max_length=500)] = "{{report.name}}"
    body: Text = "The report {{report.name}} is attached ({{report.rows}} rows)."


class Replan(_Step, tag="replan", frozen=True):
    """Ask routing to re-plan the day of the record's territory (the routing job)."""

    cpu_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 5.0


class Wait(_Step, tag="wait", frozen=True):
    """Wait for a duration, until a date, or until an event on the run's record (with a
    timeout); exactly one of `duration_s`, `until`, `event`."""

    duration_s: Seconds | None = None
    until: datetime | None = None
    event: EventKey | None = None
    when: list[Condition] = []
    timeout_s: Seconds = 7 * 86400


class Branch(_Step, tag="branch", frozen=True):
    when: list[Condition]
    match: Literal["all", "any"] = "all"
    then: list[Step] = []
    otherwise: list[Step] = []


class ForEach(_Step, tag="for_each", frozen=True):
    """Run `steps` for each related record (`object` rows pointing at the run's record)."""

    object: RecordObject
    when: list[Condition] = []
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50
    steps: list[Step] = []


class StartWorkflow(_Step, tag="start_workflow", frozen=True):
    workflow_id: Annotated[int, msgspec.Meta(ge=1)]


class LoadRecord(_Step, tag="load_record", frozen=True):
    """Read the run's record again (its current values for the next conditions)."""


Step = (
    CreateRecord | UpdateRecord | CreateTask | Assign | Notify | Webhook | SendMessage | SendReport
    | Replan | Wait | Branch | ForEach | StartWorkflow | LoadRecord
)  # fmt: skip


class Definition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    trigger: Trigger
    steps: Annotated[list[Step], msgspec.Meta(min_length=1)]
    description: Text = ""
    exit_on: list[ExitRule] = []
    business_hours: BusinessHours | None = None
    max_runs_per_min: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 600


class DefinitionError(ValueError):
    """A definition that cannot be saved; `where` names the step (or the part) at fault."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def json_schema() -> dict[str, Any]:
    return msgspec.json.schema(Definition)


_PATH_RE = re.compile(r"\$((?:\.[a-z_]+|\[\d+\])*)")


def _name_the_step(raw: Any, path: str) -> str:
    """`$.steps[1].then[0].due_in_s` -> "step 'x' (steps[1].then[0]), field due_in_s"."""
    tokens = re.findall(r"\.([a-z_]+)|\[(\d+)\]", path)
    node: Any = raw
    step_name = ""
    step_path = ""
    walked = ""
    for key, index in tokens:
        if key:
            walked += f".{key}"
            node = node.get(key) if isinstance(node, dict) else None
        else:
            walked += f"[{index}]"
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
            if isinstance(node, dict) and "action" in node:
                step_name = str(node.get("id", "?"))
                step_path = walked.lstrip(".")
    if step_name:
        rest = (
            path[len("$." + step_path) :].lstrip(".") if path.startswith("$." + step_path) else ""
        )
        return f"step {step_name!r} ({step_path})" + (f", field {rest}" if rest else "")
    return path.lstrip("$.") or "definition"


def decode(raw: bytes | dict[str, Any]) -> Definition:
    """Parse and check a definition; DefinitionError naming the step otherwise."""
    try:
        data = msgspec.json.decode(raw) if isinstance(raw, bytes) else raw
        definition = msgspec.convert(data, Definition)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = re.search(r"at `(\$[^`]*)`", text)
        where = _name_the_step(data, m.group(1)) if m else "definition"
        raise DefinitionError(where, text.split(" - at ")[0]) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise DefinitionError("definition", f"not JSON: {exc}") from None
    check(definition)
    return definition


def walk(steps: list[Step], depth: int = 0) -> list[tuple[Step, int]]:
    out: list[tuple[Step, int]] = []
    for s in steps:
        out.append((s, depth))
        if isinstance(s, Branch):
            out += walk(s.then, depth + 1) + walk(s.otherwise, depth + 1)
        elif isinstance(s, ForEach):
            out += walk(s.steps, depth + 1)
    return out


def _check_event(where: str, key: str, allow_standalone: bool) -> None:
    if key in STANDALONE:
        if not allow_standalone:
            raise DefinitionError(where, f"{key!r} is a trigger of its own, not an event")
        return
    obj, _, ev = key.partition(".")
    if obj not in EVENTS or ev not in EVENTS[obj]:
        known = ", ".join(f"{o}.{e}" for o, evs in EVENTS.items() for e in evs)
        raise DefinitionError(
            where, f"unknown event {key!r}; known: {known}, schedule, manual, webhook"
        )


def _check_conditions(where: str, conds: list[Condition]) -> None:
    for c in conds:
        if c.op not in OPS:
            raise DefinitionError(where, f"unknown op {c.op!r}")
        if c.op in ("in", "not_in") and not isinstance(c.value, list):
            raise DefinitionError(where, f"{c.field} {c.op}: value must be a list")
        if c.op in ("gt", "gte", "lt", "lte", "crossed_above", "crossed_below") and not isinstance(
            c.value, int | float | str
        ):
            raise DefinitionError(where, f"{c.field} {c.op}: value must be a number or text")


def _check_voice(t: Trigger) -> None:
    if t.on != "voice":
        if t.phrases or t.roles:
            raise DefinitionError("trigger.phrases", "only a voice trigger has phrases and roles")
        return
    if not t.phrases:
        raise DefinitionError("trigger.phrases", "a voice trigger needs at least one phrase")
    if t.object not in (None, "accounts", "work_orders"):
        raise DefinitionError(
            "trigger.object", "a voice run starts from the current stop: accounts or work_orders"
        )
    for i, p in enumerate(t.phrases):
        try:
            expand(p)
        except PhraseError as exc:
            raise DefinitionError(f"trigger.phrases[{i}]", str(exc)) from None


def check(d: Definition) -> None:
    """Rules the types cannot say: unique step ids, known events and fields, one wait kind,
    a bounded size and nesting, a valid cron."""
    from crm.entities import ENTITIES

    _check_event("trigger.on", d.trigger.on, allow_standalone=True)
    _check_conditions("trigger.when", d.trigger.when)
    if d.trigger.on == "schedule":
        if d.trigger.cron is None:
            raise DefinitionError("trigger.cron", "a schedule trigger needs a cron expression")
        try:
            parse_cron(d.trigger.cron)
        except CronError as exc:
            raise DefinitionError("trigger.cron", str(exc)) from None
    elif d.trigger.cron is not None:
        raise DefinitionError("trigger.cron", "only a schedule trigger has a cron expression")
    _check_voice(d.trigger)
    for i, rule in enumerate(d.exit_on):
        _check_event(f"exit_on[{i}]", rule.on, allow_standalone=False)
        _check_conditions(f"exit_on[{i}]", rule.when)
    steps = walk(d.steps)
    if len(steps) > MAX_STEPS:
        raise DefinitionError("steps", f"at most {MAX_STEPS} steps (nested ones count)")
    seen: set[str] = set()
    for s, depth in steps:
        where = f"step {s.id!r}"
        if s.id in seen:
            raise DefinitionError(where, "step ids must be unique")
        seen.add(s.id)
        if depth >= MAX_DEPTH:
            raise DefinitionError(where, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(s, Wait):
            kinds = [k for k in (s.duration_s, s.until, s.event) if k is not None]
            if len(kinds) != 1:
                raise DefinitionError(where, "a wait needs exactly one of duration_s, until, event")
            if s.event is not None:
                _check_event(where, s.event, allow_standalone=False)
            if s.until is not None and s.until.tzinfo is None:
                raise DefinitionError(where, "until needs a time zone (e.g. Z)")
            _check_conditions(where, s.when)
        elif isinstance(s, (Branch, ForEach)):
            _check_conditions(where, s.when)
        elif isinstance(s, CreateRecord | UpdateRecord):
            obj = s.object if isinstance(s, CreateRecord) else None
            if obj is not None:
                entity = ENTITIES[obj]
                for name in s.values:
                    f = entity.field(name)
                    if f is None or not f.write:
                        raise DefinitionError(where, f"{obj} has no writable field {name!r}")
        elif isinstance(s, SendMessage) and not (s.body.strip() or s.template):
            raise DefinitionError(where, "a message needs a body or a template")
        elif isinstance(s, SendReport) and not (s.to or s.to_users):
            raise DefinitionError(where, "a report needs recipients: to or to_users")
        elif isinstance(s, Webhook) and not s.url.startswith(("https://", "http://")):
            raise DefinitionError(where, "url must be http(s)")


def record_objects(d: Definition) -> set[str]:
    """Objects whose changes this definition needs captured (trigger, waits, exits)."""
    keys = [d.trigger.on] + [r.on for r in d.exit_on]
    keys += [s.event for s, _ in walk(d.steps) if isinstance(s, Wait) and s.event]
    out: set[str] = set()
    for k in keys:
        obj = k.partition(".")[0]
        if obj in CAPTURED:
            out.add(CAPTURED[obj])
    return out
