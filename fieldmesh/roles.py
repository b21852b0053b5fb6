"""One role of `fieldmesh run` in its own process: `python -m fieldmesh.roles ROLE ...`.

Every role stops on SIGTERM or SIGINT (finishing what it does) and answers `GET /health`
on its port: 200 with `{"status": "ok", ...}` when it works, 503 when it does not.

    api         the HTTP API and console; N processes share the port (SO_REUSEPORT)
    gateway     MQTT ingest (fieldmesh.gateway_main); /health and /metrics on its port
    sealer      the ledger: ingest field events, seal batches, anchor, write receipts
    dispatcher  urgent alert work orders -> re-plan -> `route` command to the rep's phone
    jobs        the job worker (kernel.jobs): imports, exports, plans, webhook delivery, periodic
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from kernel.settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)

ROLES = ("api", "gateway", "sealer", "dispatcher", "jobs")
HealthFn = Callable[[], dict[str, Any]]


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _health_site(host: str, port: int, health: HealthFn) -> web.AppRunner:
    async def handle(_request: web.Request) -> web.Response:
        body = health()
        return web.json_response(body, status=200 if body.get("status") == "ok" else 503)

    app = web.Application()
    app.router.add_get("/health", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


# --------------------------------------------------------------------------- api


async def run_api(settings: Settings, port: int) -> int:
    from fieldmesh.app import build_app

    stop = _stop_event()
    from fieldmesh.serve import freeze_gc
    from kernel.web import SERVER_LIMITS

    app = build_app(settings)
    app.on_startup.append(freeze_gc)
    runner = web.AppRunner(
        app,
        access_log=None,
        max_line_size=SERVER_LIMITS["max_line_size"],
        max_field_size=SERVER_LIMITS["max_field_size"],
    )
    await runner.setup()
    await web.TCPSite(runner, settings.http_host, port, reuse_port=True).start()
    log.info("api worker on http://%s:%d", settings.http_host, port)
    await stop.wait()
    await runner.cleanup()
    return 0


# --------------------------------------------------------------------------- gateway


async def run_gateway(settings: Settings, port: int, index: int, per_host: int = 1) -> int:
    from fieldmesh.gateway_main import serve_gateway
    from gateway.service import GatewayConfig, partition_from_instance

    # a stable instance id per slot: the broker keeps each one's session across restarts;
    # its partition of the ordered kinds: the host's (pod's) ordinal x gateways per host + i
    config = GatewayConfig(
        tenant=settings.tenant,
        instance=f"{settings.instance}-{index}",
        partition=partition_from_instance(settings.instance) * per_host + index,
        partitions=settings.gateway_partitions,
    )
    return await serve_gateway(settings, config, port)


# --------------------------------------------------------------------------- sealer


async def run_sealer(settings: Settings, port: int) -> int:
    from ledger.chain import Chain
    from ledger.config import LedgerConfigError, load_ledger_config
    from ledger.service import Sealer

    try:
        config = load_ledger_config()
    except LedgerConfigError as exc:
        print(f"fieldmesh sealer: bad setting: {exc}", file=sys.stderr)
        return 2
    stop = _stop_event()
    state: dict[str, Any] = {"last_tick": 0.0, "chain_error": None, "ingested": 0}

    def health() -> dict[str, Any]:
        age = time.time() - state["last_tick"]
        ok = age < max(30.0, 5 * config.poll_s)
        return {"status": "ok" if ok else "stalled", "role": "sealer", "tick_age_s": age, **state}

    runner = await _health_site(settings.http_host, port, health)
    sealer = Sealer(settings.dsn, config, lambda: Chain.connect(settings.evm_rpc_url))
    try:
        await asyncio.to_thread(sealer.open)
        while not stop.is_set():
            try:
                report = await asyncio.to_thread(sealer.tick)
                state.update(last_tick=time.time(), chain_error=report.chain_error)
                state["ingested"] += report.ingested
            except Exception:  # the role survives a bad tick; health shows it stalling
                log.exception("sealer: tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=config.poll_s)
    finally:
        await asyncio.to_thread(sealer.close)
        await runner.cleanup()
    return 0


# --------------------------------------------------------------------------- dispatcher

_FLEET_NOW_SQL = """
SELECT max(f.time) FROM geo_device_rep m
CROSS JOIN LATERAL (SELECT time FROM gps_fix g WHERE g.device_id = m.device_id
                    ORDER BY g.time DESC LIMIT 1) f
"""


async def run_dispatcher(
    settings: Settings, port: int, clock: str, interval_s: float = 0.5, cpu_s: float = 1.0
) -> int:
    """Polls urgent alert work orders and dispatches them (crm_sync.dispatch).

    `clock` is the time the re-plan starts from: `wall` (production), or `fleet`, the
    newest GPS fix of the reps' phones, for simulated fleets whose devices live in
    simulated time (a demo, a test)."""
    from psycopg import AsyncConnection

    from crm_sync.dispatch import dispatch_pending
    from fieldmesh.closed_loop import CommandSender

    stop = _stop_event()
    state: dict[str, Any] = {"last_poll": 0.0, "dispatched": 0, "last_error": None}

    def health() -> dict[str, Any]:
        age = time.time() - state["last_poll"]
        ok = age < 30.0
        return {
            "status": "ok" if ok else "stalled",
            "role": "dispatcher",
            "clock": clock,
            "poll_age_s": age,
            **state,
        }

    runner = await _health_site(settings.http_host, port, health)
    skip: set[int] = set()
    try:
        with CommandSender(settings, settings.tenant) as sender:
            while not stop.is_set():
                try:
                    async with await AsyncConnection.connect(settings.dsn) as conn:
                        while not stop.is_set():
                            now = datetime.now(UTC)
                            if clock == "fleet":
                                cur = await conn.execute(_FLEET_NOW_SQL)
                                row = await cur.fetchone()
                                await conn.rollback()
                                if row is None or row[0] is None:
                                    # no phone has reported yet: the fleet's time is unknown,
                                    # and the wall clock would put its work orders' SLAs
                                    # in the past (a simulated day starts days ago)
                                    state["last_poll"] = time.time()
                                    with contextlib.suppress(TimeoutError):
                                        await asyncio.wait_for(stop.wait(), timeout=interval_s)
                                    continue
                                now = row[0]
                            done = await dispatch_pending(
                                conn, now=now, send=sender.send_route, cpu_s=cpu_s, skip=skip
                            )
                            for d in done:
                                log.info(
                                    "dispatched work order %d to rep %d (plan %d, phone %s)",
                                    d.work_order_id,
                                    d.rep_id,
                                    d.plan_id,
                                    d.device_id,
                                )
                            state["dispatched"] += len(done)
                            state["last_poll"] = time.time()
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(stop.wait(), timeout=interval_s)
                except Exception as exc:  # database or broker gone: retry, report it
                    log.exception("dispatcher: round failed; retrying")
                    state["last_error"] = f"{type(exc).__name__}: {exc}"[:500]
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=2.0)
    finally:
        await runner.cleanup()
    return 0


# --------------------------------------------------------------------------- jobs


# Modules with `register(registry)`: every package's background tasks.
JOB_MODULES: tuple[str, ...] = (
    "crm.jobs",
    "crm_sync.jobs",
    "routing.jobs",
    "telemetry.jobs",
    "insights.maintenance.jobs",
    "calendars.jobs",
    "calendars.reminders",
    "devices.jobs",
    "engage.jobs",
    "automation.jobs",
    "insights.jobs",
    "notify.jobs",
    "phone.jobs",
)


def job_registry(modules: Sequence[str] = JOB_MODULES) -> Any:
    """The background tasks of these modules, assembled here (the composition root)."""
    import importlib

    from kernel.jobs import Registry

    registry = Registry()
    for name in modules:
        importlib.import_module(name).register(registry)
    return registry


async def run_jobs(settings: Settings, port: int, concurrency: int | None = None) -> int:
    from kernel.jobs import Worker

    stop = _stop_event()
    worker = Worker(
        settings.dsn,
        job_registry(),
        concurrency=concurrency or settings.job_concurrency,
        settings=settings,
    )

    def health() -> dict[str, Any]:
        age = time.time() - worker.stats.last_poll
        s = worker.stats
        return {
            "status": "ok" if age < 30.0 else "stalled",
            "role": "jobs",
            "poll_age_s": age,
            "running": s.running,
            "done": s.done,
            "retried": s.retried,
            "failed": s.failed,
            "tasks": sorted(worker.registry.tasks),
        }

    runner = await _health_site(settings.http_host, port, health)
    try:
        await worker.run(stop)
    finally:
        await runner.cleanup()
    return 0


# --------------------------------------------------------------------------- entry point


def run_role(
    settings: Settings, role: str, port: int, index: int, clock: str, per_host: int = 1
) -> int:
    if role == "api":
        import uvloop  # the same loop as `fieldmesh serve` (see fieldmesh.serve)

        return uvloop.run(run_api(settings, port))
    if role == "gateway":
        return asyncio.run(run_gateway(settings, port, index, per_host))
    if role == "sealer":
        return asyncio.run(run_sealer(settings, port))
    if role == "dispatcher":
        return asyncio.run(run_dispatcher(settings, port, clock))
    if role == "jobs":
        return asyncio.run(run_jobs(settings, port))
    raise ValueError(f"unknown role {role!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fieldmesh.roles")
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--per-host", type=int, default=1, help="gateway processes on this host")
    parser.add_argument("--dispatch-clock", choices=("wall", "fleet"), default="wall")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)s [{args.role}-{args.index}] %(name)s: %(message)s",
    )
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"fieldmesh {args.role}: bad setting: {exc}", file=sys.stderr)
        return 2
    return run_role(settings, args.role, args.port, args.index, args.dispatch_clock, args.per_host)


if __name__ == "__main__":
    sys.exit(main())
