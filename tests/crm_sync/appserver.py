"""The real app with chosen route modules, on a free loopback port, in its own thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from fieldmesh.app import build_app
from fieldmesh.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_app(
    settings: Settings, route_modules: tuple[str, ...] = ("crm_sync.routes",)
) -> Iterator[str]:
    port = _free_port()
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
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
