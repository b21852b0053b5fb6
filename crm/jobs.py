"""The CRM's background jobs (kernel.jobs): CSV imports and exports.

An API handler records the import/export row and enqueues its job in the same
transaction; the `jobs` role of `fieldmesh run` runs it. Both bodies are idempotent (see
crm.csvio), so a job run again after a lost worker repeats no effect.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from crm import csvio
from kernel.jobs import JobContext, Registry, Task, enqueue

IMPORT_TASK = "crm.import"
EXPORT_TASK = "crm.export"


async def run_import(ctx: JobContext, args: dict[str, Any]) -> None:
    await csvio.run_import(ctx.pool, int(args["import_id"]))


async def run_export(ctx: JobContext, args: dict[str, Any]) -> None:
    await csvio.run_export(ctx.pool, int(args["export_id"]))


async def enqueue_import(conn: AsyncConnection[Any], import_id: int) -> int:
    return await enqueue(conn, IMPORT_TASK, {"import_id": import_id})


async def enqueue_export(conn: AsyncConnection[Any], export_id: int) -> int:
    return await enqueue(conn, EXPORT_TASK, {"export_id": export_id})


def register(registry: Registry) -> None:
    registry.add(Task(IMPORT_TASK, run_import))
    registry.add(Task(EXPORT_TASK, run_export))
