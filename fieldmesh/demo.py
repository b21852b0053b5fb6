"""`fieldmesh demo`: services up, a fleet provisioned, simulator and gateway running, then
a summary of what landed in the database and where to look next.

The closed loop runs inside it: the fleet's CRM world is seeded (fieldmesh.demo_world),
pump #0 wears out within the first half minute, and the demo prints each step as the
database records it -- alert, work order, re-plan (the dispatcher thread of this
process, fieldmesh.closed_loop), the route on the rep's phone, geofence check-in, the
logged visit, the work order done. The run ends when the loop is closed (or at
`--duration-s`)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import psycopg
from rich.console import Console
from rich.live import Live
from rich.table import Table

from fieldmesh import services
from fieldmesh.ingest_commands import fleet_table
from kernel.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:  # the loop's modules (routing, the solver) load only when the demo runs
    from fieldmesh.closed_loop import Dispatcher, Step
    from fieldmesh.demo_world import DemoLogin


def _gateway_http_port(settings: Settings) -> int:
    """The demo's own gateway uses the port `fieldmesh run` gives its first gateway later."""
    return settings.http_port + 5


def _start_gateway(settings: Settings, tenant: str) -> subprocess.Popen[bytes]:
    log = (settings.state_dir / "demo-gateway.log").open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fieldmesh",
            "-v",
            "gateway",
            "--tenant",
            tenant,
            "--instance",
            "demo",
            "--http-port",
            str(_gateway_http_port(settings)),
        ],
        env=dict(os.environ),
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _summary(settings: Settings, tenant: str) -> tuple[Table, Table]:
    like = f"{tenant}-%"
    with psycopg.connect(settings.dsn) as conn:
        online = conn.execute(
            "SELECT count(*) FILTER (WHERE online), count(*) FROM device_status WHERE device_id LIKE %s",
            (like,),
        ).fetchone()
        samples = conn.execute(
            "SELECT count(*) FROM telemetry_sample WHERE device_id LIKE %s", (like,)
        ).fetchone()
        fixes = conn.execute(
            "SELECT count(*) FROM gps_fix WHERE device_id LIKE %s", (like,)
        ).fetchone()
        dead = conn.execute(
            "SELECT count(*) FROM dead_letter WHERE device_id LIKE %s", (like,)
        ).fetchone()
        latest = conn.execute(
            "SELECT device_id, max(time), "
            " max(value) FILTER (WHERE metric = 'temperature_c'), max(value) FILTER (WHERE metric = 'vibration_mm_s'),"
            " max(value) FILTER (WHERE metric = 'pressure_bar'), max(value) FILTER (WHERE metric = 'current_a')"
            " FROM telemetry_latest WHERE device_id LIKE %s GROUP BY device_id"
            " ORDER BY max(value) FILTER (WHERE metric = 'vibration_mm_s') DESC NULLS LAST LIMIT 8",
            (like,),
        ).fetchall()
    assert online and samples and fixes and dead
    totals = Table(title="what the gateway stored")
    totals.add_column("figure")
    totals.add_column("value", justify="right")
    totals.add_row(
        "devices that reported status",
        f"{online[1]} ({online[0]} still online: the fleet signs off when it stops)",
    )
    totals.add_row("telemetry samples", f"{samples[0]:,}")
    totals.add_row("GPS fixes", f"{fixes[0]:,}")
    totals.add_row("dead letters", f"{dead[0]:,}")
    last = Table(title="last values, most vibration first")
    for col in ("device", "at (UTC)", "temp °C", "vibration mm/s", "pressure bar", "current A"):
        last.add_column(col, justify="right" if col != "device" else "left")
    for dev, at, *vals in latest:
        last.add_row(
            dev, at.strftime("%H:%M:%S"), *(f"{v:.2f}" if v is not None else "-" for v in vals)
        )
    return totals, last


def _print_steps(
    console: Console,
    conn: psycopg.Connection[Any],
    device_id: str,
    after_visit_id: int,
    shown: list[Step],
    dispatcher: Dispatcher,
    started: float,
) -> list[Step]:
    from fieldmesh.closed_loop import loop_steps

    steps = loop_steps(conn, device_id, after_visit_id)
    for step in steps[len(shown) :]:
        text = step.text
        for d in dispatcher.dispatched:
            if step.key == "plan" and d.work_order_id == step.work_order_id:
                text += f": remaining stops {list(d.before) or '[]'} -> {list(d.after)}"
        at = f" [dim](sim {step.at.strftime('%H:%M')} UTC)[/]" if step.at is not None else ""
        console.print(
            f"[bold cyan]+{time.monotonic() - started:5.1f}s[/]{at} "
            f"[bold]{_STEP_TITLES[step.key]}[/]: {text}"
        )
    return steps


_STEP_TITLES = {
    "alert": "alert raised",
    "work_order": "work order",
    "plan": "plan changed",
    "en_route": "phone en route",
    "check_in": "checked in",
    "visit_logged": "visit logged",
    "done": "work order done",
}


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from fieldmesh.closed_loop import Dispatcher
    from fieldmesh.demo_library import DASHBOARD, seed_library
    from fieldmesh.demo_world import morning_lead_s, seed_history, seed_logins, seed_world
    from fieldmesh.run import stop_running
    from firmware_sim.fleet import Fleet, FleetSpec

    console = Console()
    tenant = settings.tenant
    if stop_running(settings):  # its dispatcher runs on the wall clock, the demo's on the fleet's
        console.print(
            "stopped the running [bold]fieldmesh run[/] for the demo; it restarts at the end"
        )
    with console.status("starting PostgreSQL + PostGIS and Mosquitto, migrating the schema..."):
        services.ensure_up(settings)
    console.print(
        f"[green]services up[/]: PostgreSQL 127.0.0.1:{settings.pg_port}, Mosquitto 127.0.0.1:{settings.mqtt_port}"
    )
    gateway = _start_gateway(settings, tenant)
    spec = FleetSpec(
        tenant=tenant,
        devices=args.devices,
        reps=args.reps,
        speedup=args.speedup,
        seed=args.seed,
        # simulated time starts at 08:00 UTC, far enough back never to catch up with now
        lead_s=morning_lead_s(time.time(), (args.duration_s + 60) * (args.speedup - 1)),
        # pump #0's bearing starts to go after 2 s and fails after 26 s of real time
        forced_failure_s=(2 * args.speedup, 26 * args.speedup),
    )
    fleet = Fleet(settings, spec, settings.state_dir / "sim" / tenant)
    console.print(
        f"fleet: {spec.devices} devices at customer sites and {spec.reps} reps' phones, "
        f"simulated time {spec.speedup:g}x real time; gateway on :{_gateway_http_port(settings)}"
    )
    fleet.register(settings.dsn)
    with psycopg.connect(settings.dsn) as conn:
        world = seed_world(conn, fleet)
    pump = fleet.equipment()[0][0]
    console.print(
        f"CRM world: territory {world.territory_id}, {len(world.accounts)} accounts with site "
        f"geofences, {len(world.reps)} reps on the phones, vibration rules per model; "
        f"[bold]{pump}[/] (a pump at account {world.account_of_device[pump]}) will wear out"
    )
    dispatcher = Dispatcher(settings, tenant, fleet.clock.now_s).start()
    fleet.start()
    started = time.monotonic()
    steps: list[Step] = []
    try:
        with (
            psycopg.connect(settings.dsn, autocommit=True) as conn,
            Live(fleet_table(fleet, 0), refresh_per_second=2, console=console) as live,
        ):
            while time.monotonic() - started < args.duration_s:
                time.sleep(0.5)
                live.update(fleet_table(fleet, time.monotonic() - started))
                steps = _print_steps(
                    live.console, conn, pump, world.last_visit_id, steps, dispatcher, started
                )
                if steps and steps[-1].key == "done":
                    break
                if gateway.poll() is not None:
                    console.print("[red]the gateway exited; see .state/demo-gateway.log[/]")
                    return 1
            fleet.quiesce(timeout_s=60)
            live.update(fleet_table(fleet, time.monotonic() - started))
    finally:
        fleet.stop()
        dispatcher.stop()
        gateway.terminate()
        gateway.wait(timeout=30)
    if steps and steps[-1].key == "done":
        console.print(f"[green]closed loop complete[/] in {len(steps)} steps")
    else:
        done = [_STEP_TITLES[s.key] for s in steps]
        console.print(f"[yellow]the loop did not close in time; reached: {done or 'nothing'}[/]")
    totals, last = _summary(settings, tenant)
    console.print(totals)
    console.print(last)
    with psycopg.connect(settings.dsn) as conn:
        logins = seed_logins(conn, world, tenant)
        history = seed_history(conn, world, tenant)
    console.print(
        f"CRM history ({'written' if history.created else 'already there'}): "
        f"{history.contacts} contacts, {history.leads} leads, {history.opportunities} deals "
        f"through the pipeline's stages over 12 months, {history.activities} activities"
    )
    library = seed_library(settings.dsn, tenant)
    console.print(
        f"saved reports, the '{DASHBOARD}' dashboard and knowledge base articles "
        + (
            f"(written: {library.reports} reports, {library.dashboards} dashboard, "
            f"{library.articles} articles)"
            if library.created
            else "(already there)"
        )
    )
    if args.no_run:
        _where_next(console, settings)
        return 0
    from fieldmesh.run import start_detached

    console.print("\nstarting the product in the background: [bold]fieldmesh run[/] ...")
    code = start_detached(settings)
    _where_next(console, settings)
    if code != 0:
        console.print(
            f"[red]fieldmesh run did not become healthy[/] (see {settings.state_dir}/logs)"
        )
        return code
    _logins(console, settings, logins)
    return 0


def _logins(console: Console, settings: Settings, logins: list[DemoLogin]) -> None:
    from fieldmesh.run import console_url

    path = settings.state_dir / "demo-logins.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{x.role}\t{x.email}\t{x.password}\n" for x in logins)
    console.print(f"\n[bold green]fieldmesh is running[/]: open [bold]{console_url(settings)}[/]")
    table = Table(title=f"demo logins (also in {path})")
    for col in ("role", "e-mail", "password"):
        table.add_column(col)
    for x in logins:
        table.add_row(x.role, x.email, x.password)
    console.print(table)
    console.print("stop everything with: .venv/bin/fieldmesh down")


def _where_next(console: Console, settings: Settings) -> None:
    from urllib.parse import urlsplit

    from fieldmesh.run import console_url

    http = console_url(settings).removesuffix("/console/")
    db = urlsplit(settings.dsn)
    db_shown = db._replace(netloc=db.netloc.split("@")[-1] if db.password else db.netloc)
    broker = (
        "external (MQTT_URL)"
        if not settings.embedded_mqtt
        else (
            f"mosquitto on 127.0.0.1:{settings.mqtt_port} (config in {settings.state_dir / 'mqtt'})"
        )
    )
    console.print("\n[bold]Where to look next[/]")
    console.print(f"  database:   psql {db_shown.geturl()}")
    console.print(
        "              tables telemetry_sample, gps_fix, telemetry_latest, device_status, dead_letter"
    )
    console.print(f"  broker:     {broker}")
    console.print(f"  console:    {http}/console/")
    console.print(f"  API:        {http}/api/v1/openapi.json")
    host = http.rsplit(":", 1)[0]
    console.print(
        f"  health:     {host}:{settings.http_port + 1}/health (every role of fieldmesh run)"
    )
    console.print(f"  logs:       {settings.state_dir / 'logs' / 'run.log'}")
    console.print("  fleet:      .venv/bin/fieldmesh sim --devices 50 --reps 5 --speedup 60")
    console.print("  stop:       .venv/bin/fieldmesh down")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="start everything, run a simulated fleet through the closed loop (a pump wears "
        "out -> alert -> work order -> re-plan -> the rep's phone drives there -> visit "
        "logged), show what was stored",
    )
    p.add_argument("--devices", type=int, default=50)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--speedup", type=float, default=120.0)
    p.add_argument(
        "--duration-s", type=float, default=100.0, help="at most; ends once the loop is closed"
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--no-run",
        action="store_true",
        help="do not leave the product running (`fieldmesh run`) at the end",
    )
    p.set_defaults(func=cmd_demo)
