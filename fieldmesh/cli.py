"""The `fieldmesh` command line.

Each command module exposes `register(subparsers)`, adding a subparser whose `func`
default is `func(args, settings) -> int`. Settings are read once here; a bad setting
exits with code 2 and names the setting.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from kernel.settings import Settings, SettingsError, load_settings

# Modules with `register(subparsers)`; add yours here.
COMMAND_MODULES: tuple[str, ...] = (
    "fieldmesh.commands",
    "fieldmesh.ingest_commands",
    "fieldmesh.demo",
    "fieldmesh.run",
    "fieldmesh.jobs_cli",
    "ar_viewer.cli",
    "ledger.cli",
    "identity.cli",
    "fieldmesh.serve",
    "crm.cli",
    "insights.maintenance.cli",
    "routing.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fieldmesh",
        description="fieldmesh: field-operations CRM. Services, gateway, agents, simulator and tools.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings: Settings = load_settings()
    except SettingsError as exc:
        print(f"fieldmesh: bad setting: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args, settings))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
