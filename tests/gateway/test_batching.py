"""How the writer sizes a batch: by time and by count (GatewayConfig.min_batch), so a
gateway that sees a third of a stream still writes batches as large as one that sees all
of it, within max_linger_s. Pure unit tests of Gateway._next_batch (nothing connects)."""

from __future__ import annotations

import threading
import time

from gateway.decode import Inbound
from gateway.service import Gateway, GatewayConfig
from kernel.settings import Settings


def _gateway(**config: float) -> Gateway:
    settings = Settings(mqtt_url="mqtt://gw:secret@127.0.0.1:1")  # credentials given: no broker
    return Gateway(settings, GatewayConfig(**config))  # type: ignore[arg-type]


def _msg(i: int) -> Inbound:
    return Inbound(f"fm/v1/t/dev/d{i}/telemetry", b"{}", i + 1, 1, time.time_ns())


def test_a_thin_stream_is_gathered_until_min_batch() -> None:
    # The rest of the batch arrives well after linger_s: a wait by time alone would have
    # written the first message alone; the count keeps the writer waiting for company.
    gw = _gateway(linger_s=0.01, min_batch=100, max_linger_s=10.0)
    gw._queue.put(_msg(0))

    def trickle() -> None:
        time.sleep(0.1)
        for i in range(1, 150):
            gw._queue.put(_msg(i))

    t = threading.Thread(target=trickle)
    t.start()
    batch = gw._next_batch()
    t.join()
    assert len(batch) >= 100
    assert [m.mid for m in batch] == list(range(1, len(batch) + 1))  # arrival order


def test_a_batch_below_min_batch_goes_after_max_linger() -> None:
    gw = _gateway(linger_s=0.01, min_batch=100, max_linger_s=0.1)
    for i in range(3):
        gw._queue.put(_msg(i))
    assert [m.mid for m in gw._next_batch()] == [1, 2, 3]
    assert gw._next_batch() == []  # nothing left (after the 0.2 s get timeout)


def test_a_full_queue_is_taken_at_once_up_to_max_batch() -> None:
    gw = _gateway(linger_s=10.0, min_batch=100, max_linger_s=10.0, max_batch=50)
    for i in range(120):
        gw._queue.put(_msg(i))
    assert len(gw._next_batch()) == 50  # no linger: the queue already fills a batch
    assert len(gw._next_batch()) == 50
