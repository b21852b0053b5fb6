"""The matcher job: changes from the outbox (`automation_changes`) to runs, exits and
ended waits, in one transaction per batch (so a change is matched exactly once: its row is
deleted in the transaction that starts its runs).

For each change, in outbox order:
- the definitions it starts (`automation.matcher`, compiled and indexed, reloaded when a
  workflow changes), unless that would loop (the change was made by a run whose chain
  holds the workflow: stopped with an error saying so, and the owner is notified) or pass
  a rate limit (per workflow per minute, and for the whole deployment);
- active runs of its record that exit on it (`exit_on`), or wait for it.

Several matchers may run at once (SKIP LOCKED): changes of one record can then be matched
out of order across batches, never twice.

Latency: when the matcher has caught up (a batch smaller than the limit), it also takes
each new run's first action in the batch's transaction (`engine.Interpreter` inline, one
savepoint per run, lock waits capped): trigger to first action is then one transaction
after the change, not a queue hop, a job claim and a run's load later. A step that fails or
is not for inline (a webhook, a wait, a report) is left to the run's job, queued in the
same transaction as always, which replays the journal and goes on. Under a backlog (full
batches) the matcher only matches, for throughput. The batch commits without waiting for
its WAL flush (`synchronous_commit = off`): a commit lost with a crash of the server loses
the whole batch (runs, first steps, and the removal of its changes), so the changes, which
were committed durably, are matched again; nothing is done twice or lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from automation import definition as d
from automation import engine, runs
from automation.conditions import compile_all
from automation.matcher import Compiled, Matcher, compile_definition
from identity.auth import load_principal
from kernel.principal import Principal
from notify.service import notify_user

log = logging.getLogger(__name__)

Conn = AsyncConnection[Any]
MAX_CHAIN = 5  # workflows starting workflows through their changes
TENANT_MAX_RUNS_PER_MIN = 60_000
MATCH_BATCH = 500
INLINE_MAX = 50  # first actions a batch takes itself (the rest go through the queue)
INLINE_LOCK_TIMEOUT = "200ms"  # an inline step never waits long on a record's lock


KEY_SQL = "SELECT count(*), max(updated_at), sum(version) FROM automation_workflows WHERE active"


@dataclass
class MatcherCache:
    key: tuple[Any, ...] | None = None
    matcher: Matcher = field(default_factory=lambda: Matcher(()))
    by_id: dict[int, Compiled] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    owners: dict[int, Principal] = field(default_factory=dict)
    kinds: dict[int, str] = field(default_factory=dict)

    async def get(self, conn: Conn, key: tuple[Any, ...] | None = None) -> Matcher:
        """The matcher of the active definitions; `key`: KEY_SQL's row, when the caller
        asked already (in the batch's first round trip)."""
        if key is None:
            cur = await conn.execute(KEY_SQL)
            key = tuple(await cur.fetchone() or ())
        if key != self.key:
            cur = await conn.execute(
                "SELECT w.id, w.version, w.owner_id, w.name, w.kind, v.definition FROM automation_workflows w"
                " JOIN automation_versions v ON v.workflow_id = w.id AND v.version = w.version"
                " WHERE w.active"
            )
            compiled = []
            self.names = {}
            self.kinds = {}
            for wid, version, owner, name, kind, raw in await cur.fetchall():
                try:
                    compiled.append(compile_definition(wid, version, owner, d.decode(raw)))
                    self.names[wid] = name
                    self.kinds[wid] = kind
                except d.DefinitionError as exc:  # saved under older rules: skipped, said
                    log.warning("automation workflow %s version %s: %s", wid, version, exc)
            self.owners = {}
            for owner_id in {c.owner_id for c in compiled}:
                p = await load_principal(conn, owner_id)
                if p is not None:
                    self.owners[owner_id] = p
            self.by_id = {c.workflow_id: c for c in compiled}
            self.matcher = Matcher(c for c in compiled if c.event not in d.STANDALONE)
            self.key = key
        return self.matcher


@dataclass
class BatchStats:
    changes: int = 0
    started: int = 0
    stopped: int = 0
    limited: int = 0
    exited: int = 0
    woken: int = 0
    inline: int = 0  # runs whose first action the batch took


Scope = dict[tuple[str, str], dict[str, Any]]


def _owner_sees(cache: MatcherCache, c: Compiled, ch: dict[str, Any], scopes: Scope) -> bool:
    """A workflow starts only from CRM records its owner may see (the run's history shows
    the record); events of no record (alerts, outside events without one) are not
    record-scoped. A record's own change carries its owner and territory; an event about a
    record (a geofence event or visit at an account, a reply from a contact) is checked
    against the record itself (`scopes`)."""
    if ch["record_object"] not in d.RECORD_OBJECTS:
        return True
    p = cache.owners.get(c.owner_id)
    if p is None:
        return False
    if _about(ch):
        row = scopes.get((ch["record_object"], str(ch["record_id"])))
        if row is None:  # the record is gone
            return False
    else:
        row = _row(ch) or {}
    owners = [row.get("owner_id"), row.get("assignee_id")]
    return any(p.may_see(o, row.get("territory_id")) for o in owners)


def _about(ch: dict[str, Any]) -> bool:
    """An event about a record rather than the record's own change."""
    return bool(ch["event"].partition(".")[0] != ch["record_object"])


async def _scopes(conn: Conn, changes: list[dict[str, Any]]) -> Scope:
    """Owner, assignee and territory of the records events are about (one query per object)."""
    wanted: dict[str, set[int]] = {}
    for ch in changes:
        if ch["record_object"] in d.RECORD_OBJECTS and ch["record_id"] and _about(ch):
            try:
                wanted.setdefault(ch["record_object"], set()).add(int(ch["record_id"]))
            except ValueError:
                continue
    out: Scope = {}
    for obj, ids in wanted.items():
        assignee = "assignee_id" if obj == "work_orders" else "NULL::bigint"
        cur = await conn.execute(
            sql.SQL("SELECT id, owner_id, {}, territory_id FROM {} WHERE id = ANY(%s)").format(
                sql.SQL(assignee), sql.Identifier(obj)
            ),
            (sorted(ids),),
        )
        for rid, owner, assigned, territory in await cur.fetchall():
            out[(obj, str(rid))] = {
                "owner_id": owner,
                "assignee_id": assigned,
                "territory_id": territory,
            }
    return out


def _row(change: dict[str, Any]) -> dict[str, Any] | None:
    row: dict[str, Any] | None = change["new"] if change["new"] is not None else change["old"]
    return row


async def match_batch(
    conn: Conn,
    cache: MatcherCache,
    limit: int = MATCH_BATCH,
    tenant_limit: int = TENANT_MAX_RUNS_PER_MIN,
    env: engine.Env | None = None,
) -> BatchStats:
    """One batch of changes matched in one transaction; with `env`, the first actions of
    its new runs too when the batch is not full (see the module's text)."""
    stats = BatchStats()
    # pipeline mode: statements whose results are not read go with the next that is (a
    # step's done mark with the next run's lock, ...); BEGIN, the changes and the
    # definitions' version are one round trip
    async with conn.pipeline(), conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        kcur = conn.cursor()
        await cur.execute(
            "SELECT id, event, record_object, record_id, old, new, origin_run_id, actor_id, at,"
            " clock_timestamp() AS picked_at"
            " FROM automation_changes ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            (limit,),
        )
        await kcur.execute(KEY_SQL)
        changes = await cur.fetchall()
        if not changes:
            return stats
        stats.changes = len(changes)
        matcher = await cache.get(conn, tuple(await kcur.fetchone() or ()))
        candidates = [
            (c, ch) for ch in changes for c in matcher.match(ch["event"], ch["old"], _row(ch))
        ]
        scopes = await _scopes(conn, [ch for _, ch in candidates]) if candidates else {}
        starts = [(c, ch) for c, ch in candidates if _owner_sees(cache, c, ch, scopes)]
        started: list[tuple[int, Compiled, runs.NewRun]] = []
        if starts:
            started = await _start_runs(conn, cache, starts, stats, tenant_limit)
        await _exits_and_waits(conn, cache, changes, stats)
        inline = env is not None and bool(started) and len(changes) < limit
        async with conn.pipeline():  # synced here: an error is the batch's, not a step's
            await conn.execute(
                "DELETE FROM automation_changes WHERE id = ANY(%s)", ([c["id"] for c in changes],)
            )
            await conn.execute("SELECT set_config('synchronous_commit', 'off', true)")
            if inline:  # the last thing the batch does: the setting ends with it
                await conn.execute(
                    "SELECT set_config('lock_timeout', %s, true)", (INLINE_LOCK_TIMEOUT,)
                )
        if inline:
            assert env is not None
            await _first_actions(conn, env, cache, started[:INLINE_MAX], stats)
    return stats


async def _first_actions(
    conn: Conn,
    env: engine.Env,
    cache: MatcherCache,
    started: list[tuple[int, Compiled, runs.NewRun]],
    stats: BatchStats,
) -> None:
    """Each new run's walk up to its first action, in this transaction (a savepoint per
    run). The last thing a batch does: the lock timeout and the run marker the steps set
    end with the transaction."""
    owners: dict[int, Principal | None] = {}
    for run_id, c, new in started:
        if c.owner_id not in owners:  # the owner's rights now, not when the cache was built
            owners[c.owner_id] = await load_principal(conn, c.owner_id)
        owner = owners[c.owner_id]
        if owner is None:
            continue  # the run's job fails it, saying why
        run = {
            "id": run_id,
            "workflow_id": c.workflow_id,
            "version": c.version,
            "record_object": new.record_object,
            "record_id": new.record_id,
            "trigger": engine._json(new.trigger),  # as the job would read it back
            "owner_id": c.owner_id,
            "kind": cache.kinds.get(c.workflow_id, "workflow"),
        }
        interp = engine.Interpreter(env, run, c.definition, owner, {}, conn=conn)
        try:
            await interp.run_steps(c.definition.steps)
        except engine.Pause:
            pass
        except Exception as exc:  # rolled back to the run's savepoint: the job does it
            log.debug("automation run %d: first action left to its job: %s", run_id, exc)
            continue
        stats.inline += 1


async def _start_runs(
    conn: Conn,
    cache: MatcherCache,
    starts: list[tuple[Compiled, dict[str, Any]]],
    stats: BatchStats,
    tenant_limit: int,
) -> list[tuple[int, Compiled, runs.NewRun]]:
    """Start the runs (born stopped where a loop or chain guard says so); the started ones."""
    origins = {ch["origin_run_id"] for _, ch in starts if ch["origin_run_id"] is not None}
    origin: dict[int, tuple[int, list[int], int]] = {}
    if origins:
        cur = await conn.execute(
            "SELECT id, workflow_id, chain, depth FROM automation_runs WHERE id = ANY(%s)",
            (list(origins),),
        )
        origin = {int(r[0]): (int(r[1]), list(r[2]), int(r[3])) for r in await cur.fetchall()}
    # runs of the last minute, per workflow and in all (index automation_runs_created)
    cur = await conn.execute(
        "SELECT workflow_id, count(*) FROM automation_runs"
        " WHERE created_at > clock_timestamp() - interval '60 seconds' GROUP BY workflow_id"
    )
    recent = {int(r[0]): int(r[1]) for r in await cur.fetchall()}
    tenant = sum(recent.values())
    dropped: dict[int, int] = {}
    new: list[runs.NewRun] = []
    chosen: list[Compiled] = []
    for c, ch in starts:
        chain: list[int] = []
        depth = 0
        error = None
        if ch["origin_run_id"] is not None and ch["origin_run_id"] in origin:
            owf, ochain, odepth = origin[ch["origin_run_id"]]
            chain, depth = [*ochain, owf], odepth + 1
            if c.workflow_id in chain:
                error = (
                    f"loop stopped: workflow {c.workflow_id} ({cache.names.get(c.workflow_id, '')}) would be "
                    f"started by a change ({ch['event']} of {ch['record_object']} {ch['record_id']}) that its own "
                    f"run {ch['origin_run_id']} made; a workflow may not trigger itself"
                )
            elif depth > MAX_CHAIN:
                error = f"chain stopped: more than {MAX_CHAIN} workflows triggered one another ({chain})"
        if error is None:
            limit = c.definition.max_runs_per_min
            if recent.get(c.workflow_id, 0) >= limit or tenant >= tenant_limit:
                dropped[c.workflow_id] = dropped.get(c.workflow_id, 0) + 1
                stats.limited += 1
                continue
        record = _row(ch)
        trigger = {
            "event": ch["event"],
            "change_id": ch["id"],
            "record": record,
            "old": ch["old"] if ch["new"] is not None else None,
            "actor_id": ch["actor_id"],
            "picked_at": ch["picked_at"].isoformat(),  # when the matcher took the change
        }
        new.append(
            runs.NewRun(
                workflow_id=c.workflow_id,
                version=c.version,
                record_object=ch["record_object"],
                record_id=ch["record_id"],
                trigger=trigger,
                chain=chain,
                depth=depth,
                parent_run_id=ch["origin_run_id"] if ch["origin_run_id"] in origin else None,
                exit_on=[r.on for r in c.definition.exit_on],
                change_at=ch["at"],
                why=f"{ch['event']} of {ch['record_object']} {ch['record_id']}",
                error=error,
            )
        )
        chosen.append(c)
        if error:
            stats.stopped += 1
            await conn.execute(
                "UPDATE automation_workflows SET last_error = %s WHERE id = %s",
                (error, c.workflow_id),
            )
            await notify_user(
                conn,
                user_id=c.owner_id,
                kind="automation.loop",
                title=f"Workflow {cache.names.get(c.workflow_id, c.workflow_id)} stopped: it triggers itself",
                body=error,
                link=f"/console/automation/workflows/{c.workflow_id}",
                dedupe_key=f"automation-loop:{c.workflow_id}:{ch['origin_run_id']}",
            )
        else:
            stats.started += 1
            recent[c.workflow_id] = recent.get(c.workflow_id, 0) + 1
            tenant += 1
    ids = await runs.start_many(conn, new)  # one statement for the runs, events and jobs
    for wid, n in dropped.items():
        await conn.execute(
            "UPDATE automation_workflows SET dropped_triggers = dropped_triggers + %s,"
            " last_error = %s WHERE id = %s",
            (
                n,
                f"rate limit: {n} triggers dropped (over {cache.by_id[wid].definition.max_runs_per_min}/min)",
                wid,
            ),
        )
    return [(i, c, r) for i, c, r in zip(ids, chosen, new, strict=True) if r.error is None]


async def _exits_and_waits(
    conn: Conn, cache: MatcherCache, changes: list[dict[str, Any]], stats: BatchStats
) -> None:
    keyed = [
        (ch["record_object"], ch["record_id"]) for ch in changes if ch["record_id"] is not None
    ]
    if not keyed:
        return
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT r.id, r.workflow_id, r.version, r.status, r.exit_on, r.wait_event, r.record_object, r.record_id
        FROM automation_runs r
        JOIN unnest(%s::text[], %s::text[]) AS k(obj, rid) ON r.record_object = k.obj AND r.record_id = k.rid
        WHERE r.status IN ('ready', 'waiting') AND (cardinality(r.exit_on) > 0 OR r.wait_event IS NOT NULL)
        FOR UPDATE OF r
        """,
        ([k[0] for k in keyed], [k[1] for k in keyed]),
    )
    active = await cur.fetchall()
    if not active:
        return
    by_record: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in active:
        by_record.setdefault((r["record_object"], r["record_id"]), []).append(r)
    ended: set[int] = set()
    for ch in changes:
        for r in by_record.get((ch["record_object"], ch["record_id"]), ()):
            if r["id"] in ended or r["id"] == ch["origin_run_id"]:
                continue
            if ch["event"].startswith(("email.", "sms.")):  # per-step open / reply counts
                await runs.event(conn, r["id"], ch["event"], "", await _last_step(conn, r["id"]))
            if ch["event"] in r["exit_on"] and await _exit_holds(conn, cache, r, ch):
                await _exit(conn, r, ch)
                ended.add(r["id"])
                stats.exited += 1
            elif (
                r["status"] == "waiting"
                and r["wait_event"] == ch["event"]
                and await _deliver(conn, r, ch)
            ):
                r["status"] = "ready"
                stats.woken += 1


async def _exit_holds(
    conn: Conn, cache: MatcherCache, r: dict[str, Any], ch: dict[str, Any]
) -> bool:
    cur = await conn.execute(
        "SELECT definition FROM automation_versions WHERE workflow_id = %s AND version = %s",
        (r["workflow_id"], r["version"]),
    )
    row = await cur.fetchone()
    if row is None:
        return True
    rules = [x for x in d.decode(row[0]).exit_on if x.on == ch["event"]]
    return any(compile_all(x.when)(ch["old"], _row(ch)) for x in rules)


async def _last_step(conn: Conn, run_id: int) -> str | None:
    cur = await conn.execute(
        "SELECT step_id FROM automation_steps WHERE run_id = %s AND status = 'done'"
        " AND action IN ('send_message', 'create_task') ORDER BY seq DESC LIMIT 1",
        (run_id,),
    )
    row = await cur.fetchone()
    return str(row[0]) if row else None


async def _exit(conn: Conn, r: dict[str, Any], ch: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE automation_runs SET status = 'exited', exit_reason = %s, wake_at = NULL,"
        " finished_at = clock_timestamp(), updated_at = clock_timestamp() WHERE id = %s",
        (ch["event"], r["id"]),
    )
    await runs.event(
        conn, r["id"], "exited", f"exit on {ch['event']}", await _last_step(conn, r["id"])
    )


async def _deliver(conn: Conn, r: dict[str, Any], ch: dict[str, Any]) -> bool:
    cur = await conn.execute(
        "SELECT seq, input FROM automation_steps WHERE run_id = %s AND status = 'waiting' AND wait_event = %s",
        (r["id"], ch["event"]),
    )
    row = await cur.fetchone()
    if row is None:
        return False
    conds = [d.Condition(**c) for c in (row[1] or {}).get("when", [])]
    if not compile_all(conds)(ch["old"], _row(ch)):
        return False
    await conn.execute(
        "UPDATE automation_steps SET status = 'done', output = %s, finished_at = clock_timestamp()"
        " WHERE run_id = %s AND seq = %s",
        (Jsonb({"timed_out": False, "event": ch["event"], "change_id": ch["id"]}), r["id"], row[0]),
    )
    await conn.execute(
        "UPDATE automation_runs SET status = 'ready', wake_at = NULL, wait_event = NULL,"
        " updated_at = clock_timestamp() WHERE id = %s",
        (r["id"],),
    )
    await runs.event(conn, r["id"], "woken", f"{ch['event']} arrived")
    await runs.enqueue_run(conn, r["id"])
    return True
