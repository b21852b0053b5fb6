"""The telemetry path end to end against the real broker and database.

Every test counts exactly: what the agents put in their outboxes must be in the database
once, no more, no less, whatever was killed or stopped in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fieldmesh import services
from firmware_sim.fleet import Fleet
from kernel import broker
from kernel.settings import Settings
from tests.eventually import eventually
from tests.gateway.harness import GatewayProcess, stored_counts

pytestmark = pytest.mark.integration

StartGateway = Callable[..., GatewayProcess]
MakeFleet = Callable[..., Fleet]


def _assert_exactly_once(fleet: Fleet, dsn: str, tenant: str) -> None:
    assert fleet.quiesce(timeout_s=90), f"{fleet.unconfirmed()} messages never confirmed"
    tot = fleet.totals()
    counts = stored_counts(dsn, tenant)
    assert counts.samples == tot["samples"], "samples lost or duplicated"
    assert counts.distinct_samples == counts.samples, "duplicate samples stored"
    assert counts.fixes == tot["fixes"], "GPS fixes lost or duplicated"
    assert counts.distinct_fixes == counts.fixes, "duplicate fixes stored"


def test_fleet_samples_and_fixes_are_stored_exactly_once(
    test_settings: Settings, tenant: str, start_gateway: StartGateway, make_fleet: MakeFleet
) -> None:
    gw = start_gateway(test_settings, tenant)
    fleet = make_fleet(test_settings, tenant, devices=8, reps=2, speedup=400, lead_s=3600)
    fleet.start()
    time.sleep(8)
    _assert_exactly_once(fleet, test_settings.dsn, tenant)
    tot = fleet.totals()
    assert tot["samples"] > 1000 and tot["fixes"] > 50
    # the reps' phones signed their arrivals and departures; the gateway verified each once
    with psycopg.connect(test_settings.dsn) as conn:
        events = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE verified), count(DISTINCT event_id)"
            " FROM device_event WHERE device_id LIKE %s",
            (f"{tenant}-%",),
        ).fetchone()
    assert tot["events"] > 0
    assert events == (tot["events"], tot["events"], tot["events"])
    m = gw.metrics()
    assert m["fm_gateway_dead_letters_total"] == 0
    assert m["fm_gateway_points_stored_total"] == tot["samples"] + tot["fixes"] + tot["events"]
    with psycopg.connect(test_settings.dsn) as conn:
        latest = conn.execute(
            "SELECT count(DISTINCT device_id), count(*) FROM telemetry_latest WHERE device_id LIKE %s",
            (f"{tenant}-eq-%",),
        ).fetchone()
    assert latest == (8, 32)  # four metrics per device


def test_gateway_killed_mid_stream_loses_and_duplicates_nothing(
    test_settings: Settings, tenant: str, start_gateway: StartGateway, make_fleet: MakeFleet
) -> None:
    gw = start_gateway(test_settings, tenant)
    fleet = make_fleet(test_settings, tenant, devices=8, reps=2, speedup=60, lead_s=900)
    fleet.start()
    time.sleep(3)
    gw.kill()  # SIGKILL: no chance to flush anything
    time.sleep(3)  # the fleet keeps publishing into the broker meanwhile
    start_gateway(test_settings, tenant)  # same instance name: same broker session
    time.sleep(3)
    _assert_exactly_once(fleet, test_settings.dsn, tenant)


def test_broker_killed_and_restarted_loses_nothing(
    private_services: Settings, start_gateway: StartGateway, make_fleet: MakeFleet
) -> None:
    s, tenant = private_services, "priv"
    start_gateway(s, tenant)
    fleet = make_fleet(s, tenant, devices=6, reps=2, speedup=60, lead_s=900)
    fleet.start()
    time.sleep(3)
    import signal

    services.mqtt_stop(s, signal.SIGKILL)  # acknowledged messages in its memory are gone
    time.sleep(2)
    services.mqtt_start(s)
    time.sleep(3)
    _assert_exactly_once(fleet, s.dsn, tenant)
    assert fleet.totals()["republished"] > 0 or fleet.totals()["published"] > 0


def test_database_stopped_for_30_seconds_loses_nothing(
    private_services: Settings, start_gateway: StartGateway, make_fleet: MakeFleet
) -> None:
    s, tenant = private_services, "priv"
    embedded = s.with_overrides(database_url=None)
    gw = start_gateway(s, tenant)
    fleet = make_fleet(s, tenant, devices=6, reps=2, speedup=60, lead_s=1800)
    fleet.start()
    time.sleep(3)
    services.pg_stop(embedded, mode="immediate")
    time.sleep(30)
    assert gw.metrics()["fm_gateway_db_errors_total"] > 0
    services.pg_start(embedded)
    _assert_exactly_once(fleet, s.dsn, tenant)


def test_agent_offline_then_reconnecting_delivers_its_backlog(
    test_settings: Settings, tenant: str, start_gateway: StartGateway, make_fleet: MakeFleet
) -> None:
    start_gateway(test_settings, tenant)
    fleet = make_fleet(test_settings, tenant, devices=3, reps=1, speedup=60, lead_s=900)
    fleet.start()
    time.sleep(1)
    offline = fleet.members[0].agent
    offline.go_offline(6.0)
    time.sleep(4)
    backlog = offline.outbox.stats().total
    assert backlog > 0  # it kept sampling with nowhere to send
    _assert_exactly_once(fleet, test_settings.dsn, tenant)
    assert offline.counters.connects >= 2


# ---------------------------------------------------------------------------- bad input


def _client(settings: Settings, username: str) -> mqtt.Client:
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.username_pw_set(username, broker.provision_mqtt_users(settings, [username])[0].password)
    c.connect(settings.mqtt_host, settings.mqtt_broker_port)
    c.loop_start()
    _wait_for(c.is_connected)
    return c


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    eventually(predicate, timeout_s=timeout_s, interval_s=0.2)


def test_bad_payloads_become_dead_letters_and_the_gateway_keeps_going(
    test_settings: Settings, tenant: str, start_gateway: StartGateway
) -> None:
    gw = start_gateway(test_settings, tenant)
    dev = f"{tenant}-bad"
    now = int(time.time() * 1000)
    base = f"fm/v1/{tenant}/dev/{dev}"
    cases = {
        "malformed_json": (f"{base}/telemetry", b'{"v":1,"seq":1,"samples":[['),
        "invalid": (f"{base}/telemetry", b'{"v":1,"seq":2,"samples":[[%d,"temp_c","hot"]]}' % now),
        "unsupported_version": (f"{base}/telemetry", b'{"v":9,"seq":3,"samples":[]}'),
        "time_in_future": (
            f"{base}/telemetry",
            b'{"v":1,"seq":4,"samples":[[%d,"temp_c",1.0]]}' % (now + 86_400_000),
        ),
        "too_large": (f"{base}/telemetry", b'{"v":1,"seq":5,"samples":[' + b" " * 300_000 + b"]}"),
        "bad_gps": (
            f"{base}/gps",
            b'{"v":1,"seq":6,"fixes":[[%d,200.0,95.0,5.0,null,null]]}' % now,
        ),
        "missing": (f"{base}/event", b'{"v":1,"events":[]}'),
    }
    c = _client(test_settings, broker.ADMIN_MQTT_USER)
    for topic, payload in cases.values():
        c.publish(topic, payload, qos=1).wait_for_publish(5)
    good = b'{"v":1,"seq":7,"samples":[[%d,"temp_c",21.5]]}' % now
    c.publish(f"{base}/telemetry", good, qos=1).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()

    def stored() -> bool:
        with psycopg.connect(test_settings.dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM telemetry_sample WHERE device_id = %s", (dev,)
            ).fetchone()
            return row is not None and row[0] == 1

    _wait_for(stored)
    with psycopg.connect(test_settings.dsn) as conn:
        rows = conn.execute(
            "SELECT reason, detail, length(payload) FROM dead_letter WHERE device_id = %s ORDER BY id",
            (dev,),
        ).fetchall()
    reasons = [r[0] for r in rows]
    assert reasons == [
        "malformed_json",
        "invalid",
        "unsupported_version",
        "time_in_future",
        "too_large",
        "out_of_range",
        "invalid",
    ]
    assert "out of range" in rows[5][1]
    assert "seq" in rows[6][1]
    assert rows[4][2] > 300_000  # kept whole, not truncated
    assert gw.metrics()["fm_gateway_dead_letters_total"] == 7
    assert gw.proc is not None and gw.proc.poll() is None


def test_device_cannot_publish_on_another_devices_topic(
    test_settings: Settings, tenant: str, start_gateway: StartGateway
) -> None:
    start_gateway(test_settings, tenant)
    intruder, victim = f"{tenant}-intruder", f"{tenant}-victim"
    broker.provision_mqtt_users(test_settings, [victim])
    results: list[int] = []
    # The broker binds each device account to its own client id.
    c = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=intruder, protocol=mqtt.MQTTv5
    )
    c.username_pw_set(intruder, broker.provision_mqtt_users(test_settings, [intruder])[0].password)
    c.on_publish = lambda _c, _u, _mid, rc, _p: results.append(rc.value)
    c.connect(test_settings.mqtt_host, test_settings.mqtt_broker_port)
    c.loop_start()
    _wait_for(c.is_connected)
    now = int(time.time() * 1000)
    payload = b'{"v":1,"seq":1,"samples":[[%d,"temp_c",99.0]]}' % now
    # Its own topic first: after answering a denied publish with 0x87, mosquitto 2.0
    # drops the connection (eclipse-mosquitto/mosquitto#2579), and a publish made while
    # paho reconnects fails.
    c.publish(f"fm/v1/{tenant}/dev/{intruder}/telemetry", payload, qos=1).wait_for_publish(5)
    c.publish(f"fm/v1/{tenant}/dev/{victim}/telemetry", payload, qos=1).wait_for_publish(5)
    _wait_for(lambda: len(results) == 2)
    c.loop_stop()
    c.disconnect()
    assert results[1] == 0x87  # not authorized
    assert results[0] < 0x80
    with psycopg.connect(test_settings.dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM telemetry_sample WHERE device_id = %s", (victim,)
        ).fetchone()
    assert row == (0,)
