"""A hostile device through the real broker and gateway, with a fleet of good ones.

The hostile device uses its own credentials on its own topics, as an attacker holding
one device's secret would. Whatever it sends, the gateway stays up (same process, no
restart), stores every good message of the others exactly once and dead-letters every
hostile message with its reason; a flood is cut by the per-device rate guard.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware_sim.fleet import Fleet
from firmware_sim.hostile import DB_POISON_CHECK, hostile_message
from kernel import broker
from kernel.settings import Settings
from tests.eventually import eventually
from tests.gateway.harness import GatewayProcess
from tests.gateway.test_ingest import _assert_exactly_once

pytestmark = pytest.mark.integration

StartGateway = Callable[..., GatewayProcess]
MakeFleet = Callable[..., Fleet]


def device_client(settings: Settings, device: str) -> mqtt.Client:
    """An MQTT client logged in as `device` with its own provisioned credentials."""
    c = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5
    )
    c.username_pw_set(device, broker.provision_mqtt_users(settings, [device])[0].password)
    c.connect(settings.mqtt_host, settings.mqtt_broker_port)
    c.loop_start()
    eventually(c.is_connected)
    return c


def dead_letters(dsn: str, device: str) -> list[tuple[str, bytes]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT reason, payload FROM dead_letter WHERE device_id = %s ORDER BY id", (device,)
        ).fetchall()
    return [(r[0], bytes(r[1])) for r in rows]


def test_hostile_stream_is_dead_lettered_while_the_fleet_is_stored_exactly_once(
    private_services: Settings, start_gateway: StartGateway, make_fleet: MakeFleet
) -> None:
    s, tenant = private_services, "priv"
    with psycopg.connect(s.dsn) as conn:
        conn.execute(DB_POISON_CHECK)  # a refusal only the database knows about
    gw = start_gateway(s, tenant)
    assert gw.proc is not None
    pid = gw.proc.pid
    fleet = make_fleet(s, tenant, devices=6, reps=2, speedup=60, lead_s=900)
    fleet.start()
    evil = f"evil-{tenant}"  # not under the tenant's prefix: the fleet counts stay its own
    c = device_client(s, evil)
    sent = []
    for i in range(3 * 17):
        h = hostile_message(i, 1000 + i, int(time.time() * 1000), db_poison=True)
        c.publish(f"fm/v1/{tenant}/dev/{evil}/{h.suffix}", h.payload, qos=1).wait_for_publish(10)
        sent.append(h)
        time.sleep(0.05)  # spread through the fleet's stream
    c.loop_stop()
    c.disconnect()

    _assert_exactly_once(fleet, s.dsn, tenant)
    eventually(lambda: len(dead_letters(s.dsn, evil)) >= len(sent))
    got = dead_letters(s.dsn, evil)
    assert sorted(got) == sorted((h.reason, h.payload) for h in sent)  # each once, its reason
    assert gw.proc.poll() is None and gw.proc.pid == pid  # never crashed, never restarted
    with psycopg.connect(s.dsn) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM ingest_message WHERE device_id = %s", (evil,)
        ).fetchone()
    assert stored == (0,)
    m = gw.metrics()
    reasons = collections.Counter(h.reason for h in sent)
    assert m["fm_gateway_poison_isolated_total"] == reasons["CheckViolation"] == 3
    assert m["fm_gateway_batch_splits_total"] >= 0
    for reason, n in reasons.items():
        assert m[f'fm_gateway_dead_letter_reasons_total{{reason="{reason}"}}'] == n
    assert m["fm_gateway_dead_letters_total"] == len(sent)


def test_a_flooding_device_is_rate_limited_and_the_fleet_is_not(
    test_settings: Settings, tenant: str, start_gateway: StartGateway, make_fleet: MakeFleet
) -> None:
    gw = start_gateway(
        test_settings, tenant, extra_args=("--device-rate", "20", "--device-burst", "100")
    )
    fleet = make_fleet(test_settings, tenant, devices=4, reps=1, speedup=60, lead_s=600)
    fleet.start()
    noisy = f"noisy-{tenant}"[:60]
    receipted: set[int] = set()

    def on_receipt(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        import json

        receipted.update(json.loads(msg.payload)["seqs"])

    c = device_client(test_settings, noisy)
    c.on_message = on_receipt
    c.subscribe(f"fm/v1/{tenant}/dev/{noisy}/receipt", qos=1)
    now = int(time.time() * 1000)
    n = 1500
    for seq in range(1, n + 1):
        payload = b'{"v":1,"seq":%d,"samples":[[%d,"temp_c",1.0]]}' % (seq, now)
        c.publish(f"fm/v1/{tenant}/dev/{noisy}/telemetry", payload, qos=1)
    _assert_exactly_once(fleet, test_settings.dsn, tenant)

    def noisy_stored() -> int:
        with psycopg.connect(test_settings.dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM ingest_message WHERE device_id = %s", (noisy,)
            ).fetchone()
        assert row is not None
        return int(row[0])

    def accounted() -> bool:
        return noisy_stored() + gw.metrics()["fm_gateway_rate_limited_total"] == n

    eventually(accounted)
    stored = noisy_stored()
    assert 100 <= stored < n  # the burst, then the sustained rate: the rest was refused
    eventually(lambda: len(receipted) == stored)
    c.loop_stop()
    c.disconnect()
    with psycopg.connect(test_settings.dsn) as conn:
        seqs = {
            r[0]
            for r in conn.execute("SELECT seq FROM ingest_message WHERE device_id = %s", (noisy,))
        }
    assert receipted == seqs  # refused messages are not receipted: an agent sends them again
