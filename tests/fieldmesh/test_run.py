"""`fieldmesh run` as a user starts it: one subprocess that supervises every role.

With only `fieldmesh run` started (api, gateway, sealer, dispatcher, jobs), a simulated
pump wears out -> alert -> urgent work order -> re-plan -> the rep's simulated phone takes
the new route. Then a role's process is killed and comes back, and SIGTERM stops every
process. The fleet (devices and phones) runs in the test, in simulated time; the
dispatcher follows the phones' clock (`--dispatch-clock fleet`).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fieldmesh import services
from fieldmesh.closed_loop import loop_steps
from fieldmesh.demo_library import DASHBOARD, REPORTS, seed_library
from fieldmesh.demo_world import DemoWorld, morning_lead_s, seed_history, seed_logins, seed_world
from fieldmesh.migrate import upgrade
from fieldmesh.run import die_with_parent
from firmware_sim.fleet import Fleet, FleetSpec
from kernel.settings import PROJECT_ROOT, Settings
from tests.eventually import eventually
from tests.gateway.harness import settings_env
from tests.ports import reserve

SPEEDUP = 600.0
WAIT_S = 240.0  # a bound on waiting, never an assertion on speed


def _free_block(n: int) -> int:
    """A base port with the n ports from it free on loopback, recorded in the test
    sessions' shared registry (a random pick outside it collided with another worker's
    service, and `fieldmesh run` refused to start: "ports taken")."""
    _singles, (base,) = reserve(0, blocks=(n,))
    return base


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


@dataclass
class Product:
    proc: subprocess.Popen[bytes]
    base_port: int
    settings: Settings
    fleet: Fleet
    world: DemoWorld
    log: Path

    def health(self) -> tuple[int, Any]:
        return _get(f"http://127.0.0.1:{self.base_port + 1}/health")

    def wait_healthy(self) -> dict[str, Any]:
        def healthy() -> dict[str, Any]:
            assert self.proc.poll() is None, f"fieldmesh run exited; log:\n{self.tail()}"
            try:
                status, body = self.health()
            except OSError:
                return {}
            return dict(body) if status == 200 else {}

        return eventually(healthy, timeout_s=WAIT_S, interval_s=0.5, what="every role healthy")

    def pids(self) -> dict[str, int]:
        _status, body = self.health()
        return {
            f"{role}-{c['index']}": c["pid"]
            for role, children in body["roles"].items()
            for c in children
            if c["pid"] is not None
        }

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def product(services_up: Settings, tmp_path: Path) -> Iterator[Product]:
    name = f"fm_run_{uuid.uuid4().hex[:8]}"
    dsn = services.create_database(services_up, name)
    upgrade(dsn)
    tenant = f"t{uuid.uuid4().hex[:10]}"
    settings = services_up.with_overrides(database_url=dsn, tenant=tenant)
    tmp = tmp_path
    spec = FleetSpec(
        tenant=tenant,
        devices=4,
        reps=2,
        speedup=SPEEDUP,
        seed=11,
        radius_m=4_000.0,
        failure_probability=0.0,
        forced_failure_s=(2 * SPEEDUP, 14 * SPEEDUP),
        lead_s=morning_lead_s(time.time(), 300 * SPEEDUP),
    )
    fleet = Fleet(settings, spec, tmp / "fleet")
    fleet.register(dsn)
    with psycopg.connect(dsn) as conn:
        world = seed_world(conn, fleet)
    base = _free_block(6)
    # every service port of the session's state dir (with its state dir alone, the
    # product's `up` started a second Radicale that `down` then stopped instead of the first)
    env = settings_env(settings)
    env.update(FIELDMESH_HTTP_PORT=str(base), FIELDMESH_TENANT=tenant)
    log = tmp / "run.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fieldmesh",
                "-v",
                "run",
                "--workers",
                "1",
                "--dispatch-clock",
                "fleet",
                "--stop-timeout-s",
                "20",
            ],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # a killed test run leaves no supervisor behind
        )
    product = Product(proc, base, settings, fleet, world, log)
    try:
        yield product
    finally:
        fleet.stop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        services.drop_database(services_up, name)


def step_every_role_reports_healthy(product: Product) -> None:
    body = product.wait_healthy()
    assert sorted(body["roles"]) == ["api", "dispatcher", "gateway", "jobs", "sealer"]
    assert all(c["status"] == "ok" for cs in body["roles"].values() for c in cs)
    status, api = _get(f"http://127.0.0.1:{product.base_port}/health")
    assert (status, api) == (200, {"status": "ok"})
    conn = http.client.HTTPConnection("127.0.0.1", product.base_port, timeout=10)
    conn.request("GET", "/")
    front = conn.getresponse()
    assert (front.status, front.getheader("Location")) == (302, "/console/")
    conn.close()


def step_the_demo_logins_sign_in(product: Product) -> None:
    product.wait_healthy()
    with psycopg.connect(product.settings.dsn) as conn:
        logins = seed_logins(conn, product.world, product.settings.tenant)
        history = seed_history(conn, product.world, product.settings.tenant)
    seed_library(product.settings.dsn, product.settings.tenant)
    assert not seed_library(product.settings.dsn, product.settings.tenant).created
    assert [x.role for x in logins] == ["admin", "manager", "sales", "rep"]
    assert history.opportunities > 0 and history.leads > 0 and history.activities > 0
    for login in logins:
        body = json.dumps({"email": login.email, "password": login.password}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{product.base_port}/api/v1/auth/token",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 201, login.role
            token = json.loads(r.read())["token"]
        me = urllib.request.Request(
            f"http://127.0.0.1:{product.base_port}/api/v1/auth/me",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(me, timeout=30) as r:
            who = json.loads(r.read())
            # the sales login is a rep without a phone: the rep role, on the pipeline
            assert who["role"] == {"sales": "rep"}.get(login.role, login.role)
            # times shown in the world's zone (Lyon's), not UTC
            assert who["timezone"] == product.world.timezone == "Europe/Paris"
        for what, names in (("reports", {r[0] for r in REPORTS}), ("dashboards", {DASHBOARD})):
            saved = urllib.request.Request(
                f"http://127.0.0.1:{product.base_port}/api/v1/{what}",
                headers={"Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(saved, timeout=30) as r:  # the demo's, shared
                assert {x["name"] for x in json.loads(r.read())["items"]} == names, login.role
        if login.role == "sales":  # the year of history is in the sales rep's territory
            deals = urllib.request.Request(
                f"http://127.0.0.1:{product.base_port}/api/v1/opportunities?total=true",
                headers={"Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(deals, timeout=30) as r:
                assert json.loads(r.read())["total"] >= history.opportunities


def step_an_alert_reaches_the_reps_phone_as_a_new_route(product: Product) -> None:
    product.wait_healthy()
    fleet, world = product.fleet, product.world
    pump = fleet.equipment()[0][0]
    fleet.start()

    def steps_so_far() -> list[str]:
        assert product.proc.poll() is None, product.tail()
        with psycopg.connect(product.settings.dsn) as conn:
            keys = [s.key for s in loop_steps(conn, pump, world.last_visit_id)]
        return keys if "en_route" in keys else []

    steps = eventually(steps_so_far, timeout_s=WAIT_S, interval_s=0.5, what="the phone en route")
    assert steps[:4] == ["alert", "work_order", "plan", "en_route"], (
        f"the loop stopped after {steps}\n{product.tail()}"
    )
    with psycopg.connect(product.settings.dsn) as conn:
        row = conn.execute(
            "SELECT w.id, w.assignee_id FROM work_orders w JOIN alerts a"
            " ON w.source_ref = 'alert:' || a.alert_id WHERE a.device_id = %s",
            (pump,),
        ).fetchone()
    assert row is not None
    wo_id, rep_id = row
    phone = next(d for d, u in world.reps.items() if u == rep_id)
    navigator = dict(fleet.phones())[phone]
    assert any(f"wo:{wo_id}" in r.visit_ids for r in navigator.routes())
    _status, body = product.health()
    assert body["roles"]["dispatcher"][0]["detail"]["dispatched"] >= 1


def step_a_killed_role_is_restarted(product: Product) -> None:
    product.wait_healthy()
    before = product.pids()
    os.kill(before["jobs-0"], signal.SIGKILL)

    def restarted() -> dict[str, Any]:
        status, body = product.health()
        jobs: dict[str, Any] = body["roles"]["jobs"][0]
        back = status == 200 and jobs["restarts"] == 1 and jobs["pid"] != before["jobs-0"]
        return jobs if back else {}

    jobs = eventually(restarted, timeout_s=WAIT_S, interval_s=0.3, what="jobs-0 restarted")
    assert jobs["restarts"] == 1 and jobs["last_exit"] == -signal.SIGKILL, jobs
    assert jobs["status"] == "ok" and jobs["pid"] != before["jobs-0"]
    after = product.pids()
    assert {k: v for k, v in after.items() if k != "jobs-0"} == {
        k: v for k, v in before.items() if k != "jobs-0"
    }  # the others went on


def step_sigterm_stops_every_process(product: Product) -> None:
    product.wait_healthy()
    children = list(product.pids().values())
    product.proc.send_signal(signal.SIGTERM)
    assert product.proc.wait(90) == 0
    left = [pid for pid in children if _pid_alive(pid)]
    assert left == [], f"still running: {left}"
    with pytest.raises(OSError):
        _get(f"http://127.0.0.1:{product.base_port}/health")


def test_fieldmesh_run_runs_the_whole_product(product: Product) -> None:
    """One scenario in named steps (one process of the product, whatever xdist does)."""
    step_every_role_reports_healthy(product)
    step_the_demo_logins_sign_in(product)
    step_an_alert_reaches_the_reps_phone_as_a_new_route(product)
    step_a_killed_role_is_restarted(product)
    step_sigterm_stops_every_process(product)


def test_a_port_range_past_65535_is_a_bad_setting(services_up: Settings) -> None:
    env = dict(
        os.environ, FIELDMESH_HTTP_PORT="65533", FIELDMESH_STATE_DIR=str(services_up.state_dir)
    )
    result = subprocess.run(
        [sys.executable, "-m", "fieldmesh", "run"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "FIELDMESH_HTTP_PORT=65533" in result.stderr
