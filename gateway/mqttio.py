"""What paho-mqtt spends per message, reduced for a gateway that takes thousands a second.

Measured with py-spy on a gateway fed 10-point messages, paho's per-message costs were
the largest part of the gateway's CPU after storage: four `recv` system calls per
incoming PUBLISH (the fixed header's byte, each remaining-length byte, then the body),
one wake-up of the network thread and one `send` per manual PUBACK, and for every QoS 1
receipt an `MQTTMessage` with its condition variable, an entry in the in-flight table and
the broker's PUBACK to parse. Here:

* `FastClient` reads the socket through `_BufferedSocket` (64 KiB `recv`s, paho then
  parses whole packets from memory; `pending()` tells paho's loop there is more without a
  `select`), the way paho already treats TLS sockets' buffered bytes;
* `ack_and_publish` sends every PUBACK of a committed batch and its receipts (QoS 0) as
  one write through paho's own output queue (so they never interleave with paho's packets).

Receipts at QoS 0 are safe: a receipt only lets the device forget messages; one that is
lost (the device offline or reconnecting) makes it send them again after its receipt
timeout, and the gateway stores nothing twice and receipts the duplicates again.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK
from paho.mqtt.enums import MQTTErrorCode

_READ_SIZE = 65536
_PUBLISH_QOS0 = 0x30


class _BufferedSocket:
    """A socket whose `recv` serves from a buffer filled by large reads."""

    def __init__(self, sock: Any, coalesce_s: float = 0.0) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._coalesce_s = coalesce_s

    def recv(self, bufsize: int) -> bytes:
        buf = self._buf
        if not buf:
            if self._coalesce_s:
                # the socket was readable: let a few more packets arrive, then read them
                # all at once (one wake-up for several messages when the stream is thin)
                time.sleep(self._coalesce_s)
            data = self._sock.recv(_READ_SIZE)  # BlockingIOError etc. propagate to paho
            if not data:
                return b""
            if len(data) <= bufsize:
                return bytes(data)
            buf += data
        out = bytes(buf[:bufsize])
        del buf[:bufsize]
        return out

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:  # send, close, fileno, setblocking ...
        return getattr(self._sock, name)


class FastClient(mqtt.Client):
    """paho's client with buffered reads; a loop round parses every buffered packet."""

    read_coalesce_s = 0.0

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if isinstance(sock, socket.socket):  # plain TCP or TLS; not websockets
            return _BufferedSocket(sock, self.read_coalesce_s)
        return sock

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and isinstance(self._sock, _BufferedSocket):
            if not self._sock._buf:
                break
            rc = super().loop_read(max_packets)
        return rc


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def publish_packet_qos0(topic: str, payload: bytes) -> bytes:
    """An MQTT v5 PUBLISH at QoS 0 without properties."""
    t = topic.encode()
    body_len = 2 + len(t) + 1 + len(payload)
    return (
        bytes((_PUBLISH_QOS0,))
        + _varint(body_len)
        + len(t).to_bytes(2, "big")
        + t
        + b"\x00"
        + payload
    )


def puback_packet(mid: int) -> bytes:
    """An MQTT v5 PUBACK, success (the reason code may be left out when it is 0)."""
    return b"\x40\x02" + mid.to_bytes(2, "big")


def ack_and_publish(
    client: mqtt.Client, mids: Iterable[int], messages: Iterable[tuple[str, bytes]]
) -> None:
    """PUBACK every QoS 1 message id in `mids`, then publish `messages` at QoS 0: one
    write. paho's output queue is its own thread-safe way to the socket (`ack` uses it)."""
    data = bytearray()
    for mid in mids:
        data += puback_packet(mid)
    for topic, payload in messages:
        data += publish_packet_qos0(topic, payload)
    if data:
        client._packet_queue(PUBACK, bytes(data), 0, 0)
