"""What each step does to the world, in the step's transaction (the engine journals it in
the same one). Every record write goes through `crm.store` as the workflow's owner, so the
owner's record-level rights apply: a workflow never writes what its owner may not.

An action returns its output (journaled, visible in the run's history, readable by later
steps as `steps.<id>`) and the records it touched (the per-record activity log).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from automation import definition as d
from automation.channels import Channel, Message
from automation.template import render
from crm.entities import ENTITIES
from crm.store import create_record, get_record, update_record
from kernel.errors import Unprocessable
from kernel.principal import Principal
from notify.service import notify_user

Conn = AsyncConnection[Any]

# the activity column that links a task to the run's record
LINK = {
    "accounts": "account_id",
    "contacts": "contact_id",
    "leads": "lead_id",
    "opportunities": "opportunity_id",
    "work_orders": "work_order_id",
}


@dataclass(slots=True)
class RunView:
    """What an action knows about its run."""

    run_id: int
    workflow_id: int
    seq: int
    owner: Principal
    record_object: str | None
    record_id: str | None
    ctx: dict[str, Any]  # record, old, trigger, steps, item, run
    kind: str = "workflow"  # or "sequence"


@dataclass(slots=True)
class Outcome:
    output: dict[str, Any]
    touched: list[tuple[str, str, str]] = field(default_factory=list)  # object, id, summary


class ActionError(Unprocessable):
    """The step cannot do what it says (bad target, no candidate): the run fails."""


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(row, default=str))
    return out


async def _users_of(conn: Conn, recipient: d.Recipient, run: RunView) -> int | None:
    rec = run.ctx.get("item") or run.ctx.get("record") or {}
    if isinstance(recipient, int):
        return recipient
    if recipient == "workflow_owner":
        return run.owner.user_id
    if recipient in ("triggered_by", "triggered_by_manager"):
        # the user who started the run by hand or by voice (trigger.by_user), or their manager
        by = (run.ctx.get("trigger") or {}).get("by_user")
        if by is None or recipient == "triggered_by":
            return int(by) if by is not None else None
        rec = {"owner_id": by}
    if recipient == "assignee":
        v = rec.get("assignee_id") or rec.get("owner_id")
        return int(v) if v is not None else None
    owner = rec.get("owner_id")
    if recipient == "record_owner":
        return int(owner) if owner is not None else None
    if owner is None:
        return None
    cur = await conn.execute("SELECT manager_id FROM users WHERE id = %s", (owner,))
    row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _target(run: RunView, which: str = "record") -> tuple[str, int]:
    if which == "item":
        item = run.ctx.get("item")
        if not item:
            raise ActionError("target item: not inside a for_each loop", field="target")
        return str(item["_object"]), int(item["id"])
    if run.record_object is None or run.record_id is None:
        raise ActionError("this run has no record to act on", field="target")
    return run.record_object, int(run.record_id)


def _prepare(obj: str, values: dict[str, Any]) -> dict[str, Any]:
    """Template output as crm.store takes it: JSON and geometry columns as JSON text."""
    entity = ENTITIES[obj]
    out = dict(values)
    for name, v in values.items():
        f = entity.field(name)
        if f is None or not f.write:
            raise ActionError(f"{obj} has no writable field {name!r}", field=name)
        if (
            f.kind in ("object", "array", "point", "multipolygon")
            and v is not None
            and not isinstance(v, str)
        ):
            out[name] = json.dumps(v)
    return out


async def create_record_action(conn: Conn, s: d.CreateRecord, run: RunView, _env: Any) -> Outcome:
    values = _prepare(s.object, render(s.values, run.ctx))
    row = await create_record(conn, ENTITIES[s.object], run.owner, values)
    return Outcome(
        {"id": row["id"], "object": s.object},
        [(s.object, str(row["id"]), f"created {ENTITIES[s.object].singular} {row['id']}")],
    )


async def update_record_action(conn: Conn, s: d.UpdateRecord, run: RunView, _env: Any) -> Outcome:
    obj, rid = _target(run, s.target)
    entity = ENTITIES[obj]
    values = _prepare(obj, render(s.values, run.ctx))
    row = await update_record(conn, entity, run.owner, rid, values, None, check_etag=False)
    summary = "set " + ", ".join(f"{k}={values[k]!r}" for k in sorted(values))
    return Outcome(
        {"id": rid, "object": obj, "values": _jsonable(values), "version": row.get("version")},
        [(obj, str(rid), summary[:500])],
    )


async def create_task_action(conn: Conn, s: d.CreateTask, run: RunView, env: Any) -> Outcome:
    owner = await _users_of(conn, s.owner, run)
    now: datetime = env.clock.now()
    values: dict[str, Any] = {
        "type": s.type,
        "subject": str(render(s.subject, run.ctx))[:500] or s.id,
        "body": str(render(s.body, run.ctx)),
        "due_at": now + timedelta(seconds=s.due_in_s),
        "source": "automation",
        "source_ref": f"run:{run.run_id}:{run.seq}",
    }
    if owner is not None:
        values["owner_id"] = owner
    if run.record_object in LINK and run.record_id is not None:
        values[LINK[run.record_object]] = int(run.record_id)
    row = await create_record(conn, ENTITIES["activities"], run.owner, values)
    touched = [("activities", str(row["id"]), f"created {s.type} {row['id']}")]
    if run.record_object and run.record_id:
        touched.append(
            (
                run.record_object,
                run.record_id,
                f"created {s.type} {row['id']}: {values['subject'][:200]}",
            )
        )
    return Outcome(
        {"activity_id": row["id"], "owner_id": owner, "due_at": values["due_at"].isoformat()},
        touched,
    )


async def _load(conn: Conn, user_ids: list[int]) -> dict[int, int]:
    """Open work per user: open activities plus open work orders assigned."""
    cur = await conn.execute(
        """
        SELECT u.id,
               (SELECT count(*) FROM activities a WHERE a.owner_id = u.id AND a.status = 'open')
             + (SELECT count(*) FROM work_orders w WHERE w.assignee_id = u.id
                  AND w.status NOT IN ('done', 'cancelled'))
        FROM users u WHERE u.id = ANY(%s) AND u.active
        """,
        (user_ids,),
    )
    return {int(r[0]): int(r[1]) for r in await cur.fetchall()}


async def assign_action(conn: Conn, s: d.Assign, run: RunView, _env: Any) -> Outcome:
    obj, rid = _target(run)
    rec = run.ctx.get("record") or {}
    chosen: int | None = None
    if s.strategy == "round_robin":
        if not s.users:
            raise ActionError("round_robin needs users", field="users")
        cur = await conn.execute(
            "INSERT INTO automation_cursors (workflow_id, step_id) VALUES (%s, %s)"
            " ON CONFLICT (workflow_id, step_id) DO UPDATE SET step_id = EXCLUDED.step_id"
            " RETURNING last_user_id",
            (run.workflow_id, s.id),
        )
        row = await cur.fetchone()
        last = row[0] if row else None
        active = [u for u in s.users if u in await _load(conn, list(s.users))]
        if not active:
            raise ActionError("round_robin: none of the users is active", field="users")
        after = [
            u
            for u in active
            if last is not None and active.index(u) > (active.index(last) if last in active else -1)
        ]
        chosen = after[0] if after else active[0]
        await conn.execute(
            "UPDATE automation_cursors SET last_user_id = %s WHERE workflow_id = %s AND step_id = %s",
            (chosen, run.workflow_id, s.id),
        )
    else:
        candidates = list(s.users)
        if s.strategy == "territory" or (not candidates and s.strategy != "skills"):
            territory = rec.get("territory_id")
            if territory is None:
                raise ActionError("the record has no territory", field="strategy")
            cur = await conn.execute(
                "SELECT id FROM users WHERE territory_id = %s AND active AND role IN ('rep', 'manager')",
                (territory,),
            )
            candidates = [int(r[0]) for r in await cur.fetchall()]
        if s.strategy == "skills":
            needed = list(s.skills) or list(rec.get("required_skills") or [])
            cur = await conn.execute(
                "SELECT id FROM users WHERE active AND role IN ('rep', 'manager') AND skills @> %s"
                " AND (cardinality(%s::bigint[]) = 0 OR id = ANY(%s::bigint[]))",
                (needed, candidates, candidates),
            )
            candidates = [int(r[0]) for r in await cur.fetchall()]
        load = await _load(conn, candidates)
        if load:
            chosen = min(load, key=lambda u: (load[u], u))
    if chosen is None:
        raise ActionError(f"{s.strategy}: no user to assign", field="strategy")
    await update_record(
        conn, ENTITIES[obj], run.owner, rid, {s.field: chosen}, None, check_etag=False
    )
    return Outcome(
        {"user_id": chosen, "strategy": s.strategy},
        [(obj, str(rid), f"assigned {s.field} to user {chosen} ({s.strategy})")],
    )


async def notify_action(conn: Conn, s: d.Notify, run: RunView, _env: Any) -> Outcome:
    sent: list[int] = []
    link = (
        f"/console/{run.record_object}/{run.record_id}"
        if run.record_object and run.record_id
        else None
    )
    for r in s.to:
        uid = await _users_of(conn, r, run)
        if uid is None:
            continue
        nid = await notify_user(
            conn,
            user_id=uid,
            kind="automation",
            title=str(render(s.title, run.ctx)) or s.id,
            body=str(render(s.body, run.ctx)),
            link=link,
            urgent=s.urgent,
            dedupe_key=f"automation:{run.run_id}:{run.seq}:{uid}",
        )
        if nid is not None:
            sent.append(uid)
    touched = (
        [(run.record_object, run.record_id, f"notified users {sent}")]
        if run.record_object and run.record_id and sent
        else []
    )
    return Outcome({"notified": sent}, touched)


async def send_message_action(conn: Conn, s: d.SendMessage, run: RunView, env: Any) -> Outcome:
    rec = run.ctx.get("record") or {}
    address = rec.get("email") if s.channel == "email" else rec.get("phone")
    if not address:
        raise ActionError(
            f"the record has no {'email' if s.channel == 'email' else 'phone'}", field="channel"
        )
    channel: Channel = env.channel
    out = await channel.send(
        conn,
        Message(
            s.channel,
            run.record_object,
            run.record_id,
            str(address),
            str(render(s.subject, run.ctx)),
            str(render(s.body, run.ctx)),
            f"automation:{run.run_id}:{run.seq}",
            run.run_id,
            sender_user_id=run.owner.user_id,
            template=s.template,
            purpose=s.purpose or ("marketing" if run.kind == "sequence" else None),
        ),
    )
    touched = (
        [(run.record_object, run.record_id, f"sent {s.channel} to {address}")]
        if run.record_object and run.record_id
        else []
    )
    return Outcome(out, touched)


async def send_report_action(conn: Conn, s: d.SendReport, run: RunView, env: Any) -> Outcome:
    """The saved report, run as the owner (only rows the owner may see), as attachments to
    each recipient; one idempotency key per recipient, derived from the step's."""
    from automation.report_files import render_files
    from crm.report_routes import get_report
    from crm.reports import run_report

    saved = await get_report(conn, run.owner, s.report_id)  # 404 unless the owner may see it
    result = await run_report(conn, run.owner, saved.definition)
    files = render_files(result, saved.name, list(dict.fromkeys(s.formats)))
    to = list(dict.fromkeys(a.strip().lower() for a in s.to))
    if s.to_users:
        cur = await conn.execute(
            "SELECT id, email FROM users WHERE id = ANY(%s) AND active", (list(s.to_users),)
        )
        found = {int(r[0]): str(r[1]) for r in await cur.fetchall()}
        missing = [u for u in s.to_users if u not in found]
        if missing:
            raise ActionError(f"no active users {missing}", field="to_users")
        to += [found[u].lower() for u in s.to_users if found[u].lower() not in to]
    ctx = {**run.ctx, "report": {"id": saved.id, "name": saved.name, "rows": len(result.rows)}}
    channel: Channel = env.channel
    sent = []
    for i, address in enumerate(to):
        out = await channel.send(
            conn,
            Message(
                "email", None, None, address,
                str(render(s.subject, ctx)), str(render(s.body, ctx)),
                f"automation:{run.run_id}:{run.seq}:{i}", run.run_id,
                sender_user_id=run.owner.user_id, purpose="transactional", attachments=files,
            ),
        )  # fmt: skip
        sent.append(out)
    return Outcome(
        {
            "report_id": saved.id,
            "rows": len(result.rows),
            "truncated": result.truncated,
            "files": [f.filename for f in files],
            "sent": sent,
        }
    )


async def replan_action(conn: Conn, s: d.Replan, run: RunView, env: Any) -> Outcome:
    from routing.crm_source import PlanRequest
    from routing.jobs import enqueue_plan
    from routing.store import create_plan

    rec = run.ctx.get("record") or {}
    territory = rec.get("territory_id")
    if territory is None:
        raise ActionError("the record has no territory to re-plan", field="replan")
    if not run.owner.sees_everything and territory not in run.owner.team_territory_ids:
        raise ActionError(
            f"the workflow's owner may not plan territory {territory}", field="replan"
        )
    plan_id = await create_plan(
        conn, PlanRequest((int(territory),), env.clock.now().date(), s.cpu_s), run.owner.user_id
    )
    await enqueue_plan(conn, plan_id)
    return Outcome({"plan_id": plan_id, "territory_id": territory})


async def start_workflow_action(conn: Conn, s: d.StartWorkflow, run: RunView, env: Any) -> Outcome:
    from automation import runs

    cur = await conn.execute(
        "SELECT owner_id, active, version FROM automation_workflows WHERE id = %s", (s.workflow_id,)
    )
    row = await cur.fetchone()
    if row is None or not row[1]:
        raise ActionError(
            f"workflow {s.workflow_id} does not exist or is paused", field="workflow_id"
        )
    if int(row[0]) != run.owner.user_id and not run.owner.is_admin:
        raise ActionError(f"workflow {s.workflow_id} belongs to another user", field="workflow_id")
    parent = await (
        await conn.execute("SELECT chain, depth FROM automation_runs WHERE id = %s", (run.run_id,))
    ).fetchone()
    assert parent is not None
    child = await runs.start(
        conn,
        s.workflow_id,
        int(row[2]),
        record_object=run.record_object,
        record_id=run.record_id,
        trigger={
            "event": "workflow.started",
            "by_run": run.run_id,
            "record": run.ctx.get("record"),
        },
        chain=[*parent[0], run.workflow_id],
        depth=int(parent[1]) + 1,
        parent_run_id=run.run_id,
        why=f"started by run {run.run_id} (workflow {run.workflow_id})",
    )
    return Outcome({"run_id": child})


async def load_record_action(conn: Conn, s: d.LoadRecord, run: RunView, _env: Any) -> Outcome:
    obj, rid = _target(run)
    row = await get_record(conn, ENTITIES[obj], run.owner, rid)
    return Outcome({"record": _jsonable(row)})


async def related(conn: Conn, s: d.ForEach, run: RunView) -> list[dict[str, Any]]:
    """Records of `s.object` that point at the run's record (visible to the owner)."""
    from crm.store import scope, select_expr

    obj, rid = _target(run)
    entity = ENTITIES[s.object]
    link = LINK.get(obj) if s.object != obj else "parent_id"
    if link is None or entity.field(link) is None:
        raise ActionError(f"{s.object} do not point at {obj}", field="object")
    acc, acc_p = scope(entity, run.owner)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL("SELECT {} FROM {} t WHERE t.{} = %s AND {} ORDER BY t.id LIMIT %s").format(
            select_expr(entity), sql.Identifier(entity.table), sql.Identifier(link), acc
        ),
        [rid, *acc_p, s.limit],
    )
    return [{**_jsonable(r), "_object": s.object} for r in await cur.fetchall()]
