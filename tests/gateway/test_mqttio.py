"""gateway.mqttio: the packets it writes by hand and the buffered socket paho reads from."""

from __future__ import annotations

import socket

import pytest

from gateway.mqttio import _BufferedSocket, _varint, puback_packet, publish_packet_qos0


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
    ],
)
def test_remaining_length_is_the_mqtt_variable_byte_integer(n: int, encoded: bytes) -> None:
    assert _varint(n) == encoded  # the examples of MQTT 5.0, 1.5.5


def test_publish_and_puback_layout() -> None:
    pkt = publish_packet_qos0("fm/v1/t/dev/d1/receipt", b'{"v":1,"seqs":[3]}')
    topic = b"fm/v1/t/dev/d1/receipt"
    body = len(topic).to_bytes(2, "big") + topic + b"\x00" + b'{"v":1,"seqs":[3]}'
    assert pkt == b"\x30" + _varint(len(body)) + body  # QoS 0: no packet id; no properties
    big = publish_packet_qos0("a/b", b"x" * 300)
    assert big[1:3] == _varint(2 + 3 + 1 + 300)
    assert puback_packet(0x1234) == b"\x40\x02\x12\x34"


def test_buffered_socket_serves_whole_reads_in_pieces() -> None:
    a, b = socket.socketpair()
    try:
        b.sendall(b"\x30\x05hello" * 3)
        s = _BufferedSocket(a)
        assert s.recv(1) == b"\x30"
        assert s.pending() == 20  # the rest of the single large read stays buffered
        assert s.recv(1) == b"\x05"
        assert s.recv(5) == b"hello"
        assert s.recv(100) == b"\x30\x05hello\x30\x05hello"
        assert s.pending() == 0
        b.close()
        assert s.recv(1) == b""  # end of stream passes through
        assert s.fileno() == a.fileno()  # everything else is the socket's
    finally:
        a.close()
