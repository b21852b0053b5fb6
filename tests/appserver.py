"""The real aiohttp app on a free loopback port, for tests that talk HTTP to it."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from fieldmesh.app import ROUTE_MODULES, build_app
from kernel.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_app(settings: Settings, route_modules: tuple[str, ...] = ROUTE_MODULES) -> Iterator[str]:
    """Serve the app from a thread with its own event loop; yields its base URL."""
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(settings, route_modules), access_log=None)
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30), "the app did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
