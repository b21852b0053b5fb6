"""The real aiohttp app on a free loopback port, for tests that talk HTTP to it.

The API only enqueues background work; beside it runs the `jobs` role's worker (the same
kernel.jobs.Worker `fieldmesh run` uses) with the tasks of `job_modules`: by default the
CRM's imports and exports and routing's plans. Webhook delivery is left out unless asked
for, so tests that drive `deliver_due` themselves never race a background delivery.
`job_worker` runs such a worker in a test's own event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from aiohttp import web

from fieldmesh.app import ROUTE_MODULES, build_app
from fieldmesh.roles import job_registry
from kernel.jobs import Worker
from kernel.settings import Settings
from kernel.web import SERVER_LIMITS
from tests.ports import free_port

DEFAULT_JOB_MODULES = ("crm.jobs", "routing.jobs")


@asynccontextmanager
async def job_worker(
    settings: Settings, job_modules: tuple[str, ...] = DEFAULT_JOB_MODULES
) -> AsyncIterator[Worker]:
    """A job worker on the running event loop while the block runs; stopped after it."""
    worker = Worker(
        settings.dsn, job_registry(job_modules), poll_s=0.2, grace_s=5.0, settings=settings
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await task


@contextmanager
def serve_app(
    settings: Settings,
    route_modules: tuple[str, ...] = ROUTE_MODULES,
    job_modules: tuple[str, ...] = DEFAULT_JOB_MODULES,
    configure: Callable[[web.Application], None] | None = None,
) -> Iterator[str]:
    """Serve the app from a thread with its own event loop; yields its base URL.
    `configure` may set application keys before it starts (a test's own policies)."""
    port = free_port()
    loop = asyncio.new_event_loop()
    app = build_app(settings, route_modules)
    if configure is not None:
        configure(app)
    runner = web.AppRunner(
        app,
        access_log=None,
        max_line_size=SERVER_LIMITS["max_line_size"],
        max_field_size=SERVER_LIMITS["max_field_size"],
    )
    started = threading.Event()
    stop_jobs = asyncio.Event()
    jobs: list[asyncio.Task[None]] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        worker = Worker(
            settings.dsn, job_registry(job_modules), poll_s=0.2, grace_s=5.0, settings=settings
        )
        jobs.append(loop.create_task(worker.run(stop_jobs)))
        started.set()
        loop.run_forever()

    async def cleanup() -> None:
        stop_jobs.set()
        await asyncio.gather(*jobs, return_exceptions=True)
        await runner.cleanup()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30), "the app did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
