"""Service commands: up, down, status, provision."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from fieldmesh import services
from kernel.settings import Settings


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    console = Console()
    with console.status("starting PostgreSQL and Mosquitto, migrating the schema..."):
        try:
            services.ensure_up(settings)
        except services.ServiceError as exc:
            console.print(f"[red]fieldmesh up failed:[/] {exc}")
            return 1
    return cmd_status(args, settings)


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    from fieldmesh.run import stop_running

    if stop_running(settings):  # `fieldmesh run` first: its roles use the services
        Console().print("stopped fieldmesh run")
    services.down(settings)
    return cmd_status(args, settings)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    table = Table(title="fieldmesh services")
    table.add_column("service")
    table.add_column("state")
    table.add_column("where")
    rows = services.status(settings)
    for st in rows:
        table.add_row(st.name, "[green]running[/]" if st.running else "[red]stopped[/]", st.detail)
    Console().print(table)
    return 0


def cmd_provision(args: argparse.Namespace, settings: Settings) -> int:
    creds = services.provision_mqtt_users(settings, args.device_ids)
    for c in creds:
        print(f"{c.username}\t{c.password}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("up", help="start the embedded PostgreSQL and Mosquitto, migrate the schema")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("down", help="stop the embedded services")
    p.set_defaults(func=cmd_down)
    p = sub.add_parser("status", help="show whether the embedded services run")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("provision", help="give devices broker credentials (prints id and password)")
    p.add_argument("device_ids", nargs="+", metavar="DEVICE_ID")
    p.set_defaults(func=cmd_provision)
