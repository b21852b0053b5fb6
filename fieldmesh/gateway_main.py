"""Runs a gateway process: the composition root picks its stages and serves /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from gateway.pipeline import StageHandler
from gateway.service import Gateway, GatewayConfig
from gateway.writer import EventVerifier
from kernel.settings import Settings
from telemetry.contracts import FieldEvent

log = logging.getLogger(__name__)

GATEWAY = web.AppKey("gateway", Gateway)


def build_stages(settings: Settings) -> list[StageHandler]:
    """The ordered stages after storage, each inside the batch's transaction:
    geofences (visits and spatial events), alert rules and anomaly monitors on the
    telemetry (alerts, work orders), then the live feed, which reports what they wrote."""
    import psycopg

    from alerts.stage import AlertStage
    from console.live_stage import LiveStage
    from crm_sync.loop import CrmVisitHooks
    from crm_sync.workorders import CrmAlertHooks
    from geo.live import GeoStage
    from insights.maintenance.training import load_live_monitors

    with psycopg.connect(settings.dsn) as conn:
        monitors = load_live_monitors(conn)
    return [
        GeoStage(visit_hooks=CrmVisitHooks()),
        AlertStage(monitors=monitors, hooks=CrmAlertHooks()),
        LiveStage(),
    ]


def event_verifier() -> EventVerifier:
    """Device events are checked against the device's registered Ed25519 key."""
    from ledger.verify import verify_event

    def verify(
        public_key: bytes | None, device_id: str, event: FieldEvent
    ) -> tuple[bool, str | None]:
        result = verify_event(
            public_key, device_id, event.id, event.t, event.type, event.data, event.sig
        )
        return result.verified, result.reason

    return verify


async def _metrics(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    return web.Response(body=gw.metrics.render(), content_type="text/plain", charset="utf-8")


async def _health(request: web.Request) -> web.Response:
    h = request.app[GATEWAY].healthy()
    ok = h["mqtt_connected"] and h["db_ok"] and h["writer_alive"]
    return web.json_response({"status": "ok" if ok else "degraded", **h}, status=200 if ok else 503)


def metrics_app(gw: Gateway) -> web.Application:
    app = web.Application()
    app[GATEWAY] = gw
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/health", _health)
    return app


async def serve_gateway(settings: Settings, config: GatewayConfig, http_port: int | None) -> int:
    from devices.admission import decommissioned_devices

    gw = Gateway(
        settings,
        config,
        handlers=build_stages(settings),
        verifier=event_verifier(),
        admission=decommissioned_devices,  # their later messages become dead letters
    )
    gw.start()
    runner: web.AppRunner | None = None
    if http_port is not None:
        runner = web.AppRunner(metrics_app(gw))
        await runner.setup()
        await web.TCPSite(runner, settings.http_host, http_port).start()
        log.info("gateway metrics on http://%s:%d/metrics", settings.http_host, http_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set() and gw.fatal is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
    finally:
        await asyncio.to_thread(gw.stop)
        if runner is not None:
            await runner.cleanup()
    return 1 if gw.fatal is not None else 0


def run_gateway(settings: Settings, config: GatewayConfig, http_port: int | None) -> int:
    return asyncio.run(serve_gateway(settings, config, http_port))
