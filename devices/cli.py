"""`fieldmesh devices enrol`: issue a one-time enrolment token from the command line.

Prints the token (shown once) and the edge agent command that uses it.
"""

from __future__ import annotations

import argparse
import asyncio

from psycopg import AsyncConnection

from devices.enrolment import IssuedToken, issue_token
from kernel.settings import Settings


async def _issue(settings: Settings, args: argparse.Namespace) -> IssuedToken:
    async with await AsyncConnection.connect(settings.dsn) as conn:
        return await issue_token(
            conn,
            created_by=None,
            ttl_s=int(args.ttl_h * 3600),
            device_id=args.device_id,
            account_id=args.account_id,
            equipment_model=args.model,
            device_group=args.group,
        )


def cmd_enrol(args: argparse.Namespace, settings: Settings) -> int:
    if not 1 / 60 <= args.ttl_h <= 720:
        print("error: --ttl-h must be between 1/60 and 720 hours")
        return 2
    t = asyncio.run(_issue(settings, args))
    print(f"token {t.token}")
    print(f"expires {t.expires_at.isoformat()} (id {t.id}, single use)")
    api = f"http://{settings.http_host}:{settings.http_port}"
    print(
        f"on the device: python -m edge_agent enrol --api {api} --token {t.token}"
        f" --device-id {args.device_id or 'DEVICE_ID'} --dir DIR"
    )
    return 0


def add_enrol_parser(dsub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = dsub.add_parser("enrol", help="issue a one-time enrolment token for a real device")
    d.add_argument("--device-id", default=None, help="only this device may use the token")
    d.add_argument("--account-id", type=int, default=None, help="claim the device onto it")
    d.add_argument("--model", default=None, help="equipment model")
    d.add_argument("--group", default=None, help="device group (rollouts can target it)")
    d.add_argument("--ttl-h", type=float, default=24.0, help="hours until it expires")
    d.set_defaults(func=cmd_enrol)
