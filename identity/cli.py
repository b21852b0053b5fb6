"""CLI: `fieldmesh users add|token|revoke|passwd`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

from kernel.errors import ApiError
from kernel.settings import Settings


async def _users_add(settings: Settings, args: argparse.Namespace) -> int:
    from psycopg import AsyncConnection

    from identity import auth

    async with await AsyncConnection.connect(settings.dsn) as conn:
        user_id = await auth.create_user(
            conn,
            email=args.email,
            name=args.name or args.email.split("@")[0],
            role=args.role,
            password=args.password,
            manager_id=args.manager,
            territory_id=args.territory,
            skills=args.skill,
        )
        print(f"user {user_id} {args.email} ({args.role})")
        if args.token:
            token_id, token = await auth.issue_token(conn, user_id, "cli")
            print(f"token {token_id}: {token}")
    return 0


async def _users_token(settings: Settings, args: argparse.Namespace) -> int:
    from psycopg import AsyncConnection

    from identity import auth

    async with await AsyncConnection.connect(settings.dsn) as conn:
        cur = await conn.execute(
            "SELECT id FROM users WHERE lower(email) = lower(%s)", (args.email,)
        )
        row = await cur.fetchone()
        if row is None:
            print(f"no user {args.email}")
            return 1
        token_id, token = await auth.issue_token(conn, int(row[0]), args.name)
        print(f"token {token_id}: {token}")
    return 0


async def _users_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from psycopg import AsyncConnection

    async with await AsyncConnection.connect(settings.dsn) as conn:
        cur = await conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
            (args.token_id,),
        )
        print("revoked" if cur.rowcount else "no such active token")
        return 0 if cur.rowcount else 1


def _read_new_password(stdin: Any) -> str | None:
    """From a terminal: asked twice, without echo. Otherwise: the first line of stdin."""
    if stdin.isatty():
        first = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != first:
            print("the two passwords differ; nothing changed", file=sys.stderr)
            return None
        return first
    line: str = stdin.readline()
    return line.rstrip("\r\n")


async def _set_password(settings: Settings, email: str, password: str) -> int:
    from psycopg import AsyncConnection

    from identity import throttle
    from identity.passwords import hash_password

    try:
        digest = await asyncio.to_thread(hash_password, password)
    except ApiError as exc:
        print(f"fieldmesh users passwd: {exc.message}", file=sys.stderr)
        return 2
    async with await AsyncConnection.connect(settings.dsn) as conn:
        cur = await conn.execute(
            "UPDATE users SET password_hash = %s, updated_at = now() "
            "WHERE lower(email) = lower(%s) RETURNING id",
            (digest, email),
        )
        row = await cur.fetchone()
        if row is None:
            print(f"fieldmesh users passwd: no user {email}", file=sys.stderr)
            return 1
        # A new password ends the sessions signed in with the old one (API tokens stay).
        await conn.execute(
            "UPDATE api_tokens SET revoked_at = now() "
            "WHERE user_id = %s AND kind = 'session' AND revoked_at IS NULL",
            (row[0],),
        )
        await throttle.record_success(conn, throttle.account_key(email))
    print(f"password set for {email}")
    return 0


def cmd_passwd(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_new_password(sys.stdin)
    if password is None:
        return 1
    return asyncio.run(_set_password(settings, args.email, password))


def register(sub: Any) -> None:
    users = sub.add_parser("users", help="manage users and API tokens").add_subparsers(
        dest="users_cmd", required=True
    )
    p = users.add_parser("add", help="add a user")
    p.add_argument("email")
    p.add_argument("--name")
    p.add_argument("--role", choices=("admin", "manager", "rep", "viewer"), default="rep")
    p.add_argument("--password")
    p.add_argument("--manager", type=int)
    p.add_argument("--territory", type=int)
    p.add_argument("--skill", action="append", default=[])
    p.add_argument("--token", action="store_true", help="also issue an API token")
    p.set_defaults(func=lambda a, s: asyncio.run(_users_add(s, a)))
    p = users.add_parser("token", help="issue an API token for a user")
    p.add_argument("email")
    p.add_argument("--name", default="cli")
    p.set_defaults(func=lambda a, s: asyncio.run(_users_token(s, a)))
    p = users.add_parser("revoke", help="revoke an API token")
    p.add_argument("token_id", type=int)
    p.set_defaults(func=lambda a, s: asyncio.run(_users_revoke(s, a)))
    p = users.add_parser(
        "passwd",
        help="set a user's password: asked twice on a terminal, else the first line of stdin",
    )
    p.add_argument("email")
    p.set_defaults(func=cmd_passwd)
