"""Chaos for the whole product under `fieldmesh run`: while a fleet streams telemetry and
API clients create and list records (each create carrying an Idempotency-Key and retried
until answered), the API worker, the jobs worker and the gateway are SIGKILLed and the
product database's connections are terminated, at random. At the end: telemetry
stored exactly once, every account created exactly once, the workflow each creation starts
took its effect (a task) exactly once, and the API's error rate is reported.

Bounded: FIELDMESH_SOAK_S seconds of chaos (default 60; an hour with 3600). Loopback only.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from typing import Any

import psycopg

from fieldmesh.demo_world import seed_logins
from tests.eventually import eventually
from tests.fieldmesh.test_run import Product, product  # noqa: F401 -- the fixture
from tests.gateway.harness import stored_counts

SOAK_S = float(os.environ.get("FIELDMESH_SOAK_S", "60"))
# the broker is this test session's own (other tests share it): its SIGKILL is in
# tests/gateway/test_chaos.py, on private services
ACTIONS = ("api", "jobs", "gateway", "connections")


def _call(base: str, method: str, path: str, token: str, body: Any = None,
          key: str | None = None) -> tuple[int, Any]:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:  # refused or reset while a worker restarts
        return 0, None


class Clients(threading.Thread):
    """Creates accounts (retrying each with its key until answered) and lists them."""

    def __init__(self, base: str, token: str, tag: str) -> None:
        super().__init__(daemon=True)
        self.base, self.token, self.tag = base, token, tag
        self.stop = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.created: list[str] = []

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            name, key = f"{self.tag}-{i}", f"soak-{self.tag}-{i}"
            while True:  # the same key until the API answers: at most one account
                status, _ = _call(self.base, "POST", "/api/v1/accounts", self.token,
                                  {"name": name}, key)  # fmt: skip
                self.statuses[status] += 1
                if status in (200, 201):
                    self.created.append(name)
                    break
                time.sleep(0.2)
            status, _ = _call(self.base, "GET", "/api/v1/accounts?limit=20", self.token)
            self.statuses[status] += 1
            time.sleep(0.05)


def test_the_product_survives_random_kills_with_exactly_once_effects(product: Product) -> None:  # noqa: F811
    rng = random.Random(int(os.environ.get("FIELDMESH_SOAK_SEED", "7")))
    product.wait_healthy()
    base = f"http://127.0.0.1:{product.base_port}"
    with psycopg.connect(product.settings.dsn) as conn:
        admin = seed_logins(conn, product.world, product.settings.tenant)[0]
    status, tok = _call(base, "POST", "/api/v1/auth/token", "",
                        {"email": admin.email, "password": admin.password})  # fmt: skip
    assert status == 201
    token = tok["token"]
    tag = f"soak{uuid.uuid4().hex[:6]}"
    # the clients create faster than a workflow's default guard (600 runs/min), which
    # drops (and counts) the excess by design; this test is about exactly-once
    wf = {"name": "Welcome call", "max_runs_per_min": 100_000, "trigger": {"on": "accounts.created"},
          "steps": [{"id": "call", "action": "create_task", "type": "call",
                     "subject": "Welcome call: {{record.name}}"}]}  # fmt: skip
    status, _ = _call(base, "POST", "/api/v1/automation/workflows", token, {"definition": wf})
    assert status == 201
    product.fleet.start()
    clients = Clients(base, token, tag)
    clients.start()
    done: list[str] = []
    plan = list(ACTIONS)
    rng.shuffle(plan)
    end = time.monotonic() + SOAK_S
    try:
        while time.monotonic() < end or plan:
            time.sleep(rng.uniform(4, 8))
            action = plan.pop(0) if plan else rng.choice(ACTIONS)
            done.append(action)
            if action in ("api", "jobs", "gateway"):
                pid = product.pids().get(f"{action}-0")  # None: still restarting
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)  # the supervisor restarts it
            else:
                with psycopg.connect(product.settings.dsn, autocommit=True) as conn:
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                        " AND datname = current_database()"
                    )
    finally:
        clients.stop.set()
        clients.join(timeout=60)
    print(f"chaos actions: {done}")

    def all_healthy() -> bool:
        try:
            status, body = product.health()
        except OSError:
            return False
        if status != 200:  # which role, and why (one line)
            bad = {r: [c.get("detail") for c in cs if c["status"] != "ok"]
                   for r, cs in body.get("roles", {}).items()}  # fmt: skip
            print("health:", status, json.dumps({k: v for k, v in bad.items() if v})[:300])
        return status == 200

    assert eventually(all_healthy, timeout_s=240, interval_s=2, what="every role back"), (
        product.tail()
    )
    total = sum(clients.statuses.values())
    errors = sum(n for s, n in clients.statuses.items() if s == 0 or s >= 500)
    print(f"chaos {done}; API answers {dict(clients.statuses)}; error rate {errors / total:.2%}")
    assert not any(400 <= s < 500 for s in clients.statuses), clients.statuses
    # a request caught by a kill is refused (0) or told to retry (503), never a 500
    assert clients.statuses.get(500, 0) == 0, clients.statuses
    assert len(clients.created) > 10
    # telemetry exactly once (the fleet's own count of what the gateway confirmed)
    assert product.fleet.quiesce(timeout_s=120), "messages never confirmed"
    tot = product.fleet.totals()
    counts = stored_counts(product.settings.dsn, product.settings.tenant)
    assert counts.samples == tot["samples"] == counts.distinct_samples
    assert counts.fixes == tot["fixes"] == counts.distinct_fixes
    product.fleet.stop()
    names = clients.created

    def settled() -> list[tuple[str, int, int]] | None:
        with psycopg.connect(product.settings.dsn) as conn:
            rows = conn.execute(
                "SELECT a.name, count(DISTINCT a.id),"
                " (SELECT count(*) FROM activities t WHERE t.account_id = min(a.id)"
                "  AND t.subject = 'Welcome call: ' || a.name)"
                " FROM accounts a WHERE a.name = ANY(%s) GROUP BY a.name",
                (names,),
            ).fetchall()
        out = [(str(r[0]), int(r[1]), int(r[2])) for r in rows]
        return out if len(out) == len(names) and all(t == 1 for _, _, t in out) else None

    try:
        rows = eventually(settled, timeout_s=300, interval_s=1, what="every workflow's task")
    except AssertionError:
        with psycopg.connect(product.settings.dsn) as conn:
            runs = conn.execute(
                "SELECT status, count(*) FROM automation_runs GROUP BY 1"
            ).fetchall()
            jobs = conn.execute(
                "SELECT task, status, count(*), max(last_error) FROM jobs"
                " WHERE task LIKE 'automation%%' GROUP BY 1, 2"
            ).fetchall()
            left = conn.execute("SELECT count(*) FROM automation_changes").fetchone()
            locks = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            ).fetchone()
            tasks = conn.execute(
                "SELECT n, count(*) FROM (SELECT a.name, (SELECT count(*) FROM activities t"
                " WHERE t.account_id = a.id AND t.subject = 'Welcome call: ' || a.name) AS n"
                " FROM accounts a WHERE a.name = ANY(%s)) x GROUP BY n",
                (names,),
            ).fetchall()
        raise AssertionError(
            f"workflow effects not settled: tasks per account {tasks}; runs {runs}; jobs {jobs};"
            f" changes left {left}; advisory locks held {locks}"
        ) from None
    assert all(n == 1 for _, n, _ in rows), "an account created twice"
    with psycopg.connect(product.settings.dsn) as conn:
        assert conn.execute(
            "SELECT coalesce(sum(dropped_triggers), 0) FROM automation_workflows"
        ).fetchone() == (0,)
    assert all(t == 1 for _, _, t in rows), "a workflow effect lost or repeated"
