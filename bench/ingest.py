"""Ingest benchmark: raw COPY ceiling vs end to end through Mosquitto and the gateway.

1. Raw ceiling: the same rows written straight into the same table with psycopg binary
   COPY in 10k-row batches (rows prepared beforehand: only the database is timed).
2. End to end: a publisher process sends batched telemetry (100 samples a message) at QoS 1
   through the broker to gateway processes (shared subscription), as fast as they take it;
   the rate is points committed per second (from the gateways' /metrics).
3. Latency at half that rate: the publisher paces itself; each message's samples carry the
   send time, and the bench listens to the gateways' receipts (published right after
   commit), so device timestamp -> committed row is measured per message.
4. Hostile share: the end-to-end run again (new seqs), once clean and once with 1% of the
   messages hostile (firmware_sim.hostile: deep nesting, NUL and control characters,
   out-of-range numbers and times, oversized data, and a value only the database refuses,
   which the gateway isolates by splitting its batch). `hostile_share` is the hostile
   run's rate over the clean one's; every hostile message must end as a dead letter and
   no gateway process may die (`gateway_restarts`).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console
from rich.table import Table

from fieldmesh import services
from fieldmesh.migrate import upgrade
from firmware_sim.hostile import DB_POISON_CHECK, hostile_message
from kernel import broker
from kernel.settings import PROJECT_ROOT, Settings, load_settings
from telemetry.contracts import Receipt, Sample, TelemetryBatch, encode

TENANT = "bench"
METRICS = ("temperature_c", "vibration_mm_s", "pressure_bar", "current_a")
console = Console()


def make_messages(
    devices: int, per_device: int, samples_per_msg: int, t0_ms: int
) -> list[tuple[str, bytes, int]]:
    """(topic, payload, points) for `devices` x `per_device` messages, seq from 1."""
    steps = samples_per_msg // len(METRICS)
    out = []
    for m in range(per_device):
        for d in range(devices):
            dev = f"{TENANT}-eq-{d:04d}"
            base = t0_ms + m * steps * 1000
            samples = [
                Sample(base + k * 1000, metric, 20.0 + (d % 7) + k * 0.01)
                for k in range(steps)
                for metric in METRICS
            ]
            out.append(
                (
                    f"fm/v1/{TENANT}/dev/{dev}/telemetry",
                    encode(TelemetryBatch(1, m + 1, samples)),
                    len(samples),
                )
            )
    return out


def with_seq_offset(
    messages: list[tuple[str, bytes, int]], offset: int
) -> list[tuple[str, bytes, int]]:
    """The same messages under new seqs, so nothing is deduplicated."""
    dec = msgspec.json.Decoder(TelemetryBatch)
    out = []
    for t, p, n in messages:
        tb = dec.decode(p)
        out.append((t, encode(TelemetryBatch(1, tb.seq + offset, tb.samples)), n))
    return out


def with_hostile(
    messages: list[tuple[str, bytes, int]], every: int, devices: int = 5
) -> tuple[list[tuple[str, bytes, int]], int]:
    """`messages` with a hostile one (no points) after every `every`-th; and their count."""
    out: list[tuple[str, bytes, int]] = []
    now_ms = int(time.time() * 1000)
    n = 0
    for i, m in enumerate(messages, 1):
        out.append(m)
        if i % every == 0:
            h = hostile_message(n, 1 + n, now_ms, db_poison=True)
            dev = f"{TENANT}-evil-{n % devices}"
            out.append((f"fm/v1/{TENANT}/dev/{dev}/{h.suffix}", h.payload, 0))
            n += 1
    return out, n


def fresh_db(settings: Settings, name: str) -> str:
    services.drop_database(settings, name)
    dsn = services.create_database(settings, name)
    upgrade(dsn)
    return dsn


def copy_ceiling(dsn: str, messages: list[tuple[str, bytes, int]]) -> float:
    dec = msgspec.json.Decoder(TelemetryBatch)
    rows: list[tuple[datetime, str, str, float, int]] = []
    for topic, payload, _ in messages:
        dev = topic.split("/")[4]
        tb = dec.decode(payload)
        rows.extend(
            (datetime.fromtimestamp(s.t_ms / 1000, UTC), dev, s.metric, s.value, tb.seq)
            for s in tb.samples
        )
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        for i in range(0, len(rows), 10_000):
            with conn.cursor().copy(
                "COPY telemetry_sample (time, device_id, metric, value, seq) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["timestamptz", "text", "text", "float8", "int8"])
                for r in rows[i : i + 10_000]:
                    copy.write_row(r)
            conn.commit()
        elapsed = time.perf_counter() - started
    return len(rows) / elapsed


def _connect(settings: Settings, client_id: str) -> mqtt.Client:
    c = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    user = broker.ADMIN_MQTT_USER
    c.username_pw_set(user, broker.provision_mqtt_users(settings, [user])[0].password)
    c.max_inflight_messages_set(20)
    c.connect(settings.mqtt_host, settings.mqtt_broker_port, keepalive=60)
    return c


def publisher(
    settings: Settings,
    messages: list[tuple[str, bytes, int]],
    rate_msgs_s: float | None,
    restamp: bool,
    done: Any,
) -> None:
    """Publishes every message at QoS 1; paced when rate is given, re-stamping sample times."""
    c = _connect(settings, f"bench-pub-{os.getpid()}")
    c.loop_start()
    while not c.is_connected():
        time.sleep(0.01)
    dec = msgspec.json.Decoder(TelemetryBatch)
    started = time.perf_counter()
    for i, (topic, payload, _) in enumerate(messages):
        if rate_msgs_s:
            due = started + i / rate_msgs_s
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        if restamp:
            tb = dec.decode(payload)
            now = time.time_ns() // 1_000_000
            shift = now - max(s.t_ms for s in tb.samples)
            payload = encode(
                TelemetryBatch(
                    1, tb.seq, [Sample(s.t_ms + shift, s.metric, s.value) for s in tb.samples]
                )
            )
        while len(c._out_messages) > 5000:  # bound paho's queue: keep memory flat
            time.sleep(0.001)
        c.publish(topic, payload, qos=1)
    while c._out_messages:
        time.sleep(0.01)
    c.loop_stop()
    c.disconnect()
    done.set()


def gateway_metrics(port: int) -> dict[str, float]:
    # generous: a gateway busy with many small messages answers /metrics late
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=15) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_gateways(
    settings: Settings,
    dsn: str,
    n: int,
    first: int = 0,
    ready_timeout_s: float = 30.0,
) -> list[tuple[subprocess.Popen[bytes], int]]:
    env = dict(os.environ, DATABASE_URL=dsn, FIELDMESH_STATE_DIR=str(settings.state_dir))
    procs = []
    logdir = settings.state_dir / "bench"
    logdir.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + n):
        port = _free_port()
        log = (logdir / f"gateway-{i}.log").open("wb")
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fieldmesh",
                "gateway",
                "--tenant",
                TENANT,
                "--instance",
                f"bench{i}",
                "--http-port",
                str(port),
            ],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append((p, port))
    for _, port in procs:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                gateway_metrics(port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    for p, _ in procs:  # none left behind holding ports and client ids
                        p.kill()
                        p.wait()
                    raise
                time.sleep(0.1)
    time.sleep(0.5)  # let the subscriptions settle
    return procs


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric_sum(ports: list[int], name: str) -> float:
    return sum(gateway_metrics(p).get(name, 0.0) for p in ports)


def stored_points(ports: list[int]) -> float:
    return metric_sum(ports, "fm_gateway_points_stored_total")


def run_e2e(
    settings: Settings,
    messages: list[tuple[str, bytes, int]],
    ports: list[int],
    dead_letters: int = 0,
) -> float:
    """Points committed per second until every point is stored and `dead_letters` more
    messages were dead-lettered."""
    total = sum(m[2] for m in messages)
    base = stored_points(ports)
    base_dead = metric_sum(ports, "fm_gateway_dead_letters_total")
    done = mp.Event()
    pub = mp.Process(target=publisher, args=(settings, messages, None, False, done))
    started = time.perf_counter()
    pub.start()
    while (
        stored_points(ports) - base < total
        or metric_sum(ports, "fm_gateway_dead_letters_total") - base_dead < dead_letters
    ):
        if time.perf_counter() - started > 600:
            raise RuntimeError("end-to-end run did not complete in 600 s")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    pub.join()
    return total / elapsed


def run_latency(
    settings: Settings, messages: list[tuple[str, bytes, int]], rate_msgs_s: float
) -> list[float]:
    """Receipt time minus the newest sample's timestamp, per message, in ms."""
    latencies: list[float] = []
    newest: dict[tuple[str, int], int] = {}
    dec = msgspec.json.Decoder(TelemetryBatch)
    expected = len(messages)
    lock = threading.Lock()

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.time_ns() / 1e6
        dev = msg.topic.split("/")[4]
        for seq in msgspec.json.decode(msg.payload, type=Receipt).seqs:
            with lock:
                newest[(dev, seq)] = int(now)

    listener = _connect(settings, "bench-receipts")
    listener.on_message = on_message
    listener.subscribe(f"fm/v1/{TENANT}/dev/+/receipt", qos=1)
    listener.loop_start()
    time.sleep(0.5)
    done = mp.Event()
    # Timestamps are re-stamped at send time by the publisher; we recover them from the
    # receipts' (device, seq) by noting each message's send time here.
    send_ms: dict[tuple[str, int], int] = {}
    pub = mp.Process(target=publisher, args=(settings, messages, rate_msgs_s, True, done))
    started = time.time_ns() // 1_000_000
    pub.start()
    for i, (topic, payload, _) in enumerate(messages):
        tb = dec.decode(payload)
        send_ms[(topic.split("/")[4], tb.seq)] = started + int(i * 1000 / rate_msgs_s)
    deadline = time.monotonic() + len(messages) / rate_msgs_s + 60
    while time.monotonic() < deadline:
        with lock:
            if len(newest) >= expected:
                break
        time.sleep(0.1)
    pub.join()
    listener.loop_stop()
    listener.disconnect()
    # The publisher's schedule is the device timestamp (it re-stamps samples at send).
    for key, t_commit in newest.items():
        if key in send_ms:
            latencies.append(max(0.0, t_commit - send_ms[key]))
    return latencies


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]
        if len(values) > 1
        else values[0]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--gateways", type=int, default=2)
    ap.add_argument("--devices", type=int, default=500)
    args, _ = ap.parse_known_args(argv)
    settings = load_settings()
    per_device = 12 if args.quick else 60
    console.print("[bold]fieldmesh ingest benchmark[/] — starting services")
    services.stop_at_exit_if_started(settings)
    services.ensure_up(settings, migrate=False)
    broker.provision_mqtt_users(settings, [broker.ADMIN_MQTT_USER])
    t0_ms = int(time.time() * 1000) - 3 * 86_400_000
    messages = make_messages(args.devices, per_device, 100, t0_ms)
    total_points = sum(m[2] for m in messages)
    console.print(
        f"{len(messages):,} messages, {total_points:,} data points, {args.devices} devices"
    )

    dsn = fresh_db(settings, "fm_bench_ingest_copy")
    copy_rate = copy_ceiling(dsn, messages)
    console.print(f"raw COPY ceiling: {copy_rate:,.0f} points/s")

    dsn = fresh_db(settings, "fm_bench_ingest")
    with psycopg.connect(dsn) as conn:
        conn.execute(DB_POISON_CHECK)  # lets one hostile class reach the write and fail there
    procs = start_gateways(settings, dsn, args.gateways)
    ports = [p for _, p in procs]
    try:
        e2e_rate = run_e2e(settings, messages, ports)
        console.print(f"end to end ({args.gateways} gateway processes): {e2e_rate:,.0f} points/s")
        half_msgs_s = e2e_rate / 2 / 100
        lat_messages = make_messages(args.devices, max(2, per_device // 4), 100, t0_ms)
        # new seqs so nothing is deduplicated
        lat_messages = [
            (
                t,
                encode(
                    TelemetryBatch(
                        1,
                        msgspec.json.decode(p, type=TelemetryBatch).seq + 10_000,
                        msgspec.json.decode(p, type=TelemetryBatch).samples,
                    )
                ),
                n,
            )
            for t, p, n in lat_messages
        ]
        lat = run_latency(settings, lat_messages, half_msgs_s)
        dead_before = metric_sum(ports, "fm_gateway_dead_letters_total")
        poison_before = metric_sum(ports, "fm_gateway_poison_isolated_total")
        clean_rate = run_e2e(settings, with_seq_offset(messages, 20_000), ports)
        hostile_msgs, n_hostile = with_hostile(with_seq_offset(messages, 40_000), every=99)
        hostile_rate = run_e2e(settings, hostile_msgs, ports, dead_letters=n_hostile)
        console.print(
            f"clean {clean_rate:,.0f} points/s; with 1% hostile {hostile_rate:,.0f} points/s"
        )
        poison_dead = metric_sum(ports, "fm_gateway_dead_letters_total") - dead_before
        poison_isolated = metric_sum(ports, "fm_gateway_poison_isolated_total") - poison_before
        restarts = sum(1 for p, _ in procs if p.poll() is not None)
        rss = [peak_rss_mb(p.pid) for p, _ in procs]
        m = [gateway_metrics(p) for p in ports]
    finally:
        for p, _ in procs:
            p.terminate()
        for p, _ in procs:
            p.wait(timeout=30)
    dead = sum(x.get("fm_gateway_dead_letters_total", 0) for x in m)
    dups = sum(x.get("fm_gateway_duplicates_total", 0) for x in m)
    result = {
        "e2e_points_per_s": round(e2e_rate),
        "copy_points_per_s": round(copy_rate),
        "ratio": round(e2e_rate / copy_rate, 3),
        "p50_latency_ms": round(pct(lat, 50), 1),
        "p99_latency_ms": round(pct(lat, 99), 1),
        "latency_rate_points_per_s": round(half_msgs_s * 100),
        "latency_messages": len(lat),
        "gateway_peak_rss_mb": round(max(rss), 1),
        "gateways": args.gateways,
        "points": total_points,
        "dead_letters": dead,
        "duplicates": dups,
        "hostile_share": round(hostile_rate / clean_rate, 3),
        "hostile_messages": n_hostile,
        "poison_dead_lettered": round(poison_dead),
        "poison_isolated_by_split": round(poison_isolated),
        "gateway_restarts": restarts,
    }
    table = Table(title="ingest")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in result.items():
        table.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    console.print(table)
    target = result["e2e_points_per_s"] >= 50_000 and result["ratio"] >= 0.6
    console.print(
        f"target (>= 50,000 points/s and >= 60% of COPY): {'[green]met' if target else '[red]not met'}"
    )
    hostile_ok = (
        result["hostile_share"] >= 0.9
        and result["poison_dead_lettered"] == n_hostile
        and result["gateway_restarts"] == 0
    )
    console.print(
        "hostile target (>= 90% of the clean rate, every hostile message dead-lettered,"
        f" no gateway restart): {'[green]met' if hostile_ok else '[red]not met'}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
