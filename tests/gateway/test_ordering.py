"""Per-device order across gateways: the ordered kinds (GPS, events, status, acks) of one
device reach one gateway partition, in the order the device sent them, while telemetry is
shared by all gateways; one of three gateways killed mid-stream changes neither."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import psycopg
import pytest

from firmware_sim.fleet import Fleet
from gateway.service import partition_from_instance, partition_of
from kernel.settings import Settings
from tests.gateway.harness import GatewayProcess, stored_counts

pytestmark = pytest.mark.integration

StartGateway = Callable[..., GatewayProcess]
MakeFleet = Callable[..., Fleet]


def test_partition_of_is_stable_and_spreads_devices() -> None:
    ids = [f"t-rep-{i:04d}" for i in range(3000)]
    shares = [sum(1 for d in ids if partition_of(d, 3) == p) for p in range(3)]
    assert all(800 < s < 1200 for s in shares), shares
    assert [partition_of(d, 3) for d in ids[:50]] == [partition_of(d, 3) for d in ids[:50]]
    assert partition_from_instance("fieldmesh-gateway-2") == 2
    assert partition_from_instance("bench") == 0


def _first_store_order(dsn: str, tenant: str) -> dict[str, list[tuple[int, int]]]:
    """Per device: (seq, transaction id of its first store), ordered kinds only."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT device_id, seq, xmin::text::bigint FROM ingest_message"
            " WHERE device_id LIKE %s AND kind IN ('gps', 'event', 'status', 'ack')"
            " ORDER BY device_id, seq",
            (f"{tenant}-%",),
        ).fetchall()
    out: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for device_id, seq, xid in rows:
        out[device_id].append((int(seq), int(xid)))
    return out


def test_three_gateways_keep_each_devices_order_through_a_kill(
    test_settings: Settings, tenant: str, start_gateway: StartGateway, make_fleet: MakeFleet
) -> None:
    args = ("--partitions", "3", "--device-rate", "10000")
    gws = [start_gateway(test_settings, tenant, str(i), args) for i in range(3)]
    fleet = make_fleet(test_settings, tenant, devices=6, reps=9, speedup=60, lead_s=900)
    fleet.start()
    time.sleep(4)
    gws[1].kill()  # SIGKILL mid-stream: its partition waits in its broker session
    time.sleep(3)
    gws[1] = start_gateway(test_settings, tenant, "1", args)
    time.sleep(3)
    assert fleet.quiesce(timeout_s=90), f"{fleet.unconfirmed()} messages never confirmed"
    tot = fleet.totals()
    counts = stored_counts(test_settings.dsn, tenant)
    assert counts.samples == tot["samples"] and counts.distinct_samples == counts.samples
    assert counts.fixes == tot["fixes"] and counts.distinct_fixes == counts.fixes
    assert tot["fixes"] > 0

    order = _first_store_order(test_settings.dsn, tenant)
    phones = [d for d in order if "-rep-" in d]
    assert len(phones) == 9
    for device_id, stored in order.items():
        xids = [xid for _, xid in stored]
        # one gateway stores a device's ordered messages one transaction after the other:
        # a later seq never commits in an earlier transaction than an earlier seq
        assert xids == sorted(xids), f"{device_id}: stored out of order {stored[:20]}"
    # every gateway took part, and each skipped the other partitions' devices
    metrics = [gw.metrics() for gw in gws]
    assert all(m["fm_gateway_messages_stored_total"] > 0 for m in metrics)
    live = [metrics[0], metrics[2]]  # gateway 1 restarted: its counters began again
    assert all(m["fm_gateway_other_partition_total"] > 0 for m in live)
