"""The edge agent on a real device: `python -m edge_agent enrol|run`.

    python -m edge_agent enrol --api http://host:8000 --token fmenr_... --device-id pump-17 \\
        --dir /var/lib/fieldmesh --model pump-p200
    python -m edge_agent run --dir /var/lib/fieldmesh --model pump-p200

`enrol` generates the device's Ed25519 key (kept in the directory, never sent), proves
possession with the one-time token and stores the broker credentials it is given; `run`
connects with them, signs its field events, answers commands and applies OTA updates.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from edge_agent.agent import EdgeAgent
from edge_agent.enrol import DeviceDir, EnrolmentError, agent_config, enrol
from edge_agent.ota import Boot, Updater, accept_any

FACTORY_VERSION = "factory"


def build_agent(
    directory: Path, equipment_model: str, factory_version: str, boot: Boot = accept_any
) -> EdgeAgent:
    """An agent for an enrolled device: its credentials, its key, its OTA slots."""
    ddir = DeviceDir(directory)
    enrolment = ddir.load()
    key = ddir.key(enrolment.device_id)
    updater = Updater(
        directory,
        equipment_model=equipment_model,
        trusted_keys=enrolment.trusted_keys(),
        factory_version=factory_version,
        boot=boot,
        base_url=enrolment.api_url,
    )
    config = agent_config(directory, firmware=updater.version)
    agent = EdgeAgent(
        config,
        signer=lambda _d, event_id, t, type_, data: key.sign(event_id, t, type_, data),
        updater=updater,
    )
    agent.outbox.advance_seq(enrolment.seq_start)
    return agent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge_agent")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("enrol", help="enrol this device with a one-time token")
    e.add_argument("--api", required=True, help="the platform's base URL")
    e.add_argument("--token", required=True)
    e.add_argument("--device-id", required=True)
    e.add_argument("--dir", required=True, type=Path)
    e.add_argument("--model", default=None, help="equipment model")
    r = sub.add_parser("run", help="connect and run until stopped")
    r.add_argument("--dir", required=True, type=Path)
    r.add_argument("--model", required=True, help="equipment model (OTA images must match)")
    r.add_argument("--factory-version", default=FACTORY_VERSION)
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "enrol":
        try:
            got = enrol(args.api, args.token, args.device_id, args.dir, equipment_model=args.model)
        except EnrolmentError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(
            f"enrolled {got.device_id} (tenant {got.tenant}, broker {got.mqtt_host}:{got.mqtt_port})"
        )
        return 0
    try:
        agent = build_agent(args.dir, args.model, args.factory_version)
    except EnrolmentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_a: stop.set())
    agent.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
