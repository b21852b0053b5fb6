"""The durable engine: a run replays its definition against its step journal.

Each step reached gets the next sequence number (`seq`, deterministic: branch decisions
and loop items are journaled too). On every pass the interpreter walks the definition from
the top; a step whose journal row is `done` is not executed again, its recorded output is
used instead. A step is executed in one transaction that (1) locks the run row and checks
it is still runnable, (2) claims the journal row (primary key (run_id, seq): a second
executor waits on it and then finds it taken), (3) makes the effect (records through
`crm.store` as the owner, notifications, messages into the channel's outbox, a routing
job), (4) marks the row done with the output and writes the per-record log. A worker
killed at any point therefore leaves either the whole step or nothing: the job system
hands the run to another worker when the lease runs out, and the replay continues at the
first step without a `done` row. No step is repeated, none is lost.

A webhook is an outside effect: its row is committed as `started` with the idempotency key
`automation:<run>:<seq>` before the request, and marked done after; a crash in between
sends the same key again (receivers drop the repeat).

A wait writes its wake-up time (from the injectable clock) into the journal and the run
and ends the pass; the `automation.wake` job re-queues due runs, and the matcher completes
event waits. Nothing sleeps in memory, so waits of months survive restarts.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from automation import actions, runs
from automation import definition as d
from automation.channels import Channel
from automation.clock import Clock
from automation.conditions import compile_all
from automation.template import render
from automation.webhook import WebhookRefused, post
from identity.auth import load_principal
from kernel.errors import ApiError
from kernel.settings import IPNetwork
from notify.service import NotificationError

log = logging.getLogger(__name__)

Conn = AsyncConnection[Any]


class Suspend(Exception):
    """The run waits (its wake-up is recorded)."""


class Halt(Exception):
    """The run is no longer runnable (exited, stopped, failed) or another executor has it."""


class Pause(Exception):
    """Inline mode only: the matcher's part of the run ends here (the first action is done,
    or the next step is not one to take inside the matcher's transaction); the run's job,
    queued with it, does the rest."""


class StepFailed(Exception):
    def __init__(self, step_id: str, message: str) -> None:
        super().__init__(f"step {step_id!r}: {message}")
        self.step_id = step_id
        self.message = message


def permanent(exc: BaseException) -> bool:
    """Errors a retry cannot fix: the step (and the run) fails."""
    from routing.model import RoutingError

    return isinstance(
        exc, ApiError | NotificationError | RoutingError | WebhookRefused | d.DefinitionError
    )


@dataclass
class Env:
    """What the engine needs from its process: the pool, the clock, the message channel,
    the webhook allow-list, and a cache of definitions (versions never change)."""

    pool: AsyncConnectionPool[Any]
    clock: Clock
    channel: Channel
    allow: tuple[IPNetwork, ...] = ()
    definitions: dict[tuple[int, int], d.Definition] = field(default_factory=dict)

    async def definition(self, conn: Conn, workflow_id: int, version: int) -> d.Definition:
        key = (workflow_id, version)
        if key not in self.definitions:
            cur = await conn.execute(
                "SELECT definition FROM automation_versions WHERE workflow_id = %s AND version = %s",
                key,
            )
            row = await cur.fetchone()
            if row is None:
                raise d.DefinitionError(
                    "definition", f"workflow {workflow_id} has no version {version}"
                )
            self.definitions[key] = d.decode(row[0])
        return self.definitions[key]


def next_open(now: datetime, bh: d.BusinessHours, tz_name: str | None) -> datetime:
    """`now` if inside the business hours in `tz_name`, else the next opening (UTC)."""
    try:
        tz = ZoneInfo(tz_name or bh.default_tz)
    except (ValueError, KeyError, OSError):
        tz = ZoneInfo(bh.default_tz) if bh.default_tz else ZoneInfo("UTC")
    local = now.astimezone(tz)
    for i in range(8):
        day = local.date() + timedelta(days=i)
        if day.weekday() not in bh.days:
            continue
        start = datetime.combine(day, time(bh.start_hour), tz)
        end = datetime.combine(day, time(0), tz) + timedelta(hours=bh.end_hour)
        if start <= local < end:
            return now
        if local < start:
            return start.astimezone(UTC)
    return now


Action = Callable[[Conn, Any, actions.RunView, Env], Awaitable[actions.Outcome]]
ACTIONS: dict[type, Action] = {
    d.CreateRecord: actions.create_record_action,
    d.UpdateRecord: actions.update_record_action,
    d.CreateTask: actions.create_task_action,
    d.Assign: actions.assign_action,
    d.Notify: actions.notify_action,
    d.SendMessage: actions.send_message_action,
    d.SendReport: actions.send_report_action,
    d.Replan: actions.replan_action,
    d.StartWorkflow: actions.start_workflow_action,
    d.LoadRecord: actions.load_record_action,
}


def _json(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


# Steps the matcher may take inside its own transaction (`inline`): database effects only,
# quick, and never a wait. A webhook (an outside request), a wait, a report (rendering) or a
# message held for business hours is left to the run's job.
INLINE_STEPS = (
    d.CreateRecord, d.UpdateRecord, d.CreateTask, d.Assign, d.Notify, d.SendMessage,
    d.LoadRecord, d.StartWorkflow, d.Replan, d.Branch, d.ForEach,
)  # fmt: skip


class Interpreter:
    """Walks a run's definition against its journal.

    `conn` given (inline mode, `automation.matching`): each step's transaction is a
    savepoint in that connection's transaction, and the walk stops (`Pause`) once the first
    action is done or at a step that is not in INLINE_STEPS. Either the matcher's whole
    transaction commits (the run, its first step and the change's removal) or none of it."""

    def __init__(
        self,
        env: Env,
        run: dict[str, Any],
        definition: d.Definition,
        owner: Any,
        journal: dict[int, dict[str, Any]],
        conn: Conn | None = None,
    ) -> None:
        self.env = env
        self.conn = conn
        self.run = run
        self.run_id: int = run["id"]
        self.definition = definition
        self.owner = owner
        self.journal = journal
        self.seq = 0
        trig = run["trigger"] or {}
        self.ctx: dict[str, Any] = {
            "record": trig.get("record") or {},
            "old": trig.get("old"),
            "trigger": trig,
            "steps": {},
            "run": {"id": run["id"], "workflow_id": run["workflow_id"]},
        }

    # ---------------------------------------------------------------- the walk

    async def run_steps(self, steps: list[d.Step]) -> None:
        for s in steps:
            seq = self.seq
            self.seq += 1
            j = self.journal.get(seq)
            if j is not None and j["step_id"] != s.id:
                raise StepFailed(s.id, f"the journal has step {j['step_id']!r} at position {seq}")
            if self.conn is not None and not self._inline(s):
                raise Pause()
            if isinstance(s, d.Branch):
                await self._branch(seq, s, j)
            elif isinstance(s, d.ForEach):
                await self._for_each(seq, s, j)
            elif isinstance(s, d.Wait):
                await self._wait(seq, s, j)
            elif isinstance(s, d.Webhook):
                await self._webhook(seq, s, j)
            else:
                if (
                    isinstance(s, d.SendMessage)
                    and self.definition.business_hours
                    and s.business_hours
                ):
                    await self._business_hours(seq, s, j)
                await self._effect(seq, s, j, ACTIONS[type(s)])
                if self.conn is not None:
                    raise Pause()

    def _inline(self, s: d.Step) -> bool:
        if not isinstance(s, INLINE_STEPS):
            return False
        held = isinstance(s, d.SendMessage) and s.business_hours
        return not (held and self.definition.business_hours is not None)

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        """A step's transaction: its own, or a savepoint in the matcher's (inline)."""
        if self.conn is not None:
            # the nested pipeline syncs before the savepoint ends: a failed statement is
            # this step's (rolled back to its savepoint), never the next one's
            async with self.conn.transaction(), self.conn.pipeline():
                yield self.conn
        else:
            async with self.env.pool.connection() as conn, conn.transaction():
                yield conn

    def _subject(self) -> dict[str, Any]:
        base = self.ctx.get("item") or self.ctx["record"] or {}
        return {**base, "steps": self.ctx["steps"], "trigger": self.ctx["trigger"]}

    async def _branch(self, seq: int, s: d.Branch, j: dict[str, Any] | None) -> None:
        if j is not None and j["status"] == "done":
            took = j["output"]["took"]
        else:
            ok = compile_all(s.when, s.match)(self.ctx.get("old"), self._subject())
            took = "then" if ok else "otherwise"
            await self._effect(seq, s, None, _const({"took": took}))
        self.ctx["steps"][s.id] = {"took": took}
        await self.run_steps(s.then if took == "then" else s.otherwise)

    async def _for_each(self, seq: int, s: d.ForEach, j: dict[str, Any] | None) -> None:
        if j is not None and j["status"] == "done":
            items = j["output"]["items"]
            self.ctx["steps"][s.id] = {"count": len(items)}
        else:

            async def query(
                conn: Conn, step: Any, view: actions.RunView, env: Env
            ) -> actions.Outcome:
                rows = await actions.related(conn, s, view)
                test = compile_all(s.when)
                items = [r for r in rows if test(None, r)]
                return actions.Outcome({"items": items, "count": len(items)})

            items = (await self._effect(seq, s, None, query))["items"]
            self.ctx["steps"][s.id] = {"count": len(items)}
        outer = self.ctx.get("item")
        for item in items:
            self.ctx["item"] = item
            await self.run_steps(s.steps)
        if outer is None:
            self.ctx.pop("item", None)
        else:
            self.ctx["item"] = outer

    # ---------------------------------------------------------------- transactions

    async def _lock(self, conn: Conn) -> str:
        """Lock the run (runnable, else Halt) and mark the transaction's changes as this
        run's (the loop guard reads it from the capture triggers); the run's status."""
        if self.conn is not None:
            # inline: the run is this transaction's own, new (no other executor can see it)
            # and ready; the marker goes with the next statement whose result is read
            await conn.execute(
                "SELECT set_config('fieldmesh.automation_run', %s, true)", (str(self.run_id),)
            )
            return "ready"
        cur = await conn.execute(
            "SELECT status, set_config('fieldmesh.automation_run', %s, true)"
            " FROM automation_runs WHERE id = %s FOR UPDATE",
            (str(self.run_id), self.run_id),
        )
        row = await cur.fetchone()
        if row is None or row[0] not in ("ready", "waiting"):
            raise Halt(f"run {self.run_id} is {row[0] if row else 'gone'}")
        return str(row[0])

    def _view(self, seq: int) -> actions.RunView:
        return actions.RunView(
            self.run_id, self.run["workflow_id"], seq, self.owner,
            self.run["record_object"], self.run["record_id"], self.ctx,
            str(self.run.get("kind") or "workflow"),
        )  # fmt: skip

    def _key(self, seq: int) -> str:
        return f"automation:{self.run_id}:{seq}"

    async def _effect(
        self, seq: int, s: Any, j: dict[str, Any] | None, fn: Action
    ) -> dict[str, Any]:
        if j is not None and j["status"] == "done":
            self.ctx["steps"][s.id] = j["output"]
            return dict(j["output"])
        try:
            async with self._tx() as conn:
                status = await self._lock(conn)
                cur = await conn.execute(
                    """
                    INSERT INTO automation_steps (run_id, seq, step_id, action, status, idempotency_key)
                    VALUES (%s, %s, %s, %s, 'started', %s)
                    ON CONFLICT (run_id, seq) DO UPDATE SET status = 'started'
                        WHERE automation_steps.status = 'waiting'
                    RETURNING 1
                    """,
                    (self.run_id, seq, s.id, _action(s), self._key(seq)),
                )
                # inline, the journal row cannot exist (the run is new): not waited for
                if self.conn is None and await cur.fetchone() is None:
                    raise Halt(f"run {self.run_id} step {seq} was done by another executor")
                outcome = await fn(conn, s, self._view(seq), self.env)
                output = _json(outcome.output)
                touched = outcome.touched
                # the journal row done and the per-record log, in one statement
                await conn.execute(
                    "WITH done AS (UPDATE automation_steps SET status = 'done', output = %s,"
                    " input = %s, finished_at = clock_timestamp(), wake_at = NULL"
                    " WHERE run_id = %s AND seq = %s RETURNING run_id)"
                    " INSERT INTO automation_record_log (record_object, record_id, run_id,"
                    " workflow_id, step_id, action, summary)"
                    " SELECT t.obj, t.rid, done.run_id, %s, %s, %s, t.summary FROM done,"
                    " unnest(%s::text[], %s::text[], %s::text[]) AS t(obj, rid, summary)",
                    (
                        Jsonb(output),
                        Jsonb(_json(_input(s))),
                        self.run_id,
                        seq,
                        self.run["workflow_id"],
                        s.id,
                        _action(s),
                        [t[0] for t in touched],
                        [t[1] for t in touched],
                        [t[2][:500] for t in touched],
                    ),
                )
                if status != "ready":  # resumed after a wait
                    await conn.execute(
                        "UPDATE automation_runs SET status = 'ready', wake_at = NULL,"
                        " wait_event = NULL, updated_at = clock_timestamp() WHERE id = %s",
                        (self.run_id,),
                    )
        except Exception as exc:
            if permanent(exc):
                raise StepFailed(s.id, str(exc)) from exc
            raise
        self.ctx["steps"][s.id] = output
        self.journal[seq] = {"step_id": s.id, "status": "done", "output": output}
        return dict(output)

    async def _suspend(
        self, seq: int, s: Any, wake_at: datetime, event: str | None, j: dict[str, Any] | None
    ) -> None:
        async with self._tx() as conn:
            await self._lock(conn)
            if j is None:
                cur = await conn.execute(
                    "INSERT INTO automation_steps (run_id, seq, step_id, action, status, input,"
                    " idempotency_key, wake_at, wait_event) VALUES (%s, %s, %s, %s, 'waiting', %s, %s, %s, %s)"
                    " ON CONFLICT (run_id, seq) DO NOTHING RETURNING 1",
                    (
                        self.run_id,
                        seq,
                        s.id,
                        _action(s),
                        Jsonb(_json(_input(s))),
                        self._key(seq),
                        wake_at,
                        event,
                    ),
                )
                if await cur.fetchone() is None:
                    raise Halt(f"run {self.run_id} step {seq} was reached by another executor")
            await conn.execute(
                "UPDATE automation_runs SET status = 'waiting', wake_at = %s, wait_event = %s,"
                " updated_at = clock_timestamp() WHERE id = %s",
                (wake_at, event, self.run_id),
            )
        raise Suspend()

    async def _wait(self, seq: int, s: d.Wait, j: dict[str, Any] | None) -> None:
        if j is not None and j["status"] == "done":
            self.ctx["steps"][s.id] = j["output"]
            return
        now = self.env.clock.now()
        if j is None:
            if s.duration_s is not None:
                wake = now + timedelta(seconds=s.duration_s)
            elif s.until is not None:
                wake = s.until
            else:
                wake = now + timedelta(seconds=s.timeout_s)
            if wake > now:
                await self._suspend(seq, s, wake, s.event, None)
        elif now < j["wake_at"]:
            await self._suspend(seq, s, j["wake_at"], j["wait_event"], j)
        out = {"timed_out": s.event is not None, "at": now.isoformat()}
        await self._effect(seq, s, j, _const(out))

    async def _business_hours(self, seq: int, s: d.SendMessage, j: dict[str, Any] | None) -> None:
        if j is not None and j["status"] == "done":
            return
        bh = self.definition.business_hours
        assert bh is not None
        now = self.env.clock.now()
        tz = (self.ctx["record"] or {}).get(bh.tz_field)
        opens = (
            j["wake_at"] if j is not None and j["wake_at"] is not None else next_open(now, bh, tz)
        )
        if opens > now:
            await self._suspend(seq, s, opens, None, j)

    async def _webhook(self, seq: int, s: d.Webhook, j: dict[str, Any] | None) -> None:
        if j is not None and j["status"] == "done":
            self.ctx["steps"][s.id] = j["output"]
            return
        if j is None:
            async with self._tx() as conn:
                await self._lock(conn)
                cur = await conn.execute(
                    "INSERT INTO automation_steps (run_id, seq, step_id, action, status, input, idempotency_key)"
                    " VALUES (%s, %s, %s, 'webhook', 'started', %s, %s) ON CONFLICT (run_id, seq) DO NOTHING RETURNING 1",
                    (self.run_id, seq, s.id, Jsonb({"url": s.url}), self._key(seq)),
                )
                if await cur.fetchone() is None:
                    raise Halt(f"run {self.run_id} step {seq} was started by another executor")
        payload = render(s.payload, self.ctx) if s.payload else {}
        body = json.dumps(
            {
                "workflow_id": self.run["workflow_id"],
                "run_id": self.run_id,
                "step": s.id,
                "event": self.ctx["trigger"].get("event"),
                "record_object": self.run["record_object"],
                "record_id": self.run["record_id"],
                "record": self.ctx["record"],
                "old": self.ctx.get("old"),
                "data": payload or {},
            },
            default=str,
        ).encode()
        try:
            out = await post(s.url, s.secret, body, self._key(seq), allow=self.env.allow)
        except WebhookRefused as exc:
            raise StepFailed(s.id, f"refused target: {exc}") from exc
        async with self._tx() as conn:
            await self._lock(conn)
            await conn.execute(
                "UPDATE automation_steps SET status = 'done', output = %s, finished_at = clock_timestamp()"
                " WHERE run_id = %s AND seq = %s AND status = 'started'",
                (Jsonb(out), self.run_id, seq),
            )
        self.ctx["steps"][s.id] = out


def _const(out: dict[str, Any]) -> Action:
    async def fn(conn: Conn, s: Any, view: actions.RunView, env: Env) -> actions.Outcome:
        return actions.Outcome(out)

    return fn


def _action(s: Any) -> str:
    return str(type(s).__struct_config__.tag)


def _input(s: Any) -> dict[str, Any]:
    import msgspec

    data: dict[str, Any] = msgspec.to_builtins(s)
    for nested in ("then", "otherwise", "steps"):
        if nested in data:
            data[nested] = [x.get("id") for x in data[nested]]
    data.pop("secret", None)
    return data


# --------------------------------------------------------------------------- a pass over a run


async def _load(
    env: Env, run_id: int
) -> tuple[dict[str, Any], d.Definition, Any, dict[int, dict[str, Any]]] | None:
    async with env.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        jcur = conn.cursor(row_factory=dict_row)
        async with conn.pipeline():  # the run and its journal in one round trip
            await cur.execute(
                "SELECT r.*, w.owner_id, w.kind FROM automation_runs r"
                " JOIN automation_workflows w ON w.id = r.workflow_id WHERE r.id = %s",
                (run_id,),
            )
            await jcur.execute(
                "SELECT seq, step_id, status, output, wake_at, wait_event FROM automation_steps"
                " WHERE run_id = %s",
                (run_id,),
            )
        run = await cur.fetchone()
        journal = {int(r["seq"]): r for r in await jcur.fetchall()}
        if run is None or run["status"] not in ("ready", "waiting"):
            return None
        definition = await env.definition(conn, run["workflow_id"], run["version"])
        owner = await load_principal(conn, run["owner_id"])
    return run, definition, owner, journal


async def advance(env: Env, run_id: int) -> str:
    """Run `run_id` as far as it goes now; its status afterwards."""
    try:
        loaded = await _load(env, run_id)
    except d.DefinitionError as exc:
        await fail(env, run_id, None, str(exc))
        return "failed"
    if loaded is None:
        return "not runnable"
    run, definition, owner, journal = loaded
    if owner is None:
        await fail(env, run_id, None, "the workflow's owner is no longer an active user")
        return "failed"
    interp = Interpreter(env, run, definition, owner, journal)
    try:
        await interp.run_steps(definition.steps)
    except Suspend:
        return "waiting"
    except Halt as exc:
        log.info("automation run %d: %s", run_id, exc)
        return "halted"
    except StepFailed as exc:
        await fail(env, run_id, exc.step_id, exc.message, seq=interp.seq - 1)
        return "failed"
    async with env.pool.connection() as conn, conn.transaction():
        await conn.execute(
            "WITH c AS (UPDATE automation_runs SET status = 'completed', finished_at = clock_timestamp(),"
            " updated_at = clock_timestamp(), wake_at = NULL WHERE id = %s AND status IN ('ready', 'waiting')"
            " RETURNING id)"
            " INSERT INTO automation_run_events (run_id, kind, message) SELECT id, 'completed', %s FROM c",
            (run_id, f"{interp.seq} steps"),
        )
    return "completed"


async def fail(
    env: Env, run_id: int, step_id: str | None, message: str, seq: int | None = None
) -> None:
    text = f"step {step_id!r}: {message}" if step_id else message
    async with env.pool.connection() as conn, conn.transaction():
        if step_id is not None and seq is not None:
            await conn.execute(
                "INSERT INTO automation_steps (run_id, seq, step_id, action, status, error, idempotency_key)"
                " VALUES (%s, %s, %s, 'failed', 'failed', %s, %s)"
                " ON CONFLICT (run_id, seq) DO UPDATE SET status = 'failed', error = EXCLUDED.error,"
                " finished_at = clock_timestamp()",
                (run_id, seq, step_id, message[:2000], f"automation:{run_id}:{seq}"),
            )
        cur = await conn.execute(
            "UPDATE automation_runs SET status = 'failed', error = %s, finished_at = clock_timestamp(),"
            " updated_at = clock_timestamp() WHERE id = %s AND status IN ('ready', 'waiting') RETURNING 1",
            (text[:2000], run_id),
        )
        if await cur.fetchone() is not None:
            await runs.event(conn, run_id, "failed", text, step_id)
