"""Automation benchmark: trigger matching, trigger-to-first-action latency, and crash runs.

    python -m bench.automation [--quick]

1. Matching, in process: 500 active definitions over six record types (stage changes,
   score and health thresholds, field values), 10,000 generated changes; the compiled,
   indexed matcher (`automation.matcher`) against the baseline measured in the same run,
   every definition's conditions interpreted for every change (`naive_match`).
2. Matching through the database: 10,000 changes/s offered to the outbox for a few
   seconds (rows as the capture trigger writes them), drained by the matcher job in two
   worker processes: changes matched per second.
3. Latency: real UPDATEs of opportunities at 1,000 changes/s (the capture trigger fires);
   about 0.2 % cross the 10 hot definitions' threshold (10 runs each); trigger-to-first-
   action is the first step's done time minus the change's time (both the database's
   clock), p50 and p99, with its parts: wake-up (change -> the matcher took it), matching
   (-> run inserted), first action (-> its effect done, in the matcher's transaction or
   by a worker after the queue), and the share of first actions the matcher took.
4. Crash run: 10,000 runs (1,000 with --quick) of a five-step workflow (each step creates
   an activity); the worker processes are SIGKILLed three times while they run; then the
   activities are counted per (run, step): duplicated and lost effects.

Starts the embedded PostgreSQL through fieldmesh.services if it is not running (and stops
it again at exit), in a fresh database. Last line: JSON with `trigger_evals_per_s`,
`trigger_to_action_p99_ms`, `duplicate_effects`, `lost_effects` (plus extra figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
N_DEFINITIONS = 500
STAGES = ("Qualification", "Needs analysis", "Proposal", "Negotiation", "Closed won", "Closed lost")


# --------------------------------------------------------------------------- definitions


def make_definitions(rng: random.Random, stage_ids: list[int], hot: int) -> list[dict[str, Any]]:
    """500 definitions; `hot` of them match ~0.2 % of the latency phase's changes each."""
    defs: list[dict[str, Any]] = []
    step = [{"id": "first", "action": "create_record", "object": "activities",
             "values": {"type": "note", "subject": "wf {{run.workflow_id}} run {{run.id}}"}}]  # fmt: skip
    for i in range(hot):
        defs.append({"name": f"hot {i}", "trigger": {"on": "opportunities.updated", "when": [
            {"field": "amount", "op": "crossed_above", "value": 998_000}]}, "steps": step})  # fmt: skip
    kinds: list[Callable[[], dict[str, Any]]] = [
        lambda: {"on": "opportunities.updated", "when": [{"field": "stage_id", "op": "changed_to", "value": rng.choice(stage_ids)}]},
        lambda: {"on": "opportunities.updated", "when": [{"field": "custom.risk", "op": "crossed_above", "value": rng.randint(50, 99)}]},
        lambda: {"on": "leads.updated", "when": [{"field": "custom.score", "op": "crossed_above", "value": rng.randint(60, 95)}]},
        lambda: {"on": "leads.created", "when": [{"field": "source", "op": "eq", "value": rng.choice(["website", "event", "partner"])}, {"field": "estimated_amount", "op": "gt", "value": rng.randint(1, 9) * 10_000}]},
        lambda: {"on": "accounts.updated", "when": [{"field": "custom.health", "op": "crossed_below", "value": rng.randint(20, 50)}]},
        lambda: {"on": "work_orders.updated", "when": [{"field": "status", "op": "changed_to", "value": rng.choice(["done", "cancelled", "in_progress"])}, {"field": "priority", "op": "in", "value": ["high", "urgent"]}]},
        lambda: {"on": "contacts.created", "when": [{"field": "custom.segment", "op": "eq", "value": f"s{rng.randint(1, 40)}"}]},
        lambda: {"on": "activities.updated", "when": [{"field": "status", "op": "changed_to", "value": "done"}, {"field": "type", "op": "eq", "value": rng.choice(["call", "meeting"])}]},
    ]  # fmt: skip
    while len(defs) < N_DEFINITIONS:
        trigger = rng.choice(kinds)()
        # most workflows are for one territory (of 20), as sales and service teams set them up
        trigger["when"].append({"field": "territory_id", "op": "eq", "value": rng.randint(1, 20)})
        defs.append({"name": f"wf {len(defs)}", "trigger": trigger, "steps": step})
    return defs


def make_changes(
    rng: random.Random, n: int, stage_ids: list[int]
) -> list[tuple[str, dict[str, Any] | None, dict[str, Any]]]:
    """Changes as the capture trigger records them; like real traffic, most change a field
    no definition watches, or move a value a little (few cross a threshold)."""

    def nudge(v: int) -> int:
        return max(0, min(100, v + rng.randint(-3, 3)))

    out: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = []
    for i in range(n):
        r = rng.random()
        base: dict[str, Any] = {"id": i, "territory_id": rng.randint(1, 20)}
        if r < 0.5:
            risk = rng.randint(0, 100)
            old = {
                **base,
                "stage_id": rng.choice(stage_ids),
                "amount": rng.randint(0, 10**6),
                "custom": {"risk": risk},
                "owner_id": 1,
                "name": "x",
                "status": "open",
            }
            new = {**old, "amount": rng.randint(0, 10**6)}
            if rng.random() < 0.05:
                new["stage_id"] = rng.choice(stage_ids)
            if rng.random() < 0.2:
                new["custom"] = {"risk": nudge(risk)}
            out.append(("opportunities.updated", old, new))
        elif r < 0.7:
            score = rng.randint(0, 100)
            old = {**base, "custom": {"score": score}, "status": "new", "source": "website"}
            out.append(("leads.updated", old, {**old, "custom": {"score": nudge(score)}}))
        elif r < 0.8:
            source = "website" if rng.random() < 0.05 else "other"
            new = {**base, "source": source, "estimated_amount": rng.randint(0, 100_000)}
            out.append(("leads.created", None, new))
        elif r < 0.9:
            health = rng.randint(0, 100)
            old = {**base, "custom": {"health": health}, "name": "a"}
            out.append(("accounts.updated", old, {**old, "custom": {"health": nudge(health)}}))
        else:
            priority = "urgent" if rng.random() < 0.05 else "low"
            old = {
                **base,
                "status": rng.choice(["new", "assigned", "in_progress"]),
                "priority": priority,
            }
            new = {**old, "status": rng.choice(["done", "in_progress", "cancelled"])}
            out.append(("work_orders.updated", old, new))
    return out  # fmt: skip


def bench_matching(defs: list[dict[str, Any]], changes: list[Any]) -> dict[str, float]:
    from automation.definition import decode
    from automation.matcher import Matcher, compile_definition, naive_match

    decoded = [(i + 1, decode(x)) for i, x in enumerate(defs)]
    matcher = Matcher(compile_definition(wid, 1, 1, dd) for wid, dd in decoded)
    t0 = time.perf_counter()
    fast = [sorted(c.workflow_id for c in matcher.match(ev, old, new)) for ev, old, new in changes]
    fast_s = time.perf_counter() - t0
    sample = changes[: max(len(changes) // 5, 200)]
    t0 = time.perf_counter()
    slow = [sorted(naive_match(decoded, ev, old, new)) for ev, old, new in sample]
    slow_s = time.perf_counter() - t0
    assert fast[: len(sample)] == slow, "the indexed matcher and the baseline disagree"
    return {
        "indexed_changes_per_s": len(changes) / fast_s,
        "naive_changes_per_s": len(sample) / slow_s,
        "matches_per_change": sum(map(len, fast)) / len(fast),
    }


# --------------------------------------------------------------------------- database side


async def setup_db(dsn: str, defs: list[dict[str, Any]]) -> dict[str, Any]:
    from psycopg import AsyncConnection

    from automation import service
    from identity.auth import create_user, load_principal

    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("INSERT INTO territories (name) VALUES ('bench') RETURNING id")
        territory = int(scalar(await cur.fetchone()))
        uid = await create_user(conn, email="owner@bench.test", name="Owner", role="admin")
        p = await load_principal(conn, uid)
        assert p is not None
        cur = await conn.execute(
            "INSERT INTO accounts (name, territory_id, owner_id) VALUES ('Bench', %s, %s) RETURNING id",
            (territory, uid),
        )
        account = int(scalar(await cur.fetchone()))
        wids = [int((await service.save(conn, p, x))["id"]) for x in defs]
        crash = await service.save(conn, p, {
            "name": "five effects", "trigger": {"on": "manual"},
            "steps": [{"id": f"s{n}", "action": "create_record", "object": "activities",
                       "values": {"type": "note", "subject": "crash {{run.id}} " + str(n)}} for n in range(5)],
        })  # fmt: skip
        await conn.execute(
            "UPDATE automation_workflows SET active = false WHERE id = %s", (crash["id"],)
        )
        await conn.execute(
            "INSERT INTO opportunities (name, account_id, pipeline_id, stage_id, probability, amount, owner_id, territory_id)"
            " SELECT 'o' || g, %s, s.pipeline_id, s.id, 10, 0, %s, %s FROM generate_series(1, 2000) g,"
            " (SELECT id, pipeline_id FROM pipeline_stages ORDER BY id LIMIT 1) s",
            (account, uid, territory),
        )
        await conn.commit()
        return {"owner": uid, "workflows": wids, "crash": int(crash["id"]), "principal": p}


def start_workers(
    dsn: str, n: int, lease_s: float, concurrency: int
) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.automation",
                "--worker",
                dsn,
                str(lease_s),
                str(concurrency),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]


def stop(procs: list[subprocess.Popen[bytes]], sig: int = signal.SIGTERM) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def scalar(row: Any) -> Any:
    assert row is not None
    return row[0]


def count(dsn: str, sql: str, params: Any = ()) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row and row[0] is not None else 0


def offer_changes(dsn: str, rate: float, seconds: float, changes: list[Any]) -> dict[str, float]:
    """Insert outbox rows at `rate` per second (batches every 10 ms); the drain rate."""
    import psycopg
    from psycopg.types.json import Jsonb

    batch = max(int(rate / 100), 1)
    total = int(rate * seconds)
    start = time.perf_counter()
    sent = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        while sent < total:
            rows = [changes[(sent + i) % len(changes)] for i in range(batch)]
            values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
            params: list[Any] = []
            for ev, old, new in rows:
                params += [
                    ev,
                    ev.split(".")[0],
                    str(new.get("id")),
                    Jsonb(old) if old else None,
                    Jsonb(new),
                ]
            conn.execute(
                "INSERT INTO automation_changes (event, record_object, record_id, old, new) VALUES "
                + values,
                params,
            )
            sent += batch
            ahead = sent / rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)
        offered_s = time.perf_counter() - start
        while scalar(conn.execute("SELECT count(*) FROM automation_changes").fetchone()) > 0:
            time.sleep(0.05)
        drained_s = time.perf_counter() - start
    return {
        "offered_per_s": sent / offered_s,
        "matched_per_s": sent / drained_s,
        "changes": float(sent),
    }


def latency_phase(dsn: str, rate: float, seconds: float, rng: random.Random) -> dict[str, float]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = [
            int(r[0]) for r in conn.execute("SELECT id FROM opportunities ORDER BY id").fetchall()
        ]
        conn.execute(
            "UPDATE automation_runs SET status = 'stopped' WHERE status IN ('ready', 'waiting')"
        )
        # phases apart: the runs phase 2 started are not executed (their jobs go)
        conn.execute("DELETE FROM jobs WHERE task = 'automation.run' AND status = 'queued'")
        first_run = int(
            scalar(conn.execute("SELECT coalesce(max(id), 0) FROM automation_runs").fetchone())
        )
        batch = max(int(rate / 20), 1)
        total = int(rate * seconds)
        sent = 0
        start = time.perf_counter()
        while sent < total:
            chosen = rng.sample(ids, batch)
            amounts = [rng.randint(0, 10**6) for _ in chosen]
            conn.execute(
                "UPDATE opportunities o SET amount = v.amount FROM unnest(%s::bigint[], %s::numeric[]) AS v(id, amount)"
                " WHERE o.id = v.id",
                (chosen, amounts),
            )
            sent += batch
            ahead = sent / rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)
        offered = sent / (time.perf_counter() - start)
        deadline = time.time() + 120
        while time.time() < deadline:
            left = scalar(
                conn.execute(
                    "SELECT (SELECT count(*) FROM automation_changes) + (SELECT count(*)"
                    " FROM automation_runs WHERE id > %s AND status IN ('ready', 'waiting'))",
                    (first_run,),
                ).fetchone()
            )
            if left == 0:
                break
            time.sleep(0.2)
        lat = [
            float(r[0])
            for r in conn.execute(
                "SELECT extract(epoch FROM s.finished_at - r.change_at) * 1000 FROM automation_runs r"
                " JOIN automation_steps s ON s.run_id = r.id AND s.seq = 0 WHERE r.id > %s AND r.change_at IS NOT NULL",
                (first_run,),
            ).fetchall()
        ]
        # where the time goes, per run: the wake-up (the change's insert -> the matcher
        # took it: the change's commit, its NOTIFY, the matcher's turn), the matching
        # (-> the run inserted), the first action (-> its effect done: in the matcher's
        # transaction when it took it, else after the queue and a worker's claim); and
        # which runs had their first action taken by the matcher (done before any worker
        # claimed the run's job)
        parts = conn.execute(
            "SELECT extract(epoch FROM (r.trigger->>'picked_at')::timestamptz - r.change_at) * 1000,"
            " extract(epoch FROM r.created_at - (r.trigger->>'picked_at')::timestamptz) * 1000,"
            " extract(epoch FROM s.finished_at - r.created_at) * 1000,"
            " j.started_at IS NULL OR s.finished_at < j.started_at"
            " FROM automation_runs r JOIN automation_steps s ON s.run_id = r.id AND s.seq = 0"
            " LEFT JOIN jobs j ON j.dedupe_key = 'automation.run:' || r.id"
            " WHERE r.id > %s AND r.change_at IS NOT NULL",
            (first_run,),
        ).fetchall()
    lat.sort()

    def pct(q: float, xs: list[float] = lat) -> float:
        xs = sorted(xs)
        return xs[min(int(q * len(xs)), len(xs) - 1)] if xs else float("nan")

    out = {
        "load_avg_1m": float(Path("/proc/loadavg").read_text().split()[0]),  # at its end
        "offered_per_s": offered,
        "runs": float(len(lat)),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }
    for i, name in enumerate(("wake", "match", "step")):
        xs = [float(r[i]) for r in parts if r[i] is not None]
        out[f"{name}_p50_ms"], out[f"{name}_p99_ms"] = pct(0.50, xs), pct(0.99, xs)
    out["inline_share"] = sum(1 for r in parts if r[3]) / len(parts) if parts else float("nan")
    return out


async def start_crash_runs(dsn: str, wid: int, n: int) -> None:
    from psycopg import AsyncConnection

    from automation import runs

    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT version FROM automation_workflows WHERE id = %s", (wid,))
        version = int(scalar(await cur.fetchone()))
        for _ in range(n):
            await runs.start(
                conn,
                wid,
                version,
                record_object=None,
                record_id=None,
                trigger={"event": "manual"},
                why="bench",
            )
        await conn.commit()


def crash_phase(dsn: str, wid: int, n: int, workers: int, kills: int) -> dict[str, float]:
    import psycopg

    steps_total = n * 5
    asyncio.run(start_crash_runs(dsn, wid, n))
    done_sql = "SELECT count(*) FROM automation_steps s JOIN automation_runs r ON r.id = s.run_id WHERE r.workflow_id = %s AND s.status = 'done'"
    start = time.perf_counter()
    killed = 0
    for k in range(kills):
        procs = start_workers(dsn, workers, lease_s=3.0, concurrency=4)
        target = steps_total * (k + 1) // (kills + 1)
        while count(dsn, done_sql, (wid,)) < target:
            time.sleep(0.2)
        stop(procs, signal.SIGKILL)
        killed += 1
    procs = start_workers(dsn, workers, lease_s=3.0, concurrency=4)
    try:
        while (
            count(
                dsn,
                "SELECT count(*) FROM automation_runs WHERE workflow_id = %s AND status IN ('ready', 'waiting')",
                (wid,),
            )
            > 0
        ):
            time.sleep(0.5)
    finally:
        stop(procs)
    elapsed = time.perf_counter() - start
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT subject, count(*) FROM activities WHERE subject LIKE 'crash %%' GROUP BY subject"
        ).fetchall()
        run_ids = [
            int(r[0])
            for r in conn.execute(
                "SELECT id FROM automation_runs WHERE workflow_id = %s", (wid,)
            ).fetchall()
        ]
        failed = int(
            scalar(
                conn.execute(
                    "SELECT count(*) FROM automation_runs WHERE workflow_id = %s"
                    " AND status <> 'completed'",
                    (wid,),
                ).fetchone()
            )
        )
    counts = {str(s): int(c) for s, c in rows}
    expected = {f"crash {r} {k}" for r in run_ids for k in range(5)}
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    lost = len(expected - set(counts))
    return {
        "runs": float(n),
        "kills": float(killed),
        "duplicate_effects": float(duplicates),
        "lost_effects": float(lost),
        "not_completed": float(failed),
        "steps_per_s": steps_total / elapsed,
    }


# --------------------------------------------------------------------------- main


async def worker_main(dsn: str, lease_s: float, concurrency: int) -> None:
    from automation.jobs import register
    from kernel.jobs import Registry, Worker

    registry = Registry()
    register(registry)
    stop_ev = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop_ev.set)
    await Worker(
        dsn, registry, concurrency=concurrency, poll_s=0.2, lease_s=lease_s, grace_s=5.0
    ).run(stop_ev)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--worker", nargs=3, metavar=("DSN", "LEASE_S", "CONCURRENCY"), help=argparse.SUPPRESS
    )
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker_main(args.worker[0], float(args.worker[1]), int(args.worker[2])))
        return

    from rich.console import Console
    from rich.table import Table

    from fieldmesh import services
    from fieldmesh.migrate import upgrade
    from kernel.settings import load_settings

    console = Console()
    rng = random.Random(19)
    quick = args.quick
    settings = load_settings()
    services.stop_at_exit_if_started(settings)
    services.ensure_up(settings, migrate=False)
    name = "fm_bench_automation"
    services.drop_database(settings, name)
    dsn = services.create_database(settings, name)
    upgrade(dsn)

    import psycopg

    with psycopg.connect(dsn) as conn:
        stage_ids = [
            int(r[0]) for r in conn.execute("SELECT id FROM pipeline_stages ORDER BY id").fetchall()
        ]
    defs = make_definitions(rng, stage_ids, hot=10)
    changes = make_changes(rng, 10_000, stage_ids)

    console.print(
        f"[bold]1. matching in process[/]: {N_DEFINITIONS} definitions, {len(changes)} changes"
    )
    m = bench_matching(defs, changes)

    console.print("[bold]setup[/]: saving the definitions")
    ctx = asyncio.run(setup_db(dsn, defs))

    procs = start_workers(dsn, args.workers, lease_s=10.0, concurrency=4)
    try:
        time.sleep(2.0)
        console.print("[bold]2. matching through the outbox[/]: 10,000 changes/s offered")
        db = offer_changes(dsn, 10_000.0, 1.0 if quick else 3.0, changes)
        console.print("[bold]3. trigger to first action[/]: 1,000 record updates/s")
        lat = latency_phase(dsn, 1000.0, 3.0 if quick else 10.0, rng)
    finally:
        stop(procs)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE automation_workflows SET active = false WHERE id <> %s", (ctx["crash"],)
        )
        conn.execute("UPDATE automation_workflows SET active = true WHERE id = %s", (ctx["crash"],))
        conn.execute(
            "UPDATE automation_runs SET status = 'stopped' WHERE status IN ('ready', 'waiting')"
        )
    n_runs = 1000 if quick else 10_000
    console.print(f"[bold]4. crash run[/]: {n_runs} runs of 5 steps, workers SIGKILLed 3 times")
    crash = crash_phase(dsn, ctx["crash"], n_runs, args.workers, kills=3)

    table = Table(title="automation")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        (
            "matcher, indexed and compiled (changes/s, 500 definitions)",
            f"{m['indexed_changes_per_s']:,.0f}",
        ),
        ("baseline: every definition interpreted (changes/s)", f"{m['naive_changes_per_s']:,.0f}"),
        (
            "speed-up over the baseline",
            f"{m['indexed_changes_per_s'] / m['naive_changes_per_s']:.1f}x",
        ),
        ("matches per change", f"{m['matches_per_change']:.3f}"),
        ("outbox: offered (changes/s)", f"{db['offered_per_s']:,.0f}"),
        ("outbox: matched, DB included (changes/s)", f"{db['matched_per_s']:,.0f}"),
        ("record updates offered (changes/s)", f"{lat['offered_per_s']:,.0f}"),
        ("load average (1 min) at the latency phase's end", f"{lat['load_avg_1m']:.1f}"),
        ("runs started in the latency phase", f"{lat['runs']:.0f}"),
        ("trigger to first action p50 (ms)", f"{lat['p50_ms']:.0f}"),
        ("trigger to first action p99 (ms)", f"{lat['p99_ms']:.0f}"),
        (
            "  of which wake-up / matching / first action, p50 (ms)",
            f"{lat['wake_p50_ms']:.0f} / {lat['match_p50_ms']:.0f} / {lat['step_p50_ms']:.0f}",
        ),
        (
            "  of which wake-up / matching / first action, p99 (ms)",
            f"{lat['wake_p99_ms']:.0f} / {lat['match_p99_ms']:.0f} / {lat['step_p99_ms']:.0f}",
        ),
        ("  first actions taken in the matcher's transaction", f"{lat['inline_share']:.0%}"),
        ("crash run: runs / kills", f"{crash['runs']:.0f} / {crash['kills']:.0f}"),
        ("crash run: steps/s (kills and leases included)", f"{crash['steps_per_s']:,.0f}"),
        (
            "crash run: duplicated / lost effects",
            f"{crash['duplicate_effects']:.0f} / {crash['lost_effects']:.0f}",
        ),
        ("crash run: runs not completed", f"{crash['not_completed']:.0f}"),
    ]
    for a, b in rows:
        table.add_row(a, b)
    console.print(table)
    services.drop_database(settings, name)
    print(
        json.dumps(
            {
                "trigger_evals_per_s": round(db["matched_per_s"]),
                "trigger_to_action_p99_ms": round(lat["p99_ms"], 1),
                "duplicate_effects": int(crash["duplicate_effects"]),
                "lost_effects": int(crash["lost_effects"]),
                "trigger_to_action_p50_ms": round(lat["p50_ms"], 1),
                "latency_p99_ms_wake_match_first_action": [
                    round(lat["wake_p99_ms"], 1),
                    round(lat["match_p99_ms"], 1),
                    round(lat["step_p99_ms"], 1),
                ],
                "first_actions_in_matcher": round(lat["inline_share"], 3),
                "load_avg_1m_latency_phase": lat["load_avg_1m"],
                "load_avg_1m_end": float(Path("/proc/loadavg").read_text().split()[0]),
                "matcher_in_process_per_s": round(m["indexed_changes_per_s"]),
                "baseline_naive_per_s": round(m["naive_changes_per_s"]),
                "outbox_offered_per_s": round(db["offered_per_s"]),
                "crash_runs": int(crash["runs"]),
                "crash_kills": int(crash["kills"]),
                "crash_not_completed": int(crash["not_completed"]),
                "quick": quick,
            }
        )
    )


if __name__ == "__main__":
    main()
