"""`fieldmesh serve`: the HTTP API alone, in one or several processes sharing the port.

Part of the composition root: it assembles the whole app (`fieldmesh.app.build_app`).
Background work needs the `jobs` role (`fieldmesh run`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
from typing import Any

from kernel.settings import Settings


async def freeze_gc(app: object) -> None:
    """Everything built at start-up (modules, routes, models) moves out of the collector's
    reach: a full collection then walks only what requests made, instead of pausing a
    worker for tens of milliseconds now and then (bench-api's p99 showed such stalls)."""
    import gc

    gc.collect()
    gc.freeze()


def _serve_one(settings: Settings, host: str, port: int, reuse_port: bool) -> None:
    import uvloop
    from aiohttp import web

    from fieldmesh.app import build_app  # late: the CLI must start without the whole app
    from kernel.web import SERVER_LIMITS

    app = build_app(settings)
    app.on_startup.append(freeze_gc)
    # uvloop's event loop and transports are in C: about a fifth less CPU per request
    # than asyncio's selector loop (bench-api), and psycopg and aiohttp both support it.
    web.run_app(
        app,
        loop=uvloop.new_event_loop(),
        handler_args=SERVER_LIMITS,
        host=host,
        port=port,
        reuse_port=reuse_port,
        print=None,
        access_log=None,
    )


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.http_host
    port = args.port or settings.http_port
    print(f"fieldmesh API on http://{host}:{port}/api/v1 ({args.workers} worker(s))", flush=True)
    if args.workers <= 1:
        _serve_one(settings, host, port, False)
        return 0
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_serve_one, args=(settings, host, port, True), daemon=True)
        for _ in range(args.workers)
    ]
    for p in procs:
        p.start()

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # a terminated parent takes its workers with it
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(10)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API (every package's routes)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)"
    )
    p.set_defaults(func=cmd_serve)
