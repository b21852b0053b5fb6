"""`fieldmesh broker-config` (the compose file's and the Kubernetes init container's broker
configuration) is the embedded broker's, and a real Mosquitto accepts the gateway with
MQTT_URL's password from it and refuses anyone else."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fieldmesh import services
from kernel import broker as kbroker
from kernel.settings import PROJECT_ROOT
from tests.conftest import free_port
from tests.eventually import eventually


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    port = free_port()
    ws_port = free_port()
    out = tmp_path / "config"
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "FIELDMESH_STATE_DIR": str(tmp_path / "state"),
        "MQTT_URL": f"mqtt://gateway:s3cret-gw@broker:{port}",
    }
    plugin = next(p for p in services.DYNSEC_PLUGIN_PATHS if Path(p).exists())
    user = pwd.getpwuid(os.geteuid()).pw_name
    argv = [sys.executable, "-m", "fieldmesh", "broker-config", "--out", str(out)]
    argv += ["--listener", f"{port} 127.0.0.1", "--plugin", plugin, "--user", user]
    argv += ["--ws-listener", str(ws_port)]
    subprocess.run(argv, env=env, check=True, capture_output=True)
    proc = subprocess.Popen(["mosquitto", "-c", str(out / "mosquitto.conf")])
    try:
        eventually(lambda: services._port_open(port) or None, timeout_s=20, what="broker up")
        eventually(lambda: services._port_open(ws_port) or None, timeout_s=20, what="ws up")
        yield port, ws_port, out
    finally:
        proc.terminate()
        proc.wait(20)


def _connect(port: int, user: str, password: str, transport: str = "tcp") -> int:
    done = threading.Event()
    codes: list[int] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        codes.append(int(getattr(rc, "value", rc)))  # type: ignore[call-overload]
        done.set()

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"t-{user}-{transport}",
        transport=transport,  # type: ignore[arg-type]
    )
    client.username_pw_set(user, password)
    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
    finally:
        client.loop_stop()
        client.disconnect()
    return codes[0]


def test_the_gateway_connects_with_mqtt_urls_password_and_a_stranger_does_not(
    broker: tuple[int, int, Path],
) -> None:
    port, _, _ = broker
    assert _connect(port, "gateway", "s3cret-gw") == 0
    assert _connect(port, "gateway", "wrong") != 0
    assert _connect(port, "someone", "s3cret-gw") != 0


def test_the_phones_websockets_listener_has_the_same_accounts(
    broker: tuple[int, int, Path],
) -> None:
    _, ws_port, out = broker
    assert f"listener {ws_port}\nprotocol websockets" in (out / "mosquitto.conf").read_text()
    assert _connect(ws_port, "gateway", "s3cret-gw", "websockets") == 0
    assert _connect(ws_port, "gateway", "wrong", "websockets") != 0


def test_the_files_are_the_embedded_brokers_configuration(
    broker: tuple[int, int, Path],
) -> None:
    port, _, out = broker
    conf = (out / "mosquitto.conf").read_text()
    assert f"listener {port} 127.0.0.1\n" in conf
    assert "allow_anonymous false" in conf and "max_queued_messages 0" in conf
    assert "\nacl_file" not in conf  # every ACL lives in the dynamic-security plugin
    dynsec = json.loads((out / "dynsec.json").read_text())
    roles = {r["rolename"]: r for r in dynsec["roles"]}
    assert roles[kbroker.GATEWAY_ROLE] == kbroker.gateway_role()
    assert roles[kbroker.ADMIN_ROLE] == kbroker.admin_role()
    gateway = next(c for c in dynsec["clients"] if c["username"] == "gateway")
    assert gateway["roles"] == [{"rolename": kbroker.GATEWAY_ROLE}]
    assert dynsec["defaultACLAccess"] == kbroker.DEFAULT_ACL_ACCESS
