"""bench-devices: enrolment throughput and staged OTA rollout time for N real-path devices.

Everything real: the embedded PostgreSQL and Mosquitto (started through the service code
and stopped again if this started them), the API (`fieldmesh serve`) and a gateway as
subprocesses, and N edge agents in this process that enrol over HTTP with one-time tokens
(Ed25519 proof, broker account through the dynamic-security plugin), then take a 100 %
rollout of a signed image (download, verify, A/B switch, boot, ack, new version reported).

Baselines measured in the same run:
- enrolment: creating the same number of broker accounts alone (`provision_mqtt_users`,
  one per call as enrolment does), the floor under any enrolment, since the plugin
  rewrites its file after each change;
- rollout: a `ping` to every device until all are acked (command out, ack in through the
  gateway), the floor under any rollout round.
Last line: JSON with devices, enrolments_per_s, broker_accounts_per_s, rollout_s,
ping_all_s, rollout_devices_per_s.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection
from rich.console import Console

from edge_agent.__main__ import build_agent
from edge_agent.agent import EdgeAgent
from edge_agent.enrol import enrol
from edge_agent.ota import firmware_message
from fieldmesh import services
from fieldmesh.migrate import upgrade
from firmware_sim.ota import build_image, sim_boot
from identity import auth
from kernel import broker
from kernel.settings import PROJECT_ROOT, Settings, load_settings
from ledger.verify import b64url_encode

console = Console()
MODEL = "bench-pump"


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


TENANT = "fmbenchdevices"  # the bench's own: its gateway session must not take real traffic


def _env(settings: Settings, dsn: str) -> dict[str, str]:
    return dict(
        os.environ,
        FIELDMESH_TENANT=TENANT,
        DATABASE_URL=dsn,
        FIELDMESH_STATE_DIR=str(settings.state_dir),
        FIELDMESH_PG_PORT=str(settings.pg_port),
        FIELDMESH_MQTT_PORT=str(settings.mqtt_port),
    )


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "fieldmesh", *args],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


async def _admin_token(dsn: str) -> str:
    async with await AsyncConnection.connect(dsn) as conn:
        uid = await auth.create_user(
            conn,
            email=f"bench-{uuid.uuid4().hex[:6]}@x.test",
            name="Bench",
            role="admin",
            password="bench-pass-1",
        )
        token = (await auth.issue_token(conn, uid, "bench"))[1]
        await conn.commit()
    return str(token)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--devices", type=int, default=None)
    args, _ = ap.parse_known_args(argv)
    n = args.devices or (10 if args.quick else 50)
    settings = load_settings()
    console.print(f"[bold]fieldmesh devices benchmark[/] — {n} devices; starting services")
    services.stop_at_exit_if_started(settings)
    services.ensure_up(settings, migrate=False)
    name = "fm_bench_devices"
    services.drop_database(settings, name)
    dsn = services.create_database(settings, name)
    upgrade(dsn)
    env = _env(settings, dsn)
    work = Path(tempfile.mkdtemp(prefix="fm-bench-devices-"))
    api_port, gw_port = _port(), _port()
    tag = uuid.uuid4().hex[:6]
    procs = [
        _start(["serve", "--port", str(api_port)], env, work / "api.log"),
        _start(
            [
                "gateway",
                "--tenant",
                TENANT,
                "--instance",
                f"bench-dev-{tag}",
                "--http-port",
                str(gw_port),
            ],
            env,
            work / "gateway.log",
        ),
    ]
    agents: list[tuple[EdgeAgent, threading.Thread]] = []
    stop = threading.Event()
    try:
        base = f"http://127.0.0.1:{api_port}"
        _wait(base + "/health")
        _wait(f"http://127.0.0.1:{gw_port}/health")
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {asyncio.run(_admin_token(dsn))}"
        api = base + "/api/v1"
        key = Ed25519PrivateKey.generate()
        pub = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        r = s.post(
            api + "/release-keys", json={"key_id": f"bench-{tag}", "public_key": b64url_encode(pub)}
        )
        r.raise_for_status()

        # baseline: broker accounts alone, one call each
        t0 = time.perf_counter()
        for i in range(n):
            broker.provision_mqtt_users(settings, [f"bench-base-{tag}-{i}"])
        accounts_per_s = n / (time.perf_counter() - t0)
        console.print(f"broker accounts alone: {accounts_per_s:.1f}/s")

        tokens = []
        for _ in range(n):
            r = s.post(api + "/enrolment-tokens", json={"equipment_model": MODEL})
            r.raise_for_status()
            tokens.append(r.json()["token"])
        ids = [f"bench-{tag}-{i:04d}" for i in range(n)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(
                pool.map(
                    lambda it: enrol(base, it[1], it[0], work / it[0], equipment_model=MODEL),
                    zip(ids, tokens, strict=True),
                )
            )
        enrol_s = time.perf_counter() - t0
        enrolments_per_s = n / enrol_s
        console.print(
            f"enrolments (HTTP, key proof, token, broker account): {enrolments_per_s:.1f}/s"
        )

        for d in ids:
            agent = build_agent(work / d, MODEL, "1.0.0", boot=sim_boot(MODEL))
            t = threading.Thread(target=agent.run, args=(stop,), daemon=True)
            t.start()
            agents.append((agent, t))
        deadline = time.monotonic() + 120
        while sum(a.counters.connects > 0 for a, _ in agents) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("devices did not connect")
            time.sleep(0.2)

        # baseline: one ping to every device, until all are acked
        t0 = time.perf_counter()
        cmds = []
        for d in ids:
            r = s.post(f"{api}/devices/{d}/commands", json={"name": "ping"})
            r.raise_for_status()
            cmds.append((d, r.json()["command_id"]))
        pending = set(cmds)
        while pending:
            for d, c in list(pending):
                if s.get(f"{api}/devices/{d}/commands/{c}").json()["state"] != "sent":
                    pending.discard((d, c))
            if time.perf_counter() - t0 > 300:
                raise RuntimeError("pings were not acked")
            time.sleep(0.1)
        ping_all_s = time.perf_counter() - t0
        console.print(f"ping every device, all acked: {ping_all_s:.2f} s")

        image = build_image(MODEL, "2.0.0", size_bytes=256 * 1024)
        sig = b64url_encode(
            key.sign(firmware_message(MODEL, "2.0.0", hashlib.sha256(image).hexdigest()))
        )
        r = s.post(
            api + "/firmware",
            params={
                "equipment_model": MODEL,
                "version": "2.0.0",
                "key_id": f"bench-{tag}",
                "signature": sig,
            },
            data=image,
            headers={"Content-Type": "application/octet-stream"},
        )
        r.raise_for_status()
        sha = r.json()["sha256"]
        wave = max(1, n // 5)
        t0 = time.perf_counter()
        r = s.post(api + "/rollouts", json={"sha256": sha, "percent": 100, "wave_size": wave})
        r.raise_for_status()
        rid = r.json()["id"]
        state: dict[str, Any] = r.json()
        while state["state"] == "running":
            if time.perf_counter() - t0 > 600:
                raise RuntimeError("rollout did not finish")
            time.sleep(0.2)
            state = s.get(f"{api}/rollouts/{rid}").json()
        rollout_s = time.perf_counter() - t0
        console.print(
            f"rollout of {len(image) // 1024} KiB to {n} devices in waves of {wave}: {rollout_s:.2f} s "
            f"({state['state']}, {state['succeeded']} succeeded, {state['failed']} failed)"
        )
        if state["state"] != "completed" or state["succeeded"] != n:
            raise RuntimeError(f"rollout ended {state}")
        console.print(
            f"ratios: enrolment / broker account alone = {enrolments_per_s / accounts_per_s:.2f}; "
            f"rollout / ping-all = {rollout_s / ping_all_s:.1f}"
        )
        print(
            json.dumps(
                {
                    "devices": n,
                    "enrolments_per_s": round(enrolments_per_s, 2),
                    "broker_accounts_per_s": round(accounts_per_s, 2),
                    "rollout_s": round(rollout_s, 2),
                    "ping_all_s": round(ping_all_s, 2),
                    "rollout_devices_per_s": round(n / rollout_s, 2),
                    "wave_size": wave,
                    "image_bytes": len(image),
                }
            )
        )
        return 0
    finally:
        stop.set()
        for _, t in agents:
            t.join(10)
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        services.drop_database(settings, name)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
