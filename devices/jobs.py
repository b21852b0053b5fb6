"""The devices package's background work (kernel.jobs): command states and rollouts.

`devices.rollouts` runs every few seconds: it reconciles command states with the
devices' acks and deadlines, and advances every running rollout (next wave, halt,
completion). Reads through the API reconcile too, so figures are fresh either way.
"""

from __future__ import annotations

import logging
from typing import Any

from devices import rollouts
from kernel.jobs import JobContext, Registry, Task

log = logging.getLogger(__name__)

ROLLOUTS_TASK = "devices.rollouts"
EVERY_S = 5.0


async def advance_rollouts(ctx: JobContext, _args: dict[str, Any]) -> None:
    if ctx.settings is None:
        raise RuntimeError("devices.rollouts needs the deployment's settings (broker access)")
    async with ctx.pool.connection() as conn:
        states = await rollouts.tick(conn, ctx.settings)
    if states:
        log.debug("rollouts: %s", states)


def register(registry: Registry) -> None:
    registry.add(Task(ROLLOUTS_TASK, advance_rollouts, timeout_s=120.0))
    registry.every(ROLLOUTS_TASK, EVERY_S)
