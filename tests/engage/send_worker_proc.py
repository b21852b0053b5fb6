"""A job worker with engage's send task in a process of its own (the restart test kills it).

python -m tests.engage.send_worker_proc DSN SMTP_PORT
"""

from __future__ import annotations

import asyncio
import sys

from engage.send import SEND_TASK, send_batch
from kernel.jobs import Registry, Task, Worker
from kernel.settings import load_settings


def main() -> None:
    dsn, smtp_port = sys.argv[1], int(sys.argv[2])
    settings = load_settings({}).with_overrides(database_url=dsn, smtp_port=smtp_port)
    registry = Registry()
    registry.add(Task(SEND_TASK, send_batch, backoff_base_s=0.5))
    worker = Worker(dsn, registry, poll_s=0.2, settings=settings)
    asyncio.run(worker.run(asyncio.Event()))


if __name__ == "__main__":
    main()
