"""CLI: `fieldmesh crm seed|import ...`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from kernel.settings import Settings


def _seed_refusal(dsn: str) -> str | None:
    """Why seeding this database cannot work (it loads into an empty CRM only), or None."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM (SELECT 1 FROM accounts LIMIT 1000) a").fetchone()
    n = int(row[0]) if row else 0
    if n == 0:
        return None
    many = "1000 or more" if n >= 1000 else str(n)
    return (
        f"the database already holds {many} account{'' if n == 1 else 's'}; seed loads generated data into an "
        "empty CRM only (it would mix with the records there); nothing was changed. Seed an "
        "empty database instead: fieldmesh crm seed --dsn postgresql://HOST/EMPTY_DB"
    )


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import Progress

    from crm.seed import SeedCounts, seed

    dsn = args.dsn or settings.dsn
    refusal = _seed_refusal(dsn)
    if refusal is not None:
        print(f"fieldmesh crm seed: {refusal}", file=sys.stderr)
        return 2
    counts = SeedCounts(
        accounts=args.accounts,
        contacts=args.contacts,
        activities=args.activities,
        territories=args.territories,
    )
    with Progress() as bar:
        tasks: dict[str, Any] = {}

        def progress(table: str, n: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.advance(tasks[table], n)

        result = seed(dsn, counts, progress=progress)
    print(result)
    return 0


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    from crm import csvio, hooks

    hooks.install()
    content = await asyncio.to_thread(Path(args.file).read_bytes)
    async with await AsyncConnection.connect(settings.dsn) as conn:
        cur = await conn.execute(
            "SELECT id FROM users WHERE lower(email) = lower(%s)", (args.as_user,)
        )
        row = await cur.fetchone()
        if row is None:
            print(f"no user {args.as_user}")
            return 1
        cur = await conn.execute(
            "INSERT INTO import_jobs (entity, key_field, filename, content, created_by) VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (args.entity, args.key, Path(args.file).name, content, row[0]),
        )
        job = await cur.fetchone()
        assert job is not None
        await conn.commit()
    async with AsyncConnectionPool(settings.dsn, min_size=1, max_size=2) as pool:
        await csvio.run_import(pool, int(job[0]))
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT status, processed_rows, inserted_rows, updated_rows, failed_rows, error FROM import_jobs WHERE id = %s",
                (job[0],),
            )
            print(await cur.fetchone())
            cur = await conn.execute(
                "SELECT line_no, message FROM import_job_errors WHERE job_id = %s ORDER BY line_no",
                (job[0],),
            )
            for line_no, message in await cur.fetchall():
                print(f"line {line_no}: {message}")
    return 0


def register(sub: Any) -> None:
    crm = sub.add_parser("crm", help="CRM data tools").add_subparsers(dest="crm_cmd", required=True)
    p = crm.add_parser("seed", help="load generated accounts, contacts, activities (COPY)")
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--contacts", type=int, default=10000)
    p.add_argument("--activities", type=int, default=20000)
    p.add_argument("--territories", type=int, default=20)
    p.add_argument("--dsn", help="another database than the application's")
    p.set_defaults(func=cmd_seed)
    p = crm.add_parser("import", help="import a CSV file (accounts, contacts, leads)")
    p.add_argument("file")
    p.add_argument("--entity", choices=("accounts", "contacts", "leads"), required=True)
    p.add_argument("--key", default="id", help="upsert key: id, external_id, email or name")
    p.add_argument("--as-user", required=True, help="e-mail of the importing user")
    p.set_defaults(func=lambda a, s: asyncio.run(_import(s, a)))
