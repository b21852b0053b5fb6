"""bench-phone: reps' phones as field devices -- GPS fix-to-map latency, the battery proxy,
and push send-to-shown.

Starts what it needs through the product's code (embedded PostgreSQL and Mosquitto with its
WebSockets listener, the API and jobs roles, a gateway, the local push service) on a fresh
database and a tenant of its own, registers N phones through the API (each gets its own
broker account), and drives them at 1 Hz:

* Phones are protocol-level clients (paho over MQTT-over-WebSockets, as the PWA's MQTT.js)
  that batch with the PWA's own rules and parameters (`phone.gps.GpsOutbox` and `POLICY`:
  the same topic, window, seqs, receipts and distance filter as gps.js). 90% drive at
  10 m/s, 10% are parked at a site (the distance filter keeps them quiet).
* fix-to-map: an admin's live-map WebSocket (/console/live, what the console's map reads)
  receives each phone's positions; latency = arrival - the fix's own timestamp (the
  phone's clock, the same host here).
* battery proxy: fixes per upload and uploads per minute per phone (moving and parked).
* Baseline in the same run: the same phones and rules over plain MQTT/TCP (the edge
  agents' transport), so the WebSockets hop is measured against the devices' path.
* push: a sample of notifications (notify_user) delivered by the notify.push job
  (pywebpush, VAPID) to web-push-testing, handed to a real service worker in Chromium,
  shown; send-to-shown = shown (service worker clock) - sent (the job, just before
  encrypting). Baseline: the push service's own POST round trip (encrypt + HTTP) alone.

Last line: JSON with phones, fix_to_map_p99_ms, uploads_per_min, push_to_shown_p95_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from fieldmesh import services
from fieldmesh.migrate import upgrade
from fieldmesh.svc_pushtest import LocalPushService
from kernel.settings import PROJECT_ROOT, Settings, load_settings, parse_networks
from phone.gps import POLICY, GpsOutbox

OUT = PROJECT_ROOT / "bench" / "out"
PASSWORD = "bench-phone-password"


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def _wait_http(url: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


@dataclass
class SimPhone:
    """One phone: GpsOutbox (the PWA's rules) over one paho client."""

    conn: dict[str, Any]
    transport: Literal["websockets", "tcp"]
    port: int
    start: tuple[float, float]
    parked: bool
    box: GpsOutbox = field(default_factory=GpsOutbox)
    lock: threading.Lock = field(default_factory=threading.Lock)
    connected: bool = False
    uploads: int = 0
    fixes_uploaded: int = 0
    client: Any = None

    def open(self) -> None:
        m = self.conn["mqtt"]
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=m["client_id"],
            protocol=mqtt.MQTTv5,
            transport=self.transport,
        )
        c.username_pw_set(m["username"], m["password"])
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        c.connect_async("127.0.0.1", self.port, keepalive=POLICY.keepalive_s)
        c.loop_start()
        self.client = c

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def _on_connect(self, c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if getattr(rc, "is_failure", False):
            return
        c.subscribe(self.conn["mqtt"]["receipt_topic"], qos=1)
        with self.lock:
            self.connected = True
            self.box.reconnected()
        self.pump()

    def _on_disconnect(self, *_a: Any) -> None:
        with self.lock:
            self.connected = False

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        try:
            seqs = [int(s) for s in json.loads(msg.payload)["seqs"]]
        except (ValueError, KeyError, TypeError):
            return
        with self.lock:
            self.box.receipted(seqs)
        self.pump()

    def add_fix(self, t_ms: int, lon: float, lat: float) -> None:
        with self.lock:
            self.box.add_fix([t_ms, round(lon, 7), round(lat, 7), 8.0, None, None])
        self.pump()

    def pump(self) -> None:
        with self.lock:
            msgs = self.box.due(int(time.time() * 1000), self.connected)
        topic = self.conn["mqtt"]["gps_topic"]
        for m in msgs:
            payload = json.dumps(
                {"v": 1, "seq": m["seq"], "fixes": m["fixes"]}, separators=(",", ":")
            )
            self.client.publish(topic, payload, qos=1)
            self.uploads += 1
            self.fixes_uploaded += len(m["fixes"])


def _watch(
    url: str,
    token: str,
    devices: list[str],
    ready: Any,
    recording: Any,
    flush: Any,
    stop: Any,
    out: Any,
) -> None:
    """In its own process (no GIL shared with the 200 simulated phones): the arrival time of
    each of our phones' positions on an admin's live-map WebSocket, minus the fix's time."""
    import aiohttp

    wanted = set(devices)

    async def run() -> None:
        samples: list[float] = []
        async with (
            aiohttp.ClientSession() as s,
            s.ws_connect(url, headers={"Authorization": f"Bearer {token}"}) as ws,
        ):
            ready.set()
            while not stop.is_set():
                if flush.is_set():
                    out.put(samples)
                    samples = []
                    flush.clear()
                try:
                    msg = await ws.receive(timeout=0.2)
                except TimeoutError:
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
                    continue
                now_ms = time.time() * 1000
                data = json.loads(msg.data)
                if not recording.is_set():
                    continue
                for item in data if isinstance(data, list) else [data]:
                    if item.get("k") == "pos":
                        samples += [
                            now_ms - float(r[3]) for r in item.get("d", []) if r[0] in wanted
                        ]

    asyncio.run(run())


class LiveWatcher:
    """An admin's live-map WebSocket in a process of its own; `recording` gates samples."""

    def __init__(self, base: str, token: str, devices: set[str]) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.ready, self.rec, self.stopping = ctx.Event(), ctx.Event(), ctx.Event()
        self.flush = ctx.Event()
        self.queue: Any = ctx.Queue()
        url = base.replace("http://", "ws://") + "/console/live"
        self.proc = ctx.Process(
            target=_watch,
            args=(
                url,
                token,
                sorted(devices),
                self.ready,
                self.rec,
                self.flush,
                self.stopping,
                self.queue,
            ),
            daemon=True,
        )

    def start(self) -> None:
        self.proc.start()
        self.ready.wait(60)

    @property
    def recording(self) -> bool:
        return self.rec.is_set()

    @recording.setter
    def recording(self, on: bool) -> None:
        if on:
            self.rec.set()
        else:
            self.rec.clear()

    def take(self, wait_s: float = 5.0) -> list[float]:
        """The samples recorded so far (the watcher hands them over and starts afresh)."""
        import queue

        self.flush.set()
        out: list[float] = []
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                out += self.queue.get(timeout=0.5)
                break
            except queue.Empty:
                continue
        return out

    def stop(self) -> None:
        self.stopping.set()
        self.proc.join(10)


def drive(
    phones: list[SimPhone], duration_s: float, watcher: LiveWatcher, warmup_s: float = 5.0
) -> dict[str, float]:
    """Every phone at 1 Hz for warmup + duration; figures over `duration_s`."""
    for p in phones:
        p.open()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(p.connected for p in phones) < len(phones):
        time.sleep(0.1)
    connected = sum(p.connected for p in phones)
    rng = random.Random(7)
    heading = [rng.uniform(0, 6.283) for _ in phones]
    t_start = time.monotonic()
    next_tick = t_start
    k = 0
    base_uploads = base_fixes = 0
    while True:
        now = time.monotonic()
        if now - t_start >= warmup_s + duration_s:
            break
        if not watcher.recording and now - t_start >= warmup_s:
            watcher.recording = True
            base_uploads = sum(p.uploads for p in phones)
            base_fixes = sum(p.fixes_uploaded for p in phones)
        # phones are not synchronised: phone i reads its position at i/N of each second,
        # stamps it with its own clock at that moment and hands it to its outbox at once
        n = len(phones)
        for i, p in enumerate(phones):
            delay = next_tick + i / n - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if p.parked:  # jitter of a metre or two at the site
                d_e, d_n = rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5)
            else:
                d_e, d_n = 10.0 * k * np.cos(heading[i]), 10.0 * k * np.sin(heading[i])
            lon = p.start[0] + d_e / (111_320 * np.cos(np.radians(p.start[1])))
            lat = p.start[1] + d_n / 110_540
            p.add_fix(int(time.time() * 1000), float(lon), float(lat))
        k += 1
        next_tick += 1.0
        time.sleep(max(0.0, next_tick - time.monotonic()))
    watcher.recording = False
    time.sleep(2.0)  # receipts and the last positions
    uploads = sum(p.uploads for p in phones) - base_uploads
    fixes = sum(p.fixes_uploaded for p in phones) - base_fixes
    moving = [p for p in phones if not p.parked]
    parked = [p for p in phones if p.parked]
    for p in phones:
        p.close()
    got = np.array(watcher.take(), dtype=float)
    minutes = duration_s / 60.0
    return {
        "connected": connected,
        "samples": float(got.size),
        "p50": float(np.percentile(got, 50)) if got.size else float("nan"),
        "p99": float(np.percentile(got, 99)) if got.size else float("nan"),
        "uploads_per_min": uploads / len(phones) / minutes,
        "fixes_per_upload": fixes / uploads if uploads else 0.0,
        # over the whole run (warm-up included), per kind of phone
        "moving_uploads_per_min": sum(p.uploads for p in moving)
        / max(1, len(moving))
        / ((warmup_s + duration_s) / 60),
        "parked_uploads_per_min": sum(p.uploads for p in parked)
        / max(1, len(parked))
        / ((warmup_s + duration_s) / 60),
    }


def push_sample(
    base: str, settings: Settings, rep_email: str, rep_id: int, n: int, push: LocalPushService
) -> tuple[list[float], list[float], list[str]]:
    """(send-to-shown ms per push, push-service-only baseline ms, errors)."""
    proc = subprocess.Popen(
        [
            "node",
            str(PROJECT_ROOT / "bench" / "phone_push_probe.cjs"),
            base,
            rep_email,
            PASSWORD,
            push.url,
            str(n),
            str(30 + 3 * n),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise RuntimeError(
            f"push probe: {line} {proc.stderr.read()[-2000:] if proc.stderr else ''}"
        )

    async def fire() -> None:
        from notify.service import notify_user

        async with await psycopg.AsyncConnection.connect(settings.dsn, autocommit=False) as conn:
            for i in range(n):
                await notify_user(
                    conn,
                    user_id=rep_id,
                    kind="work_order.urgent",
                    title=f"Bench push {i}",
                    link="/console/rep/#day",
                    urgent=True,
                    dedupe_key=f"bench:{uuid.uuid4().hex}",
                )
                await conn.commit()
                await asyncio.sleep(0.7)

    asyncio.run(fire())
    out, err = proc.communicate(timeout=60 + 3 * n)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"push probe failed: {err[-2000:]}")
    r = json.loads(lines[-1])
    lat = [float(s["shownMs"]) - float(s["sentMs"]) for s in r["shown"] if s.get("sentMs")]
    base_ms = push_service_baseline(settings, push, max(5, n))
    return lat, base_ms, r["errors"]


def push_service_baseline(settings: Settings, push: LocalPushService, n: int) -> list[float]:
    """The push hop alone: pywebpush encrypt + POST to a fresh subscription, no browser."""
    import aiohttp

    from notify import push as notify_push

    sub = push.subscribe(notify_push.application_server_key(settings))
    s = notify_push.Subscription(0, sub["endpoint"], sub["keys"]["p256dh"], sub["keys"]["auth"])

    async def run() -> list[float]:
        out = []
        async with aiohttp.ClientSession() as session:
            for _ in range(n):
                t0 = time.perf_counter()
                await notify_push.send(session, settings, s, '{"title":"baseline"}', urgent=True)
                out.append((time.perf_counter() - t0) * 1000)
        return out

    return asyncio.run(run())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--phones", type=int)
    args = ap.parse_args()
    n_phones, duration_s, base_s, n_push = (20, 20, 10, 5) if args.quick else (200, 60, 30, 20)
    n_phones = args.phones or n_phones
    run = uuid.uuid4().hex[:6]
    settings = load_settings()
    services.stop_at_exit_if_started(settings)
    services.ensure_up(settings, migrate=False)
    dsn = services.create_database(settings, f"fm_bench_phone_{run}")
    upgrade(dsn)
    tenant = f"bp{run}"
    bset = settings.with_overrides(
        database_url=dsn, tenant=tenant, push_allow=parse_networks("127.0.0.1/32,::1/128", "bench")
    )
    OUT.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        DATABASE_URL=dsn,
        FIELDMESH_TENANT=tenant,
        FIELDMESH_STATE_DIR=str(settings.state_dir),
        FIELDMESH_PG_PORT=str(settings.pg_port),
        FIELDMESH_MQTT_PORT=str(settings.mqtt_port),
        FIELDMESH_MQTT_WS_PORT=str(settings.mqtt_ws_listen_port),
        FIELDMESH_PUSH_ALLOW="127.0.0.1/32,::1/128",
    )
    api_port, jobs_port, gw_port = _port(), _port(), _port()
    base = f"http://127.0.0.1:{api_port}"
    procs: list[subprocess.Popen[bytes]] = []
    logs = {n: open(OUT / f"phone-{n}.log", "wb") for n in ("api", "jobs", "gateway")}  # noqa: SIM115
    push = LocalPushService(_port(), OUT / "phone-push-service.log")
    try:
        for name, cmd in (
            ("api", ["-m", "fieldmesh.roles", "api", "--port", str(api_port)]),
            ("jobs", ["-m", "fieldmesh.roles", "jobs", "--port", str(jobs_port)]),
            (
                "gateway",
                ["-m", "fieldmesh", "gateway", "--tenant", tenant, "--http-port", str(gw_port)],
            ),
        ):
            procs.append(
                subprocess.Popen(
                    [sys.executable, *cmd],
                    env=env,
                    cwd=PROJECT_ROOT,
                    stdout=logs[name],
                    stderr=subprocess.STDOUT,
                )
            )
        _wait_http(f"{base}/health")
        _wait_http(f"http://127.0.0.1:{gw_port}/health")
        push.start()
        tokens, reps = asyncio.run(_people(dsn, n_phones, run))
        t0 = time.perf_counter()
        conns = [
            _call(base, "POST", "/api/v1/phone/devices", {"label": "bench"}, tok)
            for tok in tokens[1:]
        ]
        print(f"{n_phones} phones registered (broker accounts) in {time.perf_counter() - t0:.1f} s")
        devices = {c["device_id"] for c in conns}
        watcher = LiveWatcher(base, tokens[0], devices)
        watcher.start()
        rng = random.Random(3)
        starts = [(4.83 + rng.uniform(-0.1, 0.1), 45.76 + rng.uniform(-0.07, 0.07)) for _ in conns]

        def fleet(transport: Literal["websockets", "tcp"], port: int) -> list[SimPhone]:
            return [
                SimPhone(c, transport, port, starts[i], parked=i % 10 == 9)
                for i, c in enumerate(conns)
            ]

        baseline = drive(fleet("tcp", settings.mqtt_port), base_s, watcher)
        phone_path = drive(fleet("websockets", settings.mqtt_ws_listen_port), duration_s, watcher)
        watcher.stop()
        push_lat, push_base, push_errors = push_sample(
            base, bset, reps[0][0], reps[0][1], n_push, push
        )
    finally:
        push.stop()
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in logs.values():
            f.close()
        services.drop_database(settings, dsn.rsplit("/", 1)[1])
    pl = np.array(push_lat)
    p95_push = float(np.percentile(pl, 95)) if pl.size else float("nan")
    print(
        f"phones: {n_phones} ({n_phones - n_phones // 10} moving at 10 m/s, {n_phones // 10} parked), "
        f"1 Hz, PWA batching rules (window {POLICY.window}, <= {POLICY.max_fixes_per_message} "
        f"fixes/message, distance filter {POLICY.min_move_m} m / {POLICY.still_interval_ms / 1000:.0f} s)"
    )
    for name, r, secs in (
        ("baseline MQTT/TCP (edge agents' transport)", baseline, base_s),
        ("phone path MQTT/WebSockets", phone_path, duration_s),
    ):
        print(
            f"{name}: {r['connected']:.0f} connected, {secs} s measured, n={r['samples']:.0f} "
            f"fix->map p50 {r['p50']:.0f} ms p99 {r['p99']:.0f} ms; uploads/min/phone "
            f"{r['uploads_per_min']:.1f} (moving {r['moving_uploads_per_min']:.1f}, parked "
            f"{r['parked_uploads_per_min']:.1f}), fixes/upload {r['fixes_per_upload']:.2f}"
        )
    print(
        f"push send->shown (service worker, n={pl.size}): p50 {np.percentile(pl, 50) if pl.size else float('nan'):.0f} ms "
        f"p95 {p95_push:.0f} ms; baseline push-service POST alone p50 "
        f"{np.percentile(push_base, 50):.1f} ms; page errors {len(push_errors)}"
    )
    print(
        json.dumps(
            {
                "phones": n_phones,
                "fix_to_map_p99_ms": round(phone_path["p99"], 1),
                "uploads_per_min": round(phone_path["uploads_per_min"], 2),
                "push_to_shown_p95_ms": round(p95_push, 1),
                "fix_to_map_p50_ms": round(phone_path["p50"], 1),
                "fixes_per_upload": round(phone_path["fixes_per_upload"], 2),
                "parked_uploads_per_min": round(phone_path["parked_uploads_per_min"], 2),
                "fix_samples": int(phone_path["samples"]),
                "baseline_tcp_fix_to_map_p99_ms": round(baseline["p99"], 1),
                "baseline_push_service_p50_ms": round(float(np.percentile(push_base, 50)), 1),
                "push_samples": int(pl.size),
                "targets_met": bool(phone_path["p99"] < 1000 and p95_push < 500),
            }
        )
    )
    return 0


async def _people(dsn: str, n: int, run: str) -> tuple[list[str], list[tuple[str, int]]]:
    """An admin token, then one rep (with a known password) and token per phone."""
    from identity import auth

    tokens: list[str] = []
    reps: list[tuple[str, int]] = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        admin = await auth.create_user(
            conn, email=f"admin-{run}@bench.test", name="Admin", role="admin"
        )
        tokens.append((await auth.issue_token(conn, admin, "bench"))[1])
        pw = await asyncio.to_thread(auth.hash_password, PASSWORD)
        for i in range(n):
            email = f"rep{i}-{run}@bench.test"
            cur = await conn.execute(
                "INSERT INTO users (email, name, role, password_hash) VALUES (%s, %s, 'rep', %s) RETURNING id",
                (email, f"Rep {i}", pw),
            )
            row = await cur.fetchone()
            assert row is not None
            reps.append((email, int(row[0])))
            tokens.append((await auth.issue_token(conn, int(row[0]), "bench"))[1])
    return tokens, reps


if __name__ == "__main__":
    raise SystemExit(main())
