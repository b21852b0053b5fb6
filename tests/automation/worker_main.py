"""A jobs worker with automation's tasks in a process of its own: `python -m
tests.automation.worker_main DSN LEASE_S CONCURRENCY` (the kill tests SIGKILL it)."""

from __future__ import annotations

import asyncio
import signal
import sys

from automation.jobs import register
from kernel.jobs import Registry, Worker


async def main(dsn: str, lease_s: float, concurrency: int) -> None:
    registry = Registry()
    register(registry)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await Worker(dsn, registry, concurrency=concurrency, poll_s=0.2, lease_s=lease_s).run(stop)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
