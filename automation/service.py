"""Workflows as data: save (validated, versioned), activate, list, start by hand, enrol
in a sequence, emit outside events, dry runs, and the read side of runs and record logs.

Who may do what: anyone who writes may own workflows; a workflow acts with its owner's
rights (the engine loads the owner's principal for every pass). A user sees and changes
their own workflows, a manager those of their team, an admin all.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from automation import definition as d
from automation import runs
from automation.conditions import compile_all
from automation.template import render
from crm.entities import ENTITIES
from crm.store import get_record
from kernel.errors import Conflict, NotFound, Unprocessable
from kernel.principal import Forbidden, Principal

Conn = AsyncConnection[Any]


def _visible(p: Principal, owner_id: int) -> bool:
    return p.is_admin or owner_id in p.team_user_ids


async def refresh_watch(conn: Conn) -> None:
    """The objects the capture triggers write changes of: those of active workflows."""
    cur = await conn.execute(
        "SELECT v.definition FROM automation_workflows w JOIN automation_versions v"
        " ON v.workflow_id = w.id AND v.version = w.version WHERE w.active"
    )
    objects: set[str] = set()
    for (raw,) in await cur.fetchall():
        try:
            objects |= d.record_objects(d.decode(raw))
        except d.DefinitionError:
            continue
    await conn.execute("LOCK TABLE automation_watch IN EXCLUSIVE MODE")
    await conn.execute(
        "DELETE FROM automation_watch WHERE NOT (object = ANY(%s))", (sorted(objects),)
    )
    await conn.execute(
        "INSERT INTO automation_watch (object) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
        (sorted(objects),),
    )


def decode_or_422(raw: Any) -> d.Definition:
    try:
        return d.decode(raw)
    except d.DefinitionError as exc:
        raise Unprocessable(str(exc), field=exc.where, code="invalid_definition") from None


async def _check_references(conn: Conn, p: Principal, definition: d.Definition) -> None:
    for s, _ in d.walk(definition.steps):
        if isinstance(s, d.StartWorkflow):
            cur = await conn.execute(
                "SELECT owner_id FROM automation_workflows WHERE id = %s", (s.workflow_id,)
            )
            row = await cur.fetchone()
            if row is None or not _visible(p, int(row[0])):
                raise Unprocessable(
                    f"step {s.id!r}: workflow {s.workflow_id} not found",
                    field=f"step {s.id}",
                    code="invalid_definition",
                )


async def save(
    conn: Conn, p: Principal, raw: Any, workflow_id: int | None = None, kind: str = "workflow"
) -> dict[str, Any]:
    """Create a workflow, or add a version to one (running instances keep theirs)."""
    p.require_write()
    definition = decode_or_422(raw)
    await _check_references(conn, p, definition)
    data = msgspec.to_builtins(definition)
    if workflow_id is None:
        secret = secrets.token_hex(24) if definition.trigger.on == "webhook" else None
        cur = await conn.execute(
            "INSERT INTO automation_workflows (name, kind, owner_id, trigger_on, inbound_secret)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (definition.name, kind, p.user_id, definition.trigger.on, secret),
        )
        row = await cur.fetchone()
        assert row is not None
        workflow_id, version = int(row[0]), 1
    else:
        current = await get_workflow_row(conn, p, workflow_id, for_update=True)
        version = int(current["version"]) + 1
        await conn.execute(
            "UPDATE automation_workflows SET name = %s, version = %s, trigger_on = %s, updated_at = now(),"
            " inbound_secret = CASE WHEN %s = 'webhook' THEN coalesce(inbound_secret, %s) END WHERE id = %s",
            (
                definition.name,
                version,
                definition.trigger.on,
                definition.trigger.on,
                secrets.token_hex(24),
                workflow_id,
            ),
        )
    await conn.execute(
        "INSERT INTO automation_versions (workflow_id, version, definition, created_by) VALUES (%s, %s, %s, %s)",
        (workflow_id, version, Jsonb(data), p.user_id),
    )
    await watch(conn, d.record_objects(definition))
    return await get_workflow_row(conn, p, workflow_id)


async def watch(conn: Conn, objects: set[str]) -> None:
    """Capture these objects' changes from now on (a save adds; a pause recomputes)."""
    await conn.execute(
        "INSERT INTO automation_watch (object) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
        (sorted(objects),),
    )


async def get_workflow_row(
    conn: Conn, p: Principal, workflow_id: int, *, for_update: bool = False
) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT w.*, v.definition FROM automation_workflows w JOIN automation_versions v"
        " ON v.workflow_id = w.id AND v.version = w.version WHERE w.id = %s"
        + (" FOR UPDATE OF w" if for_update else ""),
        (workflow_id,),
    )
    row = await cur.fetchone()
    if row is None or not _visible(p, row["owner_id"]):
        raise NotFound(f"workflow {workflow_id} not found", field="workflow_id")
    return row


async def set_active(conn: Conn, p: Principal, workflow_id: int, active: bool) -> dict[str, Any]:
    p.require_write()
    await get_workflow_row(conn, p, workflow_id, for_update=True)
    await conn.execute(
        "UPDATE automation_workflows SET active = %s, updated_at = now() WHERE id = %s",
        (active, workflow_id),
    )
    await refresh_watch(conn)
    return await get_workflow_row(conn, p, workflow_id)


async def list_workflows(
    conn: Conn, p: Principal, kind: str | None, limit: int
) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT w.*, v.definition FROM automation_workflows w JOIN automation_versions v"
        " ON v.workflow_id = w.id AND v.version = w.version"
        " WHERE (%s OR w.owner_id = ANY(%s)) AND (%s::text IS NULL OR w.kind = %s) ORDER BY w.id LIMIT %s",
        (p.is_admin, list(p.team_user_ids), kind, kind, limit),
    )
    return await cur.fetchall()


async def _record(conn: Conn, p: Principal, obj: str, record_id: int) -> dict[str, Any]:
    if obj not in d.RECORD_OBJECTS:
        raise Unprocessable(
            f"record_object: one of {', '.join(d.RECORD_OBJECTS)}", field="record_object"
        )
    row = await get_record(conn, ENTITIES[obj], p, record_id)
    out: dict[str, Any] = json.loads(json.dumps(row, default=str))
    return out


async def start_manual(
    conn: Conn,
    p: Principal,
    workflow_id: int,
    obj: str | None,
    record_id: int | None,
    data: dict[str, Any],
) -> int:
    """Start a run by hand, from a record the caller may see."""
    p.require_write()
    wf = await get_workflow_row(conn, p, workflow_id)
    if not wf["active"]:
        raise Conflict(f"workflow {workflow_id} is paused", code="paused")
    definition = d.decode(wf["definition"])
    record = None
    if obj is not None and definition.trigger.object not in (None, obj):
        raise Unprocessable(
            f"this workflow starts from a {definition.trigger.object} record, not {obj}",
            field="record_object",
        )
    if obj is not None and record_id is not None:
        record = await _record(conn, p, obj, record_id)
    elif definition.trigger.object is not None:
        raise Unprocessable(
            f"this workflow starts from a {definition.trigger.object} record", field="record_id"
        )
    return await runs.start(
        conn,
        workflow_id,
        int(wf["version"]),
        record_object=obj if record else None,
        record_id=str(record_id) if record else None,
        trigger={"event": "manual", "by_user": p.user_id, "record": record, "data": data},
        exit_on=[r.on for r in definition.exit_on],
        why=f"started by user {p.user_id}",
    )


async def enrol(
    conn: Conn, p: Principal, sequence_id: int, obj: str, ids: list[int]
) -> dict[str, Any]:
    """Enrol records in a sequence; a record with an active enrolment is skipped."""
    wf = await get_workflow_row(conn, p, sequence_id)
    if wf["kind"] != "sequence":
        raise Unprocessable(f"workflow {sequence_id} is not a sequence", field="sequence_id")
    enrolled, skipped = [], []
    for rid in ids:
        cur = await conn.execute(
            "SELECT 1 FROM automation_runs WHERE workflow_id = %s AND record_object = %s AND record_id = %s"
            " AND status IN ('ready', 'waiting')",
            (sequence_id, obj, str(rid)),
        )
        if await cur.fetchone() is not None:
            skipped.append(rid)
            continue
        enrolled.append(await start_manual(conn, p, sequence_id, obj, rid, {}))
    return {"run_ids": enrolled, "skipped": skipped}


async def emit_event(
    conn: Conn, event: str, record_object: str | None, record_id: str | None, data: dict[str, Any]
) -> int:
    """An outside event (e-mail replied, meeting booked, form submitted ...) for the matcher,
    in the caller's transaction: the interface engage, calendars and forms call."""
    d._check_event("event", event, allow_standalone=False)
    cur = await conn.execute(
        "INSERT INTO automation_changes (event, record_object, record_id, new) VALUES (%s, %s, %s, %s) RETURNING id",
        (event, record_object, record_id, Jsonb(data)),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def dry_run(
    conn: Conn, p: Principal, raw: Any, obj: str, record_id: int, old: dict[str, Any] | None
) -> dict[str, Any]:
    """What the definition would do for this record, without doing it: whether the trigger
    matches, and each step reached with its rendered input (branches decided, waits and
    loops described)."""
    definition = decode_or_422(raw)
    record = await _record(conn, p, obj, record_id)
    trig = definition.trigger
    matches = compile_all(trig.when)(old, record)
    ctx: dict[str, Any] = {"record": record, "old": old, "trigger": {"event": trig.on}, "steps": {}}
    plan: list[dict[str, Any]] = []

    def walk(steps: list[d.Step], depth: int) -> None:
        for s in steps:
            entry: dict[str, Any] = {
                "step": s.id,
                "action": str(type(s).__struct_config__.tag),
                "depth": depth,
            }
            if isinstance(s, d.Branch):
                took = compile_all(s.when, s.match)(old, {**record, "steps": ctx["steps"]})
                entry["took"] = "then" if took else "otherwise"
                plan.append(entry)
                walk(s.then if took else s.otherwise, depth + 1)
                continue
            if isinstance(s, d.ForEach):
                entry["note"] = f"for each related {s.object} (up to {s.limit})"
                plan.append(entry)
                walk(s.steps, depth + 1)
                continue
            data = msgspec.to_builtins(s)
            data.pop("secret", None)
            entry["input"] = render(
                {k: v for k, v in data.items() if k not in ("id", "action")}, ctx
            )
            plan.append(entry)

    walk(definition.steps, 0)
    return {"trigger_matches": matches, "steps": plan}


VOICE_REPEAT_S = 60  # the same voice command of one user starts one run in this window


async def voice_commands(conn: Conn) -> list[dict[str, Any]]:
    """The active voice-triggered workflows: id, version, name, phrases, roles, object (the
    assistant matches what users say against their phrases)."""
    cur = await conn.execute(
        "SELECT w.id, w.version, w.name, v.definition FROM automation_workflows w"
        " JOIN automation_versions v ON v.workflow_id = w.id AND v.version = w.version"
        " WHERE w.active AND w.trigger_on = 'voice' ORDER BY w.id LIMIT 200"
    )
    out = []
    for wid, version, name, raw in await cur.fetchall():
        try:
            trig = d.decode(raw).trigger
        except d.DefinitionError:
            continue  # saved by an older version and no longer valid: not offered
        out.append(
            {
                "workflow_id": int(wid),
                "version": int(version),
                "name": str(name),
                "phrases": list(trig.phrases),
                "roles": list(trig.roles),
                "object": trig.object,
            }
        )
    return out


async def start_voice(
    conn: Conn,
    p: Principal,
    workflow_id: int,
    *,
    text: str,
    phrase: str,
    record_object: str | None = None,
    record_id: int | None = None,
) -> tuple[int, bool]:
    """Start a voice-triggered workflow for the user who said it: (run id, started). A user
    saying the same command again within VOICE_REPEAT_S gets the run already started
    (a repeated confirmation, a retried request), so one command starts one run."""
    p.require_write()
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT w.id, w.version, w.active, v.definition FROM automation_workflows w"
        " JOIN automation_versions v ON v.workflow_id = w.id AND v.version = w.version"
        " WHERE w.id = %s AND w.trigger_on = 'voice'",
        (workflow_id,),
    )
    wf = await cur.fetchone()
    if wf is None or not wf["active"]:
        raise NotFound(f"no active voice workflow {workflow_id}", field="workflow_id")
    definition = d.decode(wf["definition"])
    roles = definition.trigger.roles
    if roles and p.role not in roles:
        raise Forbidden(f"this command is for {', '.join(roles)} users")
    # one at a time per user and workflow, so two confirmations cannot both start a run
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('automation.voice'), hashtext(%s))",
        (f"{workflow_id}:{p.user_id}",),
    )
    await cur.execute(
        "SELECT id FROM automation_runs WHERE workflow_id = %s AND trigger->>'event' = 'voice'"
        " AND (trigger->>'by_user')::bigint = %s"
        " AND created_at > clock_timestamp() - make_interval(secs => %s)"
        " ORDER BY id DESC LIMIT 1",
        (workflow_id, p.user_id, VOICE_REPEAT_S),
    )
    recent = await cur.fetchone()
    if recent is not None:
        return int(recent["id"]), False
    record = None
    if record_object is not None and record_id is not None:
        record = await _record(conn, p, record_object, record_id)
    run_id = await runs.start(
        conn,
        workflow_id,
        int(wf["version"]),
        record_object=record_object if record else None,
        record_id=str(record_id) if record else None,
        trigger={
            "event": "voice",
            "by_user": p.user_id,
            "text": text[:500],
            "phrase": phrase[:200],
            "record": record,
        },
        exit_on=[r.on for r in definition.exit_on],
        why=f"said by user {p.user_id}: {text[:200]}",
    )
    return run_id, True


async def workflow_names(conn: Conn, ids: list[int]) -> dict[int, str]:
    """Names of these workflows (for figures that name the workflow a command started)."""
    cur = await conn.execute("SELECT id, name FROM automation_workflows WHERE id = ANY(%s)", (ids,))
    return {int(i): str(n) for i, n in await cur.fetchall()}
