"""The outbox keeps every message until the gateway confirms it, across restarts."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge_agent.backoff import backoff_delay_s
from edge_agent.outbox import Outbox, OutboxFull


def _payload(seq: int) -> bytes:
    return f'{{"seq":{seq}}}'.encode()


def test_seq_is_monotonic_and_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    assert [box.append("telemetry", "t", _payload) for _ in range(3)] == [1, 2, 3]
    box.close()
    box = Outbox(path)
    assert box.append("telemetry", "t", _payload) == 4
    assert box.stats().pending == 4


def test_message_is_kept_until_confirmed_not_just_puback(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    seq = box.append("telemetry", "t", _payload)
    (row,) = box.next_to_send(10)
    assert row.seq == seq and row.payload == _payload(seq)
    box.mark_sent(seq, now_s=100.0)
    assert box.stats().sent == 1 and box.next_to_send(10) == []
    # no receipt within the timeout: it goes out again
    assert box.requeue_unconfirmed(older_than_s=200.0) == 1
    assert [r.seq for r in box.next_to_send(10)] == [seq]
    assert box.confirm([seq]) == 1
    assert box.stats().total == 0


def test_inflight_messages_are_resent_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    box.append("gps", "g", _payload)
    box.next_to_send(10)
    box.close()  # the process dies with the message in flight
    box = Outbox(path)
    assert [r.seq for r in box.next_to_send(10)] == [1]


def test_full_outbox_evicts_oldest_telemetry_first_and_counts_it(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_messages=3)
    box.append("event", "e", _payload)  # 1
    box.append("gps", "g", _payload)  # 2
    box.append("telemetry", "t", _payload)  # 3
    box.append("telemetry", "t", _payload)  # 4: evicts 3
    box.append("telemetry", "t", _payload)  # 5: evicts 4
    assert sorted(r.seq for r in box.next_to_send(10)) == [1, 2, 5]
    assert box.stats().evicted == 2


def test_outbox_full_of_events_refuses_rather_than_dropping_one(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_messages=2)
    box.append("event", "e", _payload)
    box.append("ack", "a", _payload)
    with pytest.raises(OutboxFull):
        box.append("event", "e", _payload)
    assert box.stats().total == 2


def test_failed_append_does_not_consume_a_seq(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")

    def broken(seq: int) -> bytes:
        raise ValueError("cannot encode")

    with pytest.raises(ValueError):
        box.append("telemetry", "t", broken)
    assert box.append("telemetry", "t", _payload) == 1


def test_backoff_is_capped_and_jittered() -> None:
    rng = random.Random(3)
    delays = [backoff_delay_s(n, base_s=0.5, cap_s=10.0, rng=rng) for n in range(20)]
    assert all(0.0 <= d <= 10.0 for d in delays)
    assert max(delays[:2]) <= 1.0  # early attempts are quick
    assert len({round(d, 6) for d in delays[10:]}) > 5  # not lockstep
    with pytest.raises(ValueError):
        backoff_delay_s(-1)
