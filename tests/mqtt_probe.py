"""One MQTT v5 client for tests that play a device, a phone or an intruder: it records every
answer the broker gives it (CONNACK with its properties, SUBACK codes, PUBACKs, messages,
disconnects), so a test can check a refusal by its reason code and by what is delivered."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.eventually import eventually

NOT_AUTHORIZED = 0x87
# publish()'s answer when the connection closed before a PUBACK came: no reason code, and
# above every refusal code, so neither `== 0` nor `< 0x80` takes it for success
NO_PUBACK = 0x100


class MqttProbe:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        client_id: str,
        *,
        websockets: bool = False,
        ca: Path | None = None,
    ) -> None:
        self.connack: int | None = None
        self.connack_props: Any = None
        self.subacks: list[list[int]] = []
        self.messages: list[tuple[str, bytes]] = []
        self.disconnects: list[int] = []
        self.pubacks: dict[int, int] = {}
        self._lock = threading.Lock()
        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            transport="websockets" if websockets else "tcp",
            reconnect_on_failure=False,
        )
        c.username_pw_set(username, password)
        if ca is not None:
            c.tls_set(ca_certs=str(ca))
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        self.client = c
        self._host, self._port = host, port

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, props: Any) -> None:
        self.connack, self.connack_props = rc.value, props

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, rcs: list[Any], _p: Any) -> None:
        self.subacks.append([r.value for r in rcs])

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.disconnects.append(rc.value)

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        self.pubacks[mid] = rc.value

    def connect(self) -> Self:
        """Connect and wait for the CONNACK (or the connection's end); `connack` says which."""
        self.client.connect(self._host, self._port)
        self.client.loop_start()
        eventually(lambda: self.connack is not None or self.disconnects != [], what="CONNACK")
        return self

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def __enter__(self) -> Self:
        self.connect()
        assert self.connack == 0, f"refused: {self.connack} {self.disconnects}"
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self.connack == 0 and not self.disconnects

    def subscribe(self, filters: list[str]) -> list[int]:
        """The SUBACK's reason codes, one per filter."""
        n = len(self.subacks)
        self.client.subscribe([(f, 1) for f in filters])
        eventually(lambda: len(self.subacks) > n, what="SUBACK")
        return self.subacks[n]

    def publish(self, topic: str, payload: bytes | dict[str, Any], *, retain: bool = False) -> int:
        """The PUBACK's reason code at QoS 1 (0: the broker has it), or NO_PUBACK."""
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        info = self.client.publish(topic, data, qos=1, retain=retain)
        eventually(lambda: info.mid in self.pubacks or self.disconnects, what=f"PUBACK {topic}")
        return self.pubacks.get(info.mid, NO_PUBACK)

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def topics(self) -> list[str]:
        return [t for t, _ in self.received()]
