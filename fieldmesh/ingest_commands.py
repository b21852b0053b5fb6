"""Commands of the telemetry path: gateway, agent, sim."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from gateway.rateguard import DEFAULT_BURST, DEFAULT_RATE_PER_S
from kernel.settings import Settings


def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    from fieldmesh.gateway_main import run_gateway
    from gateway.service import GatewayConfig, partition_from_instance

    config = GatewayConfig(
        tenant=None if args.tenant == "+" else (args.tenant or settings.tenant),
        instance=args.instance,
        max_batch=args.max_batch,
        device_rate_per_s=args.device_rate,
        device_burst=args.device_burst,
        partition=(
            partition_from_instance(args.instance) if args.partition is None else args.partition
        ),
        partitions=args.partitions or settings.gateway_partitions,
    )
    return run_gateway(settings, config, None if args.http_port == 0 else args.http_port)


def cmd_agent(args: argparse.Namespace, settings: Settings) -> int:
    """One device, sampling simulated equipment physics (or a phone track)."""
    import numpy as np

    from edge_agent.agent import AgentConfig, EdgeAgent
    from firmware_sim.physics import random_asset
    from firmware_sim.sensors import EquipmentSensor
    from kernel.broker import client_endpoint, provision_mqtt_users

    port, ca = client_endpoint(settings)
    password = args.password or provision_mqtt_users(settings, [args.device_id])[0].password
    outbox = Path(args.outbox or settings.state_dir / "agents" / f"{args.device_id}.outbox.sqlite")
    outbox.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(args.device_id)) % 2**32)
    sensor = EquipmentSensor(
        random_asset(rng, args.device_id, time.time()), interval_s=args.interval_s
    )
    agent = EdgeAgent(
        AgentConfig(
            device_id=args.device_id,
            tenant=args.tenant or settings.tenant,
            username=args.device_id,
            password=password,
            outbox_path=outbox,
            host=settings.mqtt_host,
            port=port,
            tls_ca_file=ca,
        ),
        sensors=[sensor],
    )
    console = Console()
    console.print(f"agent {args.device_id}: sampling every {args.interval_s} s; Ctrl-C to stop")
    stop = threading.Event()
    t = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    t.start()
    try:
        while t.is_alive():
            time.sleep(2)
            st = agent.outbox.stats()
            console.print(
                f"published {agent.counters.published}  confirmed {agent.counters.confirmed}  "
                f"outbox {st.total} (pending {st.pending}, awaiting receipt {st.sent})"
            )
    except KeyboardInterrupt:
        pass
    stop.set()
    t.join(timeout=10)
    return 0


def fleet_table(fleet: Any, elapsed_s: float) -> Table:
    tot = fleet.totals()
    table = Table(title=f"simulated fleet, {elapsed_s:.0f} s")
    for col in (
        "devices",
        "reps",
        "samples",
        "fixes",
        "published",
        "confirmed",
        "in outboxes",
        "sim time",
    ):
        table.add_column(col, justify="right")
    table.add_row(
        str(fleet.spec.devices),
        str(fleet.spec.reps),
        f"{tot['samples']:,}",
        f"{tot['fixes']:,}",
        f"{tot['published']:,}",
        f"{tot['confirmed']:,}",
        f"{fleet.unconfirmed():,}",
        time.strftime("%H:%M:%S", time.gmtime(fleet.clock.now_s())),
    )
    return table


def cmd_sim(args: argparse.Namespace, settings: Settings) -> int:
    from firmware_sim.fleet import Fleet, FleetSpec

    spec = FleetSpec(
        tenant=args.tenant or settings.tenant,
        devices=args.devices,
        reps=args.reps,
        speedup=args.speedup,
        seed=args.seed,
        lead_s=args.duration_s * (args.speedup - 1) if args.duration_s else 0.0,
    )
    fleet = Fleet(
        settings,
        spec,
        settings.state_dir / "sim" / spec.tenant,
        loop_timeout_s=0.05 if args.devices + args.reps <= 100 else 0.2,
    )
    fleet.register(settings.dsn)
    fleet.start()
    started = time.monotonic()
    try:
        with Live(fleet_table(fleet, 0), refresh_per_second=2) as live:
            while args.duration_s == 0 or time.monotonic() - started < args.duration_s:
                time.sleep(0.5)
                live.update(fleet_table(fleet, time.monotonic() - started))
            fleet.quiesce(timeout_s=30)
            live.update(fleet_table(fleet, time.monotonic() - started))
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("gateway", help="run the ingest gateway (MQTT -> PostgreSQL)")
    p.add_argument("--tenant", help="tenant to serve ('+' for all; default FIELDMESH_TENANT)")
    p.add_argument(
        "--instance", default="0", help="stable instance name; run several for more throughput"
    )
    p.add_argument(
        "--http-port", type=int, default=9100, help="port of /metrics and /health (0: none)"
    )
    p.add_argument("--max-batch", type=int, default=2000, help="messages per database transaction")
    p.add_argument(
        "--partition",
        type=int,
        help="its partition of the ordered kinds (default: the instance name's trailing number)",
    )
    p.add_argument(
        "--partitions", type=int, help="gateway partitions (default FIELDMESH_GATEWAY_PARTITIONS)"
    )
    p.add_argument(
        "--device-rate",
        type=float,
        default=DEFAULT_RATE_PER_S,
        help="messages/s one device may sustain (token bucket; over it: not stored)",
    )
    p.add_argument(
        "--device-burst", type=float, default=DEFAULT_BURST, help="token bucket size per device"
    )
    p.set_defaults(func=cmd_gateway)

    p = sub.add_parser("agent", help="run one edge agent with simulated sensors")
    p.add_argument("device_id")
    p.add_argument("--tenant")
    p.add_argument("--password", help="broker password (default: derived for the embedded broker)")
    p.add_argument("--outbox", help="SQLite outbox path")
    p.add_argument("--interval-s", type=float, default=10.0, help="sampling interval")
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("sim", help="run a simulated fleet of devices and reps' phones")
    p.add_argument("--devices", type=int, default=50)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--speedup", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument(
        "--duration-s", type=float, default=0.0, help="stop after this long (0: until Ctrl-C)"
    )
    p.add_argument("--tenant")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_sim)
