"""The broker against a device that holds its own credentials and tries everything else.

Every refusal is checked twice: by the reason code the broker answers (SUBACK/CONNACK
0x87 not authorised) and by what is actually delivered afterwards.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fieldmesh import services
from kernel import broker
from kernel.settings import PROJECT_ROOT, Settings
from tests.eventually import eventually
from tests.gateway.harness import GatewayProcess, settings_env
from tests.mqtt_probe import NOT_AUTHORIZED, MqttProbe
from tests.ports import free_port

StartGateway = Callable[..., GatewayProcess]
ADMINISTRATIVE_ACTION = 0x98


class Probe(MqttProbe):
    """A probe at the test settings' broker (its plain port unless told another)."""

    def __init__(
        self,
        settings: Settings,
        username: str,
        password: str,
        client_id: str,
        *,
        port: int | None = None,
        ca: Path | None = None,
    ) -> None:
        port = port or settings.mqtt_broker_port
        super().__init__(settings.mqtt_host, port, username, password, client_id, ca=ca)


@pytest.fixture
def probes() -> Iterator[list[Probe]]:
    made: list[Probe] = []
    yield made
    for p in made:
        p.close()


def _device(settings: Settings, probes: list[Probe], device_id: str, **kw: Any) -> Probe:
    password = broker.provision_mqtt_users(settings, [device_id])[0].password
    p = Probe(settings, device_id, password, kw.pop("client_id", device_id), **kw)
    probes.append(p)
    return p.connect()


def _admin(settings: Settings, probes: list[Probe]) -> Probe:
    pw = broker.device_password(settings, broker.ADMIN_MQTT_USER)
    p = Probe(settings, broker.ADMIN_MQTT_USER, pw, f"fm-control-test-{len(probes)}")
    probes.append(p)
    return p.connect()


def _sample(seq: int) -> bytes:
    return b'{"v":1,"seq":%d,"samples":[[%d,"temp_c",21.5]]}' % (seq, int(time.time() * 1000))


def _stored_samples(settings: Settings, device_id: str) -> int:
    with psycopg.connect(settings.dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM telemetry_sample WHERE device_id = %s", (device_id,)
        ).fetchone()
    return int(row[0]) if row else 0


# ---------------------------------------------------------------------------- reading


def test_a_device_may_subscribe_only_to_its_own_commands_and_receipts(
    test_settings: Settings, tenant: str, probes: list[Probe]
) -> None:
    s = test_settings
    me, other = f"{tenant}-me", f"{tenant}-other"
    admin = _admin(s, probes)
    broker.provision_mqtt_users(s, [other])
    mine, theirs = f"fm/v1/{tenant}/dev/{me}", f"fm/v1/{tenant}/dev/{other}"
    # Another device's retained status is already on the broker before we subscribe
    # (PUBACK 0x10, no subscribers, is a success).
    status = b'{"v":1,"online":true}'
    assert admin.publish(f"{theirs}/status", status, retain=True) < 0x80
    dev = _device(s, probes, me)

    refused = [
        "#",
        "fm/v1/#",
        f"fm/v1/{tenant}/dev/+/cmd/+",
        f"{theirs}/cmd/+",
        f"{theirs}/receipt",
        f"{theirs}/status",
        f"{theirs}/telemetry",
        f"{mine}/telemetry",  # what it may write, it may not read
        f"{mine}/cmd/#",  # wider than its grant
        "$SYS/#",
        "$SYS/broker/clients/connected",
        f"$share/fm-gateway/fm/v1/{tenant}/dev/+/telemetry",
        f"$share/fm-gateway/{mine}/cmd/+",
        "$CONTROL/dynamic-security/v1/response",
    ]
    assert dev.subscribe(refused) == [NOT_AUTHORIZED] * len(refused)
    assert dev.subscribe([f"{mine}/cmd/+", f"{mine}/receipt"]) == [1, 1]

    # Everything the admin sends now: only the device's own command reaches it.
    for topic in (
        f"{theirs}/cmd/ping",
        f"{theirs}/receipt",
        f"{theirs}/telemetry",
        f"{mine}/telemetry",
        f"{mine}/cmd/ping",
    ):
        assert admin.publish(topic, b'{"v":1}') < 0x80
    eventually(lambda: f"{mine}/cmd/ping" in dev.topics())
    admin.publish(f"{mine}/receipt", b'{"v":1,"seqs":[]}')  # a marker: all above arrived
    eventually(lambda: f"{mine}/receipt" in dev.topics())
    assert dev.topics() == [f"{mine}/cmd/ping", f"{mine}/receipt"]
    assert dev.connected


def test_a_device_cannot_write_into_another_devices_topics(
    test_settings: Settings, tenant: str, probes: list[Probe]
) -> None:
    s = test_settings
    me, other = f"{tenant}-me", f"{tenant}-other"
    broker.provision_mqtt_users(s, [other])
    mine, theirs = f"fm/v1/{tenant}/dev/{me}", f"fm/v1/{tenant}/dev/{other}"
    admin = _admin(s, probes)
    assert admin.subscribe([f"fm/v1/{tenant}/#"]) == [1]
    denied = [
        (f"{theirs}/cmd/ping", False),
        (f"{theirs}/receipt", False),
        (f"{theirs}/telemetry", False),
        (f"{theirs}/status", True),
        (f"{mine}/cmd/ping", False),  # not its own to write either
        ("$SYS/broker/uptime", False),
    ]
    for topic, retain in denied:
        dev = _device(s, probes, me)
        # QoS 0, then its own topic at QoS 1 behind it: the broker drops the connection
        # after a denied publish (mosquitto#2579), or the marker is acknowledged.
        dev.client.publish(topic, b'{"v":1}', qos=0, retain=retain)
        info = dev.client.publish(f"{mine}/telemetry", _sample(1), qos=1)

        def answered(d: Probe = dev, mid: int = info.mid) -> bool:
            return d.disconnects != [] or mid in d.pubacks

        eventually(answered)
        dev.close()
    marker = _device(s, probes, me)
    assert marker.publish(f"{mine}/event", b'{"v":1}') == 0
    eventually(lambda: f"{mine}/event" in admin.topics())
    assert {t for t in admin.topics()} <= {f"{mine}/telemetry", f"{mine}/event"}
    # Nor was anything retained for a later subscriber.
    late = _admin(s, probes)
    assert late.subscribe([f"{theirs}/#"]) == [1]
    assert late.publish(f"{theirs}/cmd/marker", b"{}") < 0x80
    eventually(lambda: late.topics() != [])
    assert late.topics() == [f"{theirs}/cmd/marker"]


def test_only_the_gateway_account_joins_the_gateways_shared_group(
    test_settings: Settings, tenant: str, start_gateway: StartGateway, probes: list[Probe]
) -> None:
    s = test_settings
    gw = start_gateway(s, tenant)
    hijacker, victim = f"{tenant}-hijacker", f"{tenant}-victim"
    group = f"$share/fm-gateway/fm/v1/{tenant}/dev/+/telemetry"
    thief = _device(s, probes, hijacker)
    admin = _admin(s, probes)
    assert thief.subscribe([group, f"$share/fm-gateway/fm/v1/+/dev/{victim}/telemetry"]) == [
        NOT_AUTHORIZED,
        NOT_AUTHORIZED,
    ]
    assert admin.subscribe([group]) == [NOT_AUTHORIZED]

    dev = _device(s, probes, victim)
    n = 20
    for seq in range(1, n + 1):
        assert dev.publish(f"fm/v1/{tenant}/dev/{victim}/telemetry", _sample(seq)) == 0
    eventually(lambda: _stored_samples(s, victim) == n, timeout_s=60)
    assert thief.messages == [] and admin.messages == []
    assert gw.metrics()["fm_gateway_dead_letters_total"] == 0


# ---------------------------------------------------------------------------- identity


def test_a_client_id_cannot_be_taken_over_by_another_account(
    test_settings: Settings, tenant: str, start_gateway: StartGateway, probes: list[Probe]
) -> None:
    s = test_settings
    gw = start_gateway(s, tenant)
    victim, intruder = f"{tenant}-victim", f"{tenant}-intruder"
    mine = f"fm/v1/{tenant}/dev/{victim}"
    v = _device(s, probes, victim)
    assert v.subscribe([f"{mine}/cmd/+"]) == [1]
    intruder_pw = broker.provision_mqtt_users(s, [intruder])[0].password
    gateway_client_id = f"fm-gateway-{tenant}-0"
    for client_id in (victim, gateway_client_id, "fm-control-x", intruder + "-2", ""):
        p = Probe(s, intruder, intruder_pw, client_id)
        probes.append(p)
        assert p.connect().connack == NOT_AUTHORIZED, client_id

    admin = _admin(s, probes)
    admin.publish(f"{mine}/cmd/ping", b'{"v":1,"id":"c1","args":{}}')
    eventually(lambda: f"{mine}/cmd/ping" in v.topics())
    assert v.connected and v.disconnects == []
    # The gateway kept its connection: what the victim sends now is stored.
    assert v.publish(f"{mine}/telemetry", _sample(1)) == 0
    eventually(lambda: _stored_samples(s, victim) == 1, timeout_s=60)
    assert gw.metrics()["fm_gateway_mqtt_connected"] == 1


@pytest.mark.parametrize("reserved", ["gateway", broker.ADMIN_MQTT_USER, "fm-gateway-acme-0"])
def test_device_ids_that_would_shadow_the_platforms_identities_are_refused(
    test_settings: Settings, reserved: str
) -> None:
    with pytest.raises(broker.BrokerError, match="reserved"):
        broker.check_device_id(test_settings, reserved)
    with pytest.raises(broker.BrokerError, match="invalid device id"):
        broker.provision_mqtt_users(test_settings, ["a/b"])


# ---------------------------------------------------------------------------- credentials


def test_revocation_drops_the_device_at_once_and_it_cannot_come_back(
    test_settings: Settings, tenant: str, probes: list[Probe]
) -> None:
    s = test_settings
    dev_id = f"{tenant}-stolen"
    dev = _device(s, probes, dev_id)
    assert dev.subscribe([f"fm/v1/{tenant}/dev/{dev_id}/cmd/+"]) == [1]
    old_pw = broker.provision_mqtt_users(s, [dev_id])[0].password

    broker.revoke_device(s, dev_id)
    eventually(lambda: dev.disconnects != [])
    assert dev.disconnects == [ADMINISTRATIVE_ACTION]
    again = Probe(s, dev_id, old_pw, dev_id)
    probes.append(again)
    assert again.connect().connack == NOT_AUTHORIZED
    with pytest.raises(broker.BrokerError, match="revoked"):
        broker.provision_mqtt_users(s, [dev_id])

    # Rotation re-issues it, with a new password only.
    new_pw = broker.rotate_device(s, dev_id).password
    assert new_pw != old_pw
    stale = Probe(s, dev_id, old_pw, dev_id)
    fresh = Probe(s, dev_id, new_pw, dev_id)
    probes += [stale, fresh]
    assert stale.connect().connack != 0
    assert fresh.connect().connack == 0


def test_rotation_invalidates_the_old_password_and_drops_the_connection(
    test_settings: Settings, tenant: str, probes: list[Probe]
) -> None:
    s = test_settings
    dev_id = f"{tenant}-rotated"
    dev = _device(s, probes, dev_id)
    old_pw = broker.provision_mqtt_users(s, [dev_id])[0].password
    assert broker.account_state(s, dev_id).generation == 0

    new = broker.rotate_device(s, dev_id)
    eventually(lambda: dev.disconnects != [])
    assert new.password != old_pw
    assert broker.account_state(s, dev_id).generation == 1
    # Provisioning (what the simulator and the agent command do) now hands out the new one.
    assert broker.provision_mqtt_users(s, [dev_id])[0].password == new.password
    stale = Probe(s, dev_id, old_pw, dev_id)
    probes.append(stale)
    assert stale.connect().connack in (0x86, NOT_AUTHORIZED)  # bad password / not authorised
    fresh = Probe(s, dev_id, new.password, dev_id)
    probes.append(fresh)
    assert fresh.connect().connack == 0
    with pytest.raises(broker.BrokerError, match="no broker account"):
        broker.rotate_device(s, f"{tenant}-never-provisioned")


# ---------------------------------------------------------------------------- quotas


def test_the_broker_announces_and_enforces_its_packet_size_limit(
    test_settings: Settings, tenant: str, probes: list[Probe]
) -> None:
    s = test_settings
    big, bystander = f"{tenant}-big", f"{tenant}-bystander"
    dev = _device(s, probes, big)
    other = _device(s, probes, bystander)
    assert dev.connack_props.MaximumPacketSize == services.MAX_PACKET_SIZE
    assert dev.connack_props.ReceiveMaximum == services.MAX_INFLIGHT
    dev.client.publish(f"fm/v1/{tenant}/dev/{big}/telemetry", b"x" * (services.MAX_PACKET_SIZE + 1))
    eventually(lambda: dev.disconnects != [])
    assert other.connected


# ---------------------------------------------------------------------------- TLS


@pytest.fixture
def tls_broker() -> Iterator[Settings]:
    """A broker of this test's own, with the TLS listener `fieldmesh up --tls` adds."""
    state = Path(tempfile.mkdtemp(prefix="fm-tls-"))
    settings = Settings(state_dir=state, mqtt_port=free_port(), mqtt_tls_port=free_port())
    services.mqtt_start(settings)
    yield settings
    services.mqtt_stop(settings)
    shutil.rmtree(state, ignore_errors=True)


def test_a_device_connects_over_tls_with_the_project_ca(
    tls_broker: Settings, probes: list[Probe]
) -> None:
    s = tls_broker
    assert s.mqtt_tls_port is not None
    ca = broker.ca_path(s)
    topic = "fm/v1/acme/dev/tls-dev/telemetry"
    admin = _admin(s, probes)  # on the plain loopback listener
    admin.subscribe([topic])
    dev = _device(s, probes, "tls-dev", port=s.mqtt_tls_port, ca=ca)
    assert dev.connected
    assert dev.publish(topic, _sample(1)) == 0
    eventually(lambda: admin.topics() == [topic])

    # A client that does not trust the project's CA does not get through the handshake.
    pw = broker.provision_mqtt_users(s, ["tls-dev"])[0].password
    untrusting = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="tls-dev", protocol=mqtt.MQTTv5
    )
    untrusting.username_pw_set("tls-dev", pw)
    untrusting.tls_set()  # the system's CAs only
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusting.connect(s.mqtt_host, s.mqtt_tls_port)
    # And the TLS port speaks nothing but TLS.
    plain = Probe(s, "tls-dev", pw, "tls-dev", port=s.mqtt_tls_port)
    probes.append(plain)
    assert plain.connect().connack is None and plain.disconnects != []


def test_a_broker_from_an_earlier_version_is_upgraded_when_it_starts(
    tls_broker: Settings, probes: list[Probe]
) -> None:
    """An old plugin file (no client id, no role, default read access) is normalised."""
    s = tls_broker
    old = "old-dev"
    pw = broker.provision_mqtt_users(s, [old])[0].password
    services.mqtt_stop(s)
    path = s.state_dir / "mqtt" / "dynsec.json"
    doc = json.loads(path.read_text())
    for c in doc["clients"]:
        if c["username"] == old:
            c.pop("clientid", None)
            c["roles"] = []
    doc["roles"] = [r for r in doc["roles"] if r["rolename"] != broker.device_role_name(old)]
    doc["defaultACLAccess"] = {**doc["defaultACLAccess"], "publishClientReceive": True}
    path.write_text(json.dumps(doc))
    services.mqtt_start(s)

    wrong_id = Probe(s, old, pw, "someone-else")
    probes.append(wrong_id)
    assert wrong_id.connect().connack == NOT_AUTHORIZED
    dev = _device(s, probes, old)
    assert dev.subscribe(["#", f"fm/v1/acme/dev/{old}/cmd/+"]) == [NOT_AUTHORIZED, 1]


# ---------------------------------------------------------------------------- command line


def test_the_command_line_provisions_rotates_and_revokes(
    test_settings: Settings, tenant: str, probes: list[Probe]
) -> None:
    env = settings_env(test_settings)

    def fieldmesh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fieldmesh", *args],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    dev_id = f"{tenant}-cli"
    first = fieldmesh("provision", dev_id)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == [dev_id, broker.device_password(test_settings, dev_id)]
    dev = _device(test_settings, probes, dev_id)

    rotated = fieldmesh("devices", "rotate", dev_id)
    assert rotated.returncode == 0, rotated.stderr
    new_pw = rotated.stdout.split()[1]
    assert new_pw != first.stdout.split()[1]
    assert new_pw == broker.device_password(test_settings, dev_id)
    eventually(lambda: dev.disconnects != [])

    assert fieldmesh("devices", "revoke", dev_id).returncode == 0
    refused = fieldmesh("provision", dev_id)
    assert refused.returncode == 1 and "revoked" in refused.stderr
    unknown = fieldmesh("devices", "rotate", f"{tenant}-unknown")
    assert unknown.returncode == 1 and "no broker account" in unknown.stderr
