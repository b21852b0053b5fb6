"""Soak: a fleet and a hostile device through random kills of gateway, broker and database.

Bounded and on loopback: FIELDMESH_SOAK_S seconds of traffic (120 by default; set it
higher for a longer run, FIELDMESH_SOAK_SEED to replay a sequence). Every ~10-20 s one
component is killed and restarted: the gateway (SIGKILL), the broker (SIGKILL, which
loses what it held in memory) or the database (immediate stop, for a few seconds). The
hostile device behaves like an agent with an outbox, resending each message until the
gateway's receipt says it was handled. At the end: the fleet's samples and fixes stored
exactly once, every hostile message dead-lettered with its reason and nothing of it
stored, and no gateway process ever died except by our hand.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import psycopg
import pytest

from fieldmesh import services
from firmware_sim.fleet import Fleet
from firmware_sim.hostile import DB_POISON_CHECK, HostileMessage, hostile_message
from kernel.settings import Settings
from tests.eventually import eventually
from tests.gateway.harness import GatewayProcess
from tests.gateway.test_hostile import dead_letters, device_client
from tests.gateway.test_ingest import _assert_exactly_once

pytestmark = [pytest.mark.integration, pytest.mark.slow]

StartGateway = Callable[..., GatewayProcess]
MakeFleet = Callable[..., Fleet]


class HostileAgent:
    """Sends hostile messages that carry a seq and resends each until receipted."""

    def __init__(self, settings: Settings, tenant: str, device: str) -> None:
        self.topic = f"fm/v1/{tenant}/dev/{device}"
        self.client = device_client(settings, device)
        self.client.on_message = self._on_receipt
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(
            f"{self.topic}/receipt", qos=1
        )
        self.client.subscribe(f"{self.topic}/receipt", qos=1)
        self.sent: dict[int, HostileMessage] = {}
        self.confirmed: set[int] = set()
        self._lock = threading.Lock()
        self._i = 0

    def _on_receipt(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.confirmed.update(json.loads(msg.payload)["seqs"])

    def send_next(self) -> None:
        while True:  # only the classes whose seq the gateway can recover
            h = hostile_message(self._i, 10_000 + self._i, int(time.time() * 1000), db_poison=True)
            self._i += 1
            if h.seq is not None:
                break
        self.sent[h.seq] = h
        self.client.publish(f"{self.topic}/{h.suffix}", h.payload, qos=1)

    def resend_unconfirmed(self) -> None:
        with self._lock:
            todo = [h for seq, h in self.sent.items() if seq not in self.confirmed]
        for h in todo:
            self.client.publish(f"{self.topic}/{h.suffix}", h.payload, qos=1)

    def all_confirmed(self) -> bool:
        with self._lock:
            return set(self.sent) <= self.confirmed

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_soak_fleet_and_hostile_device_through_random_kills(
    private_services: Settings, start_gateway: StartGateway, make_fleet: MakeFleet
) -> None:
    s, tenant = private_services, "priv"
    embedded = s.with_overrides(database_url=None)
    duration_s = float(os.environ.get("FIELDMESH_SOAK_S", "120"))
    seed = int(os.environ.get("FIELDMESH_SOAK_SEED", str(time.time_ns() % 10**6)))
    rng = random.Random(seed)
    print(f"soak: {duration_s:.0f} s, seed {seed}")
    with psycopg.connect(s.dsn) as conn:
        conn.execute(DB_POISON_CHECK)
    gw = start_gateway(s, tenant)
    fleet = make_fleet(s, tenant, devices=5, reps=1, speedup=60, lead_s=600)
    fleet.start()
    evil = HostileAgent(s, tenant, f"evil-{tenant}")
    actions: list[str] = []
    end = time.monotonic() + duration_s
    next_action = time.monotonic() + rng.uniform(8, 15)
    next_resend = time.monotonic() + 5
    while time.monotonic() < end:
        evil.send_next()
        time.sleep(rng.uniform(0.2, 0.6))
        if time.monotonic() >= next_resend:
            evil.resend_unconfirmed()
            next_resend = time.monotonic() + 5
        if time.monotonic() < next_action:
            continue
        assert gw.proc is not None and gw.proc.poll() is None, "gateway died on its own"
        action = rng.choice(["gateway", "broker", "database"])
        actions.append(action)
        if action == "gateway":
            gw.kill()
            time.sleep(rng.uniform(0.5, 3))
            gw = start_gateway(s, tenant)
        elif action == "broker":
            services.mqtt_stop(s, signal.SIGKILL)
            time.sleep(rng.uniform(0.5, 3))
            services.mqtt_start(s)
        else:
            services.pg_stop(embedded, mode="immediate")
            time.sleep(rng.uniform(2, 8))
            services.pg_start(embedded)
        next_action = time.monotonic() + rng.uniform(10, 20)
    print(f"soak actions: {actions}")

    def hostile_done() -> bool:
        evil.resend_unconfirmed()
        return evil.all_confirmed()

    eventually(hostile_done, timeout_s=120)
    evil.close()
    _assert_exactly_once(fleet, s.dsn, tenant)
    assert gw.proc is not None and gw.proc.poll() is None
    got = dead_letters(s.dsn, f"evil-{tenant}")
    by_payload = {p: r for r, p in got}
    for h in evil.sent.values():  # at least once: a resend after a lost receipt repeats it
        assert by_payload.get(h.payload) == h.reason
    assert {p for _, p in got} <= {h.payload for h in evil.sent.values()}
    with psycopg.connect(s.dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ingest_message WHERE device_id = %s", (f"evil-{tenant}",)
        ).fetchone()
        fleet_dead = conn.execute(
            "SELECT count(*) FROM dead_letter WHERE device_id LIKE %s", (f"{tenant}-%",)
        ).fetchone()
    assert row == (0,) and fleet_dead == (0,)
    assert len(evil.sent) > 20
