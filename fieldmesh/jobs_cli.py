"""`fieldmesh jobs`: what the job system holds (kernel.jobs), per task and state, and the
latest failures with their errors."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from kernel.settings import Settings


def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    import psycopg

    with psycopg.connect(settings.dsn) as conn:
        counts = conn.execute(
            "SELECT task, status, count(*), min(run_after) FILTER (WHERE status = 'queued')"
            " FROM jobs GROUP BY task, status ORDER BY task, status"
        ).fetchall()
        failed = conn.execute(
            "SELECT id, task, attempts, finished_at, last_error FROM jobs WHERE status = 'failed'"
            " ORDER BY finished_at DESC NULLS LAST LIMIT %s",
            (args.failed,),
        ).fetchall()
    console = Console()
    table = Table(title="jobs by task and state")
    for col in ("task", "state", "jobs", "next due (UTC)"):
        table.add_column(col, justify="right" if col == "jobs" else "left")
    for task, status, n, due in counts:
        table.add_row(task, status, str(n), due.strftime("%Y-%m-%d %H:%M:%S") if due else "")
    console.print(table)
    if failed:
        ft = Table(title=f"latest {len(failed)} failed")
        for col in ("id", "task", "attempts", "finished (UTC)", "last error"):
            ft.add_column(col)
        for job_id, task, attempts, finished, error in failed:
            when = finished.strftime("%Y-%m-%d %H:%M:%S") if finished else ""
            ft.add_row(str(job_id), task, str(attempts), when, (error or "")[:200])
        console.print(ft)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("jobs", help="background jobs per task and state, and the latest failures")
    p.add_argument("--failed", type=int, default=10, help="how many failed jobs to show")
    p.set_defaults(func=cmd_jobs)
