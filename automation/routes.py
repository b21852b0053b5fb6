"""HTTP API of automation: workflow definitions (JSON Schema, save with versions, import and
export, dry run, pause), runs and their history, the per-record activity log, sequences
(enrolment, analytics), outside events, and signed inbound webhooks.

Who sees what: a user sees and edits their own workflows, a manager their team's, an admin
all (others answer 404). A workflow acts with its owner's rights; starting one by hand
needs a record the caller may see. The console's builder uses these endpoints.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from psycopg.rows import dict_row

from automation import definition as d
from automation import service
from crm.entities import ENTITIES
from crm.store import get_record
from crm_sync.errors import BadSignature
from crm_sync.signing import HEADER, verify
from kernel.errors import ApiError, NotFound, Unprocessable
from kernel.http import Access, RawBody, Reply, Req, Routes

routes = Routes("automation", "User-defined workflows, sequences, their runs and history")
STATIC = Path(__file__).parent / "static"
_PAGE = "the workflow builder's files (no data; the page signs in through the console's session)"

Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=500)]
Kind = Literal["workflow", "sequence"]
ObjectName = Literal["accounts", "contacts", "leads", "opportunities", "activities", "work_orders"]
RunStatus = Literal["ready", "waiting", "completed", "failed", "stopped", "exited"]
MAX_DEFINITION_BYTES = 256 * 1024
EXPORT_FORMAT = "fieldmesh.automation/v1"


class WorkflowPath(msgspec.Struct, frozen=True):
    workflow_id: Id


class WorkflowVersionPath(msgspec.Struct, frozen=True):
    workflow_id: Id
    version: Annotated[int, msgspec.Meta(ge=1, le=10**6)]


class RunPath(msgspec.Struct, frozen=True):
    run_id: Id


class RecordLogPath(msgspec.Struct, frozen=True):
    record_object: ObjectName
    record_id: Id


class WorkflowListQuery(msgspec.Struct, frozen=True):
    kind: Kind | None = None
    limit: Limit = 200


class RunListQuery(msgspec.Struct, frozen=True):
    status: RunStatus | None = None
    limit: Limit = 50


class WorkflowIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    definition: dict[str, Any] = msgspec.field(name="definition")
    kind: Kind = "workflow"


class WorkflowImport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: Literal["fieldmesh.automation/v1"]
    definition: dict[str, Any]
    kind: Kind = "workflow"
    version: Annotated[int, msgspec.Meta(ge=1)] | None = None  # the exported one (informative)


class WorkflowOut(msgspec.Struct, frozen=True):
    id: int
    name: str
    kind: str
    owner_id: int
    active: bool
    version: int
    trigger_on: str
    definition: dict[str, Any]
    dropped_triggers: int
    last_error: str | None
    inbound_secret: str | None
    created_at: datetime
    updated_at: datetime


class WorkflowPage(msgspec.Struct, frozen=True):
    items: list[WorkflowOut]


class WorkflowExport(msgspec.Struct, frozen=True):
    format: str
    kind: str
    version: int
    definition: dict[str, Any]


class DryRunIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    definition: dict[str, Any]
    record_object: ObjectName
    record_id: Id
    old: dict[str, Any] | None = None  # the record before the change, to test change conditions


class DryRunStep(msgspec.Struct, frozen=True):
    step: str
    action: str
    depth: int
    input: dict[str, Any] | None = None
    took: str | None = None
    note: str | None = None


class DryRunOut(msgspec.Struct, frozen=True):
    trigger_matches: bool
    steps: list[DryRunStep]


class RunStartIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    record_object: ObjectName | None = None
    record_id: Id | None = None
    data: dict[str, Any] = {}


class RunStartOut(msgspec.Struct, frozen=True):
    run_id: int


class RunOut(msgspec.Struct, frozen=True):
    id: int
    workflow_id: int
    version: int
    status: str
    record_object: str | None
    record_id: str | None
    depth: int
    chain: list[int]
    parent_run_id: int | None
    wake_at: datetime | None
    wait_event: str | None
    exit_reason: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class RunPage(msgspec.Struct, frozen=True):
    items: list[RunOut]


class RunStepOut(msgspec.Struct, frozen=True):
    seq: int
    step_id: str
    action: str
    status: str
    input: Any
    output: Any
    error: str | None
    idempotency_key: str
    wake_at: datetime | None
    started_at: datetime
    finished_at: datetime | None


class RunEventOut(msgspec.Struct, frozen=True):
    at: datetime
    kind: str
    step_id: str | None
    message: str


class RunDetail(msgspec.Struct, frozen=True):
    run: RunOut
    trigger: dict[str, Any]
    steps: list[RunStepOut]
    history: list[RunEventOut]


class RecordLogEntry(msgspec.Struct, frozen=True):
    at: datetime
    workflow_id: int
    run_id: int
    step_id: str
    action: str
    summary: str


class RecordLogPage(msgspec.Struct, frozen=True):
    items: list[RecordLogEntry]


class EnrolIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    record_object: Literal["contacts", "leads"]
    ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=500)]


class EnrolOut(msgspec.Struct, frozen=True):
    run_ids: list[int]
    skipped: list[int]


class SequenceStepStats(msgspec.Struct, frozen=True):
    step_id: str
    reached: int
    opened: int
    replied: int


class SequenceAnalytics(msgspec.Struct, frozen=True):
    enrolled: int
    active: int
    completed: int
    failed: int
    replied: int
    meeting_booked: int
    converted: int
    unsubscribed: int
    exited: dict[str, int]
    steps: list[SequenceStepStats]


class OutsideEventIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    event: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z_]{0,39}\.[a-z][a-z_]{0,39}$")]
    record_object: ObjectName | None = None
    record_id: Id | None = None
    data: dict[str, Any] = {}


class OutsideEventOut(msgspec.Struct, frozen=True):
    change_id: int


def _out(row: dict[str, Any]) -> WorkflowOut:
    return WorkflowOut(
        row["id"], row["name"], row["kind"], row["owner_id"], row["active"], row["version"],
        row["trigger_on"], row["definition"], row["dropped_triggers"], row["last_error"],
        row["inbound_secret"], row["created_at"], row["updated_at"],
    )  # fmt: skip


def _run_out(r: dict[str, Any]) -> RunOut:
    return RunOut(
        r["id"], r["workflow_id"], r["version"], r["status"], r["record_object"], r["record_id"],
        r["depth"], list(r["chain"]), r["parent_run_id"], r["wake_at"], r["wait_event"],
        r["exit_reason"], r["error"], r["created_at"], r["finished_at"],
    )  # fmt: skip


async def workflow_scope(req: Req, path: Any) -> None:
    async with req.connection() as conn:
        await service.get_workflow_row(conn, req.user, path.workflow_id)


async def run_scope(req: Req, path: RunPath) -> None:
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT workflow_id FROM automation_runs WHERE id = %s", (path.run_id,)
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"run {path.run_id} not found", field="run_id")
        try:
            await service.get_workflow_row(conn, req.user, int(row[0]))
        except NotFound:
            raise NotFound(f"run {path.run_id} not found", field="run_id") from None


async def record_scope(req: Req, path: RecordLogPath) -> None:
    async with req.connection() as conn:
        await get_record(conn, ENTITIES[path.record_object], req.user, path.record_id)


OWN = "a caller sees their own workflows, a manager their team's, an admin all"


@routes.get(
    "/api/v1/automation/schema",
    access=Access.read(unscoped="the schema holds no data"),
    summary="The JSON Schema of a workflow definition",
)
async def schema(req: Req) -> dict[str, Any]:
    return d.json_schema()


@routes.get(
    "/api/v1/automation/workflows",
    access=Access.read(unscoped=OWN),
    summary="Workflows and sequences the caller may see",
)
async def list_workflows(req: Req, query: WorkflowListQuery) -> WorkflowPage:
    async with req.connection() as conn:
        rows = await service.list_workflows(conn, req.user, query.kind, query.limit)
    return WorkflowPage([_out(r) for r in rows])


@routes.post(
    "/api/v1/automation/workflows",
    access=Access.write(unscoped="the new workflow is the caller's own"),
    summary="Save a new workflow (validated; errors name the step)",
    status=201,
    max_body_bytes=MAX_DEFINITION_BYTES,
)
async def create_workflow(req: Req, body: WorkflowIn) -> WorkflowOut:
    async with req.connection() as conn:
        return _out(await service.save(conn, req.user, body.definition, kind=body.kind))


@routes.post(
    "/api/v1/automation/workflows/import",
    access=Access.write(unscoped="the imported workflow is the caller's own"),
    summary="Import an exported workflow as a new one",
    status=201,
    max_body_bytes=MAX_DEFINITION_BYTES,
)
async def import_workflow(req: Req, body: WorkflowImport) -> WorkflowOut:
    async with req.connection() as conn:
        return _out(await service.save(conn, req.user, body.definition, kind=body.kind))


@routes.get(
    "/api/v1/automation/workflows/{workflow_id}",
    access=Access.read(scope=workflow_scope),
    summary="A workflow and its current definition",
)
async def get_workflow(req: Req, path: WorkflowPath) -> WorkflowOut:
    async with req.connection() as conn:
        return _out(await service.get_workflow_row(conn, req.user, path.workflow_id))


@routes.put(
    "/api/v1/automation/workflows/{workflow_id}",
    access=Access.write(scope=workflow_scope),
    summary="Save a new version (running instances keep theirs)",
    max_body_bytes=MAX_DEFINITION_BYTES,
)
async def put_workflow(req: Req, path: WorkflowPath, body: WorkflowIn) -> WorkflowOut:
    async with req.connection() as conn:
        return _out(await service.save(conn, req.user, body.definition, path.workflow_id))


@routes.post(
    "/api/v1/automation/workflows/{workflow_id}/pause",
    access=Access.write(scope=workflow_scope),
    summary="Stop starting new runs",
)
async def pause(req: Req, path: WorkflowPath) -> WorkflowOut:
    async with req.connection() as conn:
        return _out(await service.set_active(conn, req.user, path.workflow_id, False))


@routes.post(
    "/api/v1/automation/workflows/{workflow_id}/activate",
    access=Access.write(scope=workflow_scope),
    summary="Start runs again",
)
async def activate(req: Req, path: WorkflowPath) -> WorkflowOut:
    async with req.connection() as conn:
        return _out(await service.set_active(conn, req.user, path.workflow_id, True))


@routes.get(
    "/api/v1/automation/workflows/{workflow_id}/export",
    access=Access.read(scope=workflow_scope),
    summary="The current definition, to import elsewhere",
)
async def export(req: Req, path: WorkflowPath) -> WorkflowExport:
    async with req.connection() as conn:
        row = await service.get_workflow_row(conn, req.user, path.workflow_id)
    return WorkflowExport(EXPORT_FORMAT, row["kind"], row["version"], row["definition"])


@routes.get(
    "/api/v1/automation/workflows/{workflow_id}/versions/{version}",
    access=Access.read(scope=workflow_scope),
    summary="One saved version of a definition",
)
async def get_version(req: Req, path: WorkflowVersionPath) -> WorkflowExport:
    async with req.connection() as conn:
        row = await service.get_workflow_row(conn, req.user, path.workflow_id)
        cur = await conn.execute(
            "SELECT definition FROM automation_versions WHERE workflow_id = %s AND version = %s",
            (path.workflow_id, path.version),
        )
        got = await cur.fetchone()
    if got is None:
        raise NotFound(
            f"workflow {path.workflow_id} has no version {path.version}", field="version"
        )
    return WorkflowExport(EXPORT_FORMAT, row["kind"], path.version, got[0])


@routes.post(
    "/api/v1/automation/dry-run",
    access=Access.read(unscoped="the record is read with the caller's rights (404 otherwise)"),
    summary="What a definition would do for a record, doing nothing",
    max_body_bytes=MAX_DEFINITION_BYTES,
)
async def dry_run(req: Req, body: DryRunIn) -> DryRunOut:
    async with req.connection() as conn:
        out = await service.dry_run(
            conn, req.user, body.definition, body.record_object, body.record_id, body.old
        )
    return msgspec.convert(out, DryRunOut)


@routes.post(
    "/api/v1/automation/workflows/{workflow_id}/runs",
    access=Access.write(scope=workflow_scope),
    summary="Start a run by hand, from a record the caller may see",
    status=201,
)
async def start_run(req: Req, path: WorkflowPath, body: RunStartIn) -> RunStartOut:
    if (body.record_object is None) != (body.record_id is None):
        raise Unprocessable("record_object and record_id go together", field="record_id")
    async with req.connection() as conn:
        rid = await service.start_manual(
            conn, req.user, path.workflow_id, body.record_object, body.record_id, body.data
        )
    return RunStartOut(rid)


@routes.get(
    "/api/v1/automation/workflows/{workflow_id}/runs",
    access=Access.read(scope=workflow_scope),
    summary="A workflow's runs, newest first",
)
async def list_runs(req: Req, path: WorkflowPath, query: RunListQuery) -> RunPage:
    async with req.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT * FROM automation_runs WHERE workflow_id = %s AND (%s::text IS NULL OR status = %s)"
            " ORDER BY id DESC LIMIT %s",
            (path.workflow_id, query.status, query.status, query.limit),
        )
        rows = await cur.fetchall()
    return RunPage([_run_out(r) for r in rows])


@routes.get(
    "/api/v1/automation/runs/{run_id}",
    access=Access.read(scope=run_scope),
    summary="A run's history: trigger, each step's input, output and error, retries",
)
async def get_run(req: Req, path: RunPath) -> RunDetail:
    async with req.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT * FROM automation_runs WHERE id = %s", (path.run_id,))
        run = await cur.fetchone()
        assert run is not None
        await cur.execute(
            "SELECT seq, step_id, action, status, input, output, error, idempotency_key, wake_at, started_at,"
            " finished_at FROM automation_steps WHERE run_id = %s ORDER BY seq",
            (path.run_id,),
        )
        steps = [RunStepOut(**r) for r in await cur.fetchall()]
        await cur.execute(
            "SELECT at, kind, step_id, message FROM automation_run_events WHERE run_id = %s ORDER BY id",
            (path.run_id,),
        )
        history = [RunEventOut(**r) for r in await cur.fetchall()]
    return RunDetail(_run_out(run), run["trigger"], steps, history)


@routes.get(
    "/api/v1/automation/records/{record_object}/{record_id}/log",
    access=Access.read(scope=record_scope),
    summary="What automation did to this record",
)
async def record_log(req: Req, path: RecordLogPath, query: RunListQuery) -> RecordLogPage:
    async with req.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT at, workflow_id, run_id, step_id, action, summary FROM automation_record_log"
            " WHERE record_object = %s AND record_id = %s ORDER BY id DESC LIMIT %s",
            (path.record_object, str(path.record_id), query.limit),
        )
        return RecordLogPage([RecordLogEntry(**r) for r in await cur.fetchall()])


@routes.post(
    "/api/v1/automation/sequences/{workflow_id}/enrolments",
    access=Access.write(scope=workflow_scope),
    summary="Enrol contacts or leads (one active enrolment per record)",
    status=201,
)
async def enrol(req: Req, path: WorkflowPath, body: EnrolIn) -> EnrolOut:
    async with req.connection() as conn:
        out = await service.enrol(
            conn, req.user, path.workflow_id, body.record_object, list(body.ids)
        )
    return EnrolOut(out["run_ids"], out["skipped"])


@routes.get(
    "/api/v1/automation/sequences/{workflow_id}/analytics",
    access=Access.read(scope=workflow_scope),
    summary="Enrolled, active, replied, converted; per step reached, opened, replied",
)
async def analytics(req: Req, path: WorkflowPath) -> SequenceAnalytics:
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT status, exit_reason, count(*) FROM automation_runs WHERE workflow_id = %s GROUP BY 1, 2",
            (path.workflow_id,),
        )
        by: dict[tuple[str, str | None], int] = {(s, e): int(n) for s, e, n in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT s.step_id, count(*) FROM automation_steps s JOIN automation_runs r ON r.id = s.run_id"
            " WHERE r.workflow_id = %s AND s.status = 'done' GROUP BY 1",
            (path.workflow_id,),
        )
        reached = {str(s): int(n) for s, n in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT e.step_id, e.kind, count(DISTINCT e.run_id) FROM automation_run_events e"
            " JOIN automation_runs r ON r.id = e.run_id WHERE r.workflow_id = %s"
            " AND e.kind IN ('email.opened', 'email.replied', 'sms.replied') AND e.step_id IS NOT NULL GROUP BY 1, 2",
            (path.workflow_id,),
        )
        per: dict[tuple[str, str], int] = {
            (str(s), str(k)): int(n) for s, k, n in await cur.fetchall()
        }
        wf = await service.get_workflow_row(conn, req.user, path.workflow_id)
    exited: dict[str, int] = {}
    for (status, reason), n in by.items():
        if status == "exited" and reason:
            exited[reason] = exited.get(reason, 0) + n
    order = [s.id for s, _ in d.walk(d.decode(wf["definition"]).steps)]
    steps = [
        SequenceStepStats(sid, reached.get(sid, 0), per.get((sid, "email.opened"), 0),
                  per.get((sid, "email.replied"), 0) + per.get((sid, "sms.replied"), 0))
        for sid in order
    ]  # fmt: skip
    return SequenceAnalytics(
        enrolled=sum(by.values()),
        active=sum(n for (s, _), n in by.items() if s in ("ready", "waiting")),
        completed=sum(n for (s, _), n in by.items() if s == "completed"),
        failed=sum(n for (s, _), n in by.items() if s == "failed"),
        replied=exited.get("email.replied", 0) + exited.get("sms.replied", 0),
        meeting_booked=exited.get("meeting.booked", 0),
        converted=exited.get("lead.converted", 0),
        unsubscribed=exited.get("email.unsubscribed", 0) + exited.get("sms.unsubscribed", 0),
        exited=exited,
        steps=steps,
    )


@routes.post(
    "/api/v1/automation/events",
    access=Access.admin(),
    summary="Report an outside event (e-mail replied, meeting booked ...) to the matcher",
    status=202,
)
async def post_event(req: Req, body: OutsideEventIn) -> OutsideEventOut:
    try:
        async with req.connection() as conn:
            cid = await service.emit_event(
                conn,
                body.event,
                body.record_object,
                str(body.record_id) if body.record_id else None,
                body.data,
            )
    except d.DefinitionError as exc:
        raise Unprocessable(exc.message, field="event") from None
    return OutsideEventOut(cid)


@routes.post(
    "/api/v1/automation/hooks/{workflow_id}",
    access=Access.public(
        "signed with the workflow's inbound secret (Fieldmesh-Signature), checked before anything is read"
    ),
    summary="Start a webhook-triggered workflow (signed JSON body)",
    body=RawBody(("application/json",), "any JSON object, signed"),
    status=202,
    max_body_bytes=64 * 1024,
    errors=(401,),
)
async def inbound(req: Req, path: WorkflowPath, body: bytes) -> Reply[RunStartOut]:
    from automation import runs

    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT inbound_secret, version, active FROM automation_workflows WHERE id = %s AND trigger_on = 'webhook'",
            (path.workflow_id,),
        )
        row = await cur.fetchone()
        if row is None or row[0] is None:
            raise NotFound(f"no webhook workflow {path.workflow_id}", field="workflow_id")
        try:
            verify(str(row[0]).encode(), req.header(HEADER), body, time.time())
        except BadSignature as exc:
            raise ApiError(str(exc), code="bad_signature", status=401) from None
        try:
            data = msgspec.json.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise Unprocessable("the body is not JSON", field="body") from None
        if not isinstance(data, dict):
            raise Unprocessable("the body must be a JSON object", field="body")
        if not row[2]:
            raise ApiError(f"workflow {path.workflow_id} is paused", code="paused", status=409)
        rid = await runs.start(
            conn, path.workflow_id, int(row[1]), record_object=None, record_id=None,
            trigger={"event": "webhook", "data": data}, why="inbound webhook",
        )  # fmt: skip
    return Reply(RunStartOut(rid), status=202)


def setup(app: web.Application) -> None:
    routes.mount(app)


@routes.get(
    "/automation/builder/",
    access=Access.public(_PAGE),
    summary="The workflow builder page",
    content_type="text/html",
)
async def builder_page(req: Req) -> web.StreamResponse:
    return web.FileResponse(
        STATIC / "builder.html", headers={"Content-Type": "text/html", "Cache-Control": "no-cache"}
    )


@routes.get(
    "/automation/builder/builder.js",
    access=Access.public(_PAGE),
    summary="The workflow builder's script",
    content_type="application/javascript",
)
async def builder_script(req: Req) -> web.StreamResponse:
    return web.FileResponse(
        STATIC / "builder.js",
        headers={"Content-Type": "application/javascript", "Cache-Control": "no-cache"},
    )
