"""The alerts feed in headless Chromium: an alert raised by the gateway's path arrives live,
is acknowledged from the UI (persisted), opens its telemetry chart, and reddens the map."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from alerts import store as alert_store
from alerts.rules import Severity
from console.live_stage import LiveStage
from gateway.pipeline import NewMessages
from kernel.settings import Settings
from telemetry.contracts import SCHEMA_VERSION, Sample, TelemetryBatch
from tests.console.test_crm_e2e import call, login


def _raise_live(dsn: str, device: str, now_ms: int) -> str:
    """What the gateway does for a batch: the alert stage raises, the live stage announces,
    both in the batch's transaction (the notification is delivered at commit)."""
    batch = TelemetryBatch(
        v=SCHEMA_VERSION, seq=1, samples=[Sample(t_ms=now_ms, metric="vibration_mm_s", value=14.2)]
    )
    new = NewMessages(telemetry=[(device, batch)], earliest_received_ns=time.time_ns())
    with psycopg.connect(dsn) as conn:
        ev = alert_store.raise_alert(
            conn,
            device,
            "vibration_high",
            Severity.CRITICAL,
            now_ms,
            message="vibration 14.2 above 11",
        )
        LiveStage().handle(conn, new)
    return ev.alert.alert_id


def test_an_alert_arrives_live_is_acknowledged_in_the_ui_and_opens_its_telemetry(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    tmp_path: Path,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    dsn = test_settings.dsn
    device = f"eq-{uuid.uuid4().hex[:8]}"
    tok = login(console_url, admin)
    acct = call(
        console_url,
        "POST",
        "/api/v1/accounts",
        {"name": "Alert Dairy", "location": {"type": "Point", "coordinates": [4.9, 45.7]}},
        tok,
    )
    now_ms = int(time.time() * 1000)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO device (device_id, tenant, kind) VALUES (%s, 'acme', 'equipment')",
            (device,),
        )
        conn.execute(
            "INSERT INTO assets (account_id, device_id, equipment_model) VALUES (%s, %s, 'pump-x')",
            (acct["id"], device),
        )
        for k in range(60):  # an hour of samples, one a minute, rising to the alert
            conn.execute(
                "INSERT INTO telemetry_sample (time, device_id, metric, value, seq)"
                " VALUES (to_timestamp(%s / 1000.0), %s, 'vibration_mm_s', %s, %s)",
                (now_ms - (59 - k) * 60_000, device, 4.0 + k * 0.17, k),
            )
        conn.execute(
            "INSERT INTO telemetry_latest VALUES (%s, 'vibration_mm_s', to_timestamp(%s / 1000.0), 14.2)",
            (device, now_ms),
        )
        earlier = alert_store.raise_alert(
            conn,
            device,
            "temperature_high",
            Severity.WARNING,
            now_ms - 600_000,
            message="temperature 91 above 85",
        ).alert.alert_id
    ready = tmp_path / "alerts-page-ready"
    raised: list[str] = []

    def raise_when_the_page_listens() -> None:
        for _ in range(1200):
            if ready.exists():
                raised.append(_raise_live(dsn, device, now_ms))
                return
            time.sleep(0.1)

    t = threading.Thread(target=raise_when_the_page_listens, daemon=True)
    t.start()
    r = run_scenario(
        "alerts",
        console_url,
        {"user": admin, "device": device, "earlier": earlier, "readyFile": str(ready)},
    )
    t.join(5)
    assert raised and r["liveAlert"] == raised[0], (raised, r)
    with psycopg.connect(dsn) as conn:
        states: dict[str, str] = dict(
            conn.execute(
                "SELECT alert_id, state || ':' || coalesce(acknowledged_by, '') FROM alerts WHERE device_id = %s",
                (device,),
            ).fetchall()
        )
    assert states == {raised[0]: f"acknowledged:{admin['email']}", earlier: "raised:"}
    assert r["rowState"] == "acknowledged"
    assert r["marks"] == 1 and r["chartPoints"] > 10  # the chart around the alert, marked
    assert r["mapBefore"]["state"] == "alert"
    assert r["mapBefore"]["color"] == "rgb(207, 34, 46)"  # COLORS.alert, as the browser reports it
    assert abs(r["mapBefore"]["lng"] - 4.9) < 1e-6 and abs(r["mapBefore"]["lat"] - 45.7) < 1e-6
    assert r["errors"] == [] and r["bad"] == []
