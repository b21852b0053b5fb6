"""Service commands: up, down, status, provision, devices rotate|revoke."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fieldmesh import services
from kernel import broker
from kernel.settings import Settings


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    console = Console()
    if getattr(args, "tls", False) and settings.mqtt_tls_port is None:
        settings = settings.with_overrides(mqtt_tls_port=settings.mqtt_port + 1)
    with console.status("starting PostgreSQL and Mosquitto, migrating the schema..."):
        try:
            services.ensure_up(settings)
            if getattr(args, "replica", False):
                services.replica_start(settings)
        except services.ServiceError as exc:
            console.print(f"[red]fieldmesh up failed:[/] {exc}")
            return 1
    if settings.mqtt_tls_port is not None and settings.embedded_mqtt:
        console.print(
            f"MQTT over TLS on 127.0.0.1:{settings.mqtt_tls_port}; clients trust "
            f"{broker.ca_path(settings)} (set FIELDMESH_MQTT_TLS_PORT={settings.mqtt_tls_port} "
            "for the gateway and agents to use it)"
        )
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
    try:
        creds = broker.provision_mqtt_users(settings, args.device_ids)
    except broker.BrokerError as exc:
        Console(stderr=True).print(f"[red]provision failed:[/] {exc}")
        return 1
    for c in creds:
        print(f"{c.username}\t{c.password}")
    return 0


def cmd_devices_rotate(args: argparse.Namespace, settings: Settings) -> int:
    """Print the device's new password; the old one stops working at once."""
    try:
        c = broker.rotate_device(settings, args.device_id)
    except broker.BrokerError as exc:
        Console(stderr=True).print(f"[red]rotate failed:[/] {exc}")
        return 1
    print(f"{c.username}\t{c.password}")
    return 0


def cmd_devices_revoke(args: argparse.Namespace, settings: Settings) -> int:
    try:
        broker.revoke_device(settings, args.device_id)
    except broker.BrokerError as exc:
        Console(stderr=True).print(f"[red]revoke failed:[/] {exc}")
        return 1
    print(f"{args.device_id}\trevoked")
    return 0


def cmd_broker_config(args: argparse.Namespace, settings: Settings) -> int:
    """The embedded broker's configuration with container paths (deploy/compose.yaml,
    the Kubernetes init container): the gateway's password is MQTT_URL's."""
    creds = settings.mqtt_credentials
    if creds is not None and creds[0] != settings.gateway_user:
        print(
            f"fieldmesh broker-config: MQTT_URL's user {creds[0]!r} is not "
            f"FIELDMESH_GATEWAY_USER {settings.gateway_user!r}",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    services.write_broker_config(
        settings,
        out,
        listener=args.listener,
        plugin=args.plugin,
        user=args.user,
        gateway_password=creds[1] if creds else None,
        ws_listener=args.ws_listener,
    )
    print(f"broker configuration in {out}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("up", help="start the embedded PostgreSQL and Mosquitto, migrate the schema")
    p.add_argument(
        "--tls",
        action="store_true",
        help="also a TLS listener with the project's own CA (FIELDMESH_MQTT_TLS_PORT, "
        "default MQTT port + 1)",
    )
    p.add_argument(
        "--replica",
        action="store_true",
        help="also a streaming replica on FIELDMESH_REPLICA_PORT for lag-tolerant API reads",
    )
    p.set_defaults(func=cmd_up)
    p = sub.add_parser(
        "broker-config",
        help="write the broker configuration (mosquitto.conf, dynsec.json) for a container",
    )
    p.add_argument("--out", required=True, help="directory the broker reads its files from")
    p.add_argument("--listener", default="1883", help="mosquitto `listener` value")
    p.add_argument(
        "--ws-listener",
        type=int,
        default=None,
        metavar="PORT",
        help="also MQTT over WebSockets on PORT, for the reps' phones (same accounts and ACLs)",
    )
    p.add_argument(
        "--plugin",
        default="/usr/lib/mosquitto_dynamic_security.so",
        help="the dynamic-security plugin inside the broker image",
    )
    p.add_argument("--user", default="mosquitto", help="the user the broker drops to")
    p.set_defaults(func=cmd_broker_config)
    p = sub.add_parser("down", help="stop the embedded services")
    p.set_defaults(func=cmd_down)
    p = sub.add_parser("status", help="show whether the embedded services run")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("provision", help="give devices broker credentials (prints id and password)")
    p.add_argument("device_ids", nargs="+", metavar="DEVICE_ID")
    p.set_defaults(func=cmd_provision)
    p = sub.add_parser(
        "devices", help="devices: enrolment tokens, broker credentials (rotate, revoke)"
    )
    dsub = p.add_subparsers(dest="devices_command", required=True)
    d = dsub.add_parser("rotate", help="issue a new password (prints id and password)")
    d.add_argument("device_id", metavar="DEVICE_ID")
    d.set_defaults(func=cmd_devices_rotate)
    d = dsub.add_parser("revoke", help="disable the account: the device is dropped at once")
    d.add_argument("device_id", metavar="DEVICE_ID")
    d.set_defaults(func=cmd_devices_revoke)
    from devices.cli import add_enrol_parser

    add_enrol_parser(dsub)
