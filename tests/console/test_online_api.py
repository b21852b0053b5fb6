"""One "online" for every page (issue 15): the APIs the console reads agree, and judge by
data the server received, not by the device's retained status message.

A real edge agent streams telemetry through the session's broker to a gateway subprocess
into the real database. Its status row is made to say the opposite of what its data says
(a retained message stamped ahead, so the gateway keeps it over the agent's own), and every
API the Fleet page, Fleet health, the device page and the map use must still agree.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from firmware_sim.fleet import Fleet, FleetSpec
from kernel.settings import Settings
from telemetry.online import ONLINE_WINDOW_S
from tests.eventually import eventually
from tests.gateway.harness import GatewayProcess
from tests.world import Api, People

pytestmark = pytest.mark.integration


def _states(url: str, api: Api, device: str, model: str) -> dict[str, Any]:
    """What each API the console reads says about the device's being online."""
    listed = None
    after: str | None = None
    while listed is None:  # the session's database holds other tests' devices too
        page = api.get("/devices", params={"kind": "equipment", "limit": 1000, "after": after})
        assert page.status_code == 200, page.text
        body = page.json()
        listed = next((d for d in body["items"] if d["device_id"] == device), None)
        after = body["next"]
        if listed is None:
            assert after is not None, f"{device} not listed"
    one = api.get(f"/devices/{device}").json()
    health = api.get(f"/devices/{device}/health").json()
    models = api.get("/fleet/health", params={"window_h": 24}).json()["models"]
    mine = next(m for m in models if m["equipment_model"] == model)
    pos = api.session.get(f"{url}/console/api/positions", params={"device_id": device}, timeout=30)
    assert pos.status_code == 200, pos.text
    [mapped] = pos.json()["devices"]
    return {
        "list": listed["online"],
        "device": one["online"],
        "health": health["online"],
        "fleet_health": mine["online"] == 1,
        "map": mapped["online"],
        "_listed": listed,
        "_mapped": mapped,
    }


def _agree(states: dict[str, Any]) -> set[object]:
    return {v for k, v in states.items() if not k.startswith("_")}


def test_a_streaming_device_reads_online_everywhere_and_a_silent_one_offline_after_the_window(
    test_settings: Settings, tenant: str, app_url: str, people: People, tmp_path: Path
) -> None:
    dsn = test_settings.dsn
    admin = people.api(app_url, "admin")
    gw = GatewayProcess(test_settings, tenant, log_path=tmp_path / "gateway.log")
    fleet = Fleet(
        test_settings,
        FleetSpec(tenant=tenant, devices=1, reps=0, speedup=60, lead_s=3600),
        tmp_path / "fleet",
    )
    fleet.register(dsn)
    [(device, _, _)] = fleet.equipment()
    model = f"online-test-{tenant}"  # a model of its own: the fleet-health row is only ours
    ahead = datetime.now(UTC) + timedelta(days=1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO device_enrolment (device_id, equipment_model) VALUES (%s, %s)",
            (device, model),
        )
    gw.start()
    try:
        # nothing received yet: "no data yet" (null) everywhere, and not counted online
        before = _states(app_url, admin, device, model)
        assert {before[k] for k in ("list", "device", "health", "map")} == {None}
        assert before["fleet_health"] is False

        fleet.start()

        def streaming() -> bool:
            with psycopg.connect(dsn) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM ingest_message WHERE device_id = %s AND kind = 'telemetry'",
                    (device,),
                ).fetchone()
            return row is not None and row[0] >= 2

        eventually(streaming, timeout_s=90, what="the device's telemetry stored")
        # its status says offline, stamped ahead of anything the agent will send (a stale
        # retained message or last will): no fresh status message will replace it
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO device_status (device_id, online, changed_at) VALUES (%s, false, %s)"
                " ON CONFLICT (device_id) DO UPDATE SET online = false, changed_at = %s",
                (device, ahead, ahead),
            )
            newest = conn.execute(
                "SELECT max(received_at) FROM ingest_message WHERE device_id = %s", (device,)
            ).fetchone()
        assert newest is not None and newest[0] is not None
        streaming_states = _states(app_url, admin, device, model)
        assert _agree(streaming_states) == {True}, streaming_states
        listed = streaming_states["_listed"]
        # the time shown is the server's receipt of the newest message, not the status's
        last_seen = datetime.fromisoformat(listed["last_seen"])
        assert last_seen >= newest[0]
        assert abs((datetime.now(UTC) - last_seen).total_seconds()) < ONLINE_WINDOW_S
        assert datetime.fromisoformat(listed["status_changed_at"]) == ahead
        assert streaming_states["_mapped"]["last_seen_ms"] >= int(newest[0].timestamp() * 1000)

        # the device stops (and the gateway, so nothing in flight lands after the backdating);
        # its retained status now says online, stamped ahead
        fleet.stop()
        gw.stop()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE device_status SET online = true WHERE device_id = %s", (device,))
            # the window passing, on the server's clock: its messages were received
            # longer ago than the window
            conn.execute(
                "UPDATE ingest_message SET received_at = received_at - make_interval(secs => %s)"
                " WHERE device_id = %s",
                (2 * ONLINE_WINDOW_S + 60, device),
            )
        silent = _states(app_url, admin, device, model)
        assert _agree(silent) == {False}, silent
    finally:
        fleet.stop()
        gw.stop()
