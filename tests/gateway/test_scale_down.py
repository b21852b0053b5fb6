"""A gateway removed for good (an HPA scale-down: SIGTERM, never restarted) strands none
of the shared telemetry: it leaves the shared subscription and drains before it goes,
so the remaining gateway stores every message -- without any device resending."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kernel import broker
from kernel.settings import Settings
from telemetry.contracts import Sample, TelemetryBatch, encode
from tests.eventually import eventually
from tests.gateway.harness import GatewayProcess

pytestmark = pytest.mark.integration

StartGateway = Callable[..., GatewayProcess]


def _publisher(settings: Settings) -> mqtt.Client:
    user = broker.ADMIN_MQTT_USER
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, broker.provision_mqtt_users(settings, [user])[0].password)
    c.max_inflight_messages_set(50)
    c.connect(settings.mqtt_host, settings.mqtt_broker_port)
    c.loop_start()
    eventually(c.is_connected, timeout_s=20, interval_s=0.05)
    return c


def test_a_gateway_scaled_down_strands_no_telemetry(
    test_settings: Settings, tenant: str, start_gateway: StartGateway
) -> None:
    stay = start_gateway(test_settings, tenant, "0")
    leave = start_gateway(test_settings, tenant, "1")
    devices, per_device = 20, 30
    now_ms = int(time.time() * 1000) - 3_600_000
    pub = _publisher(test_settings)
    stopped = threading.Event()

    def scale_down() -> None:
        leave.stop()  # SIGTERM, as Kubernetes does; the pod never comes back
        stopped.set()

    killer = threading.Timer(1.5, scale_down)
    killer.start()
    for m in range(per_device):
        for d in range(devices):
            batch = TelemetryBatch(1, m + 1, [Sample(now_ms + m * 1000, "temp_c", float(d))])
            pub.publish(f"fm/v1/{tenant}/dev/{tenant}-eq-{d:03d}/telemetry", encode(batch), qos=1)
        time.sleep(0.1)  # ~6 s of traffic: the scale-down lands in the middle of it
    killer.join()
    assert stopped.is_set()
    while pub.want_write() or pub._out_messages:
        time.sleep(0.05)
    pub.loop_stop()
    pub.disconnect()
    assert leave.proc is not None and leave.proc.returncode == 0, "no graceful stop"

    total = devices * per_device

    def stored() -> int:
        with psycopg.connect(test_settings.dsn) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT (device_id, time, metric)) FROM telemetry_sample"
                " WHERE device_id LIKE %s",
                (f"{tenant}-eq-%",),
            ).fetchone()
        assert row is not None and row[0] == row[1], "duplicates stored"
        return int(row[0])

    eventually(lambda: stored() == total, timeout_s=60, interval_s=0.5)
    assert stay.metrics()["fm_gateway_points_stored_total"] < total  # both took part
