"""telemetry's background jobs (kernel.jobs): partition maintenance.

The gateway creates the coming weeks' partitions at start; this daily job keeps them
coming while gateways run for weeks (native partitioning only; hypertables need none).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg

from kernel.jobs import JobContext, Registry, Task
from telemetry.schema import ensure_partitions

log = logging.getLogger(__name__)

PARTITIONS_TASK = "telemetry.ensure_partitions"


def _ensure(dsn: str, weeks_ahead: int) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return ensure_partitions(conn, weeks_ahead)


async def maintain_partitions(ctx: JobContext, args: dict[str, Any]) -> None:
    created = await asyncio.to_thread(_ensure, ctx.dsn, int(args.get("weeks_ahead", 8)))
    if created:
        log.info("telemetry: created %d partitions", created)


def register(registry: Registry) -> None:
    registry.add(Task(PARTITIONS_TASK, maintain_partitions))
    registry.every(PARTITIONS_TASK, 86400.0)
