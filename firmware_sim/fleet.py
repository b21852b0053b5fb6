"""A fleet of simulated devices and reps' phones in one process, each through a real
edge agent talking to the real broker.

Equipment devices sit at customer sites (random points around a centre); reps drive from
site to site. Device ids are `{tenant}-eq-NNNN` and `{tenant}-rep-NN`, which are also their
broker usernames.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edge_agent.agent import AgentConfig, EdgeAgent, Signer
from edge_agent.signing import DeviceKey
from firmware_sim.clock import SimClock
from firmware_sim.navigation import ROUTE_COMMAND, PhoneNavigator
from firmware_sim.physics import EQUIPMENT_MODELS, AssetParams, FailureMode, random_asset
from firmware_sim.sensors import EquipmentSensor, PhoneGps, PhoneVisits
from firmware_sim.tracks import visiting_track
from kernel.broker import client_endpoint, provision_mqtt_users
from kernel.settings import Settings
from telemetry.devices import DeviceRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FleetSpec:
    tenant: str
    devices: int = 50
    reps: int = 5
    speedup: float = 1.0
    seed: int = 1
    center: tuple[float, float] = (4.8357, 45.7640)  # lon, lat
    radius_m: float = 25_000.0
    sample_interval_s: float = 10.0
    gps_interval_s: float = 5.0
    lead_s: float = 0.0  # start simulated time this far in the past
    batch_max_items: int = 100
    failure_probability: float = 0.2
    # (fault onset, failure) in simulated seconds after the start: asset #0 becomes a
    # pump-p200 whose bearing wears out then (the closed-loop demo's failing pump)
    forced_failure_s: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class Site:
    site_id: str
    lon: float
    lat: float


@dataclass(slots=True)
class FleetMember:
    agent: EdgeAgent
    kind: str  # "equipment" or "phone"
    asset: AssetParams | None = None
    navigator: PhoneNavigator | None = None  # phones: follows `route` commands
    thread: threading.Thread | None = None


def random_sites(
    rng: np.random.Generator, n: int, center: tuple[float, float], radius_m: float
) -> list[Site]:
    """Uniform over a disc: sqrt of a uniform radius, offsets in metres turned into degrees."""
    r = radius_m * np.sqrt(rng.uniform(0, 1, n))
    theta = rng.uniform(0, 2 * np.pi, n)
    lat = center[1] + (r * np.sin(theta)) / 110_540.0
    lon = center[0] + (r * np.cos(theta)) / (111_320.0 * math.cos(math.radians(center[1])))
    return [Site(f"site-{i:04d}", float(lon[i]), float(lat[i])) for i in range(n)]


def forced_failure(
    asset: AssetParams, now_s: float, onset_after_s: float, failure_after_s: float
) -> AssetParams:
    """The asset as a pump-p200 whose bearing starts to fail `onset_after_s` from now and
    fails `failure_after_s` from now."""
    if not 0 <= onset_after_s < failure_after_s:
        raise ValueError(
            f"forced failure: need 0 <= onset ({onset_after_s}) < failure ({failure_after_s})"
        )
    return replace(
        asset,
        model=EQUIPMENT_MODELS["pump-p200"],
        failure_mode=FailureMode.BEARING,
        fault_onset_s=now_s + onset_after_s,
        failure_s=now_s + failure_after_s,
    )


@dataclass(slots=True)
class Fleet:
    settings: Settings
    spec: FleetSpec
    workdir: Path
    loop_timeout_s: float = 0.05
    clock: SimClock = field(init=False)
    records: list[DeviceRecord] = field(default_factory=list)  # to register before starting
    sites: list[Site] = field(init=False)
    members: list[FleetMember] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        spec = self.spec
        rng = np.random.default_rng(spec.seed)
        self.clock = SimClock(speedup=spec.speedup, lead_s=spec.lead_s)
        self.sites = random_sites(rng, max(spec.devices, 1), spec.center, spec.radius_m)
        self.workdir.mkdir(parents=True, exist_ok=True)
        now_s = self.clock.now_s()
        eq_ids = [f"{spec.tenant}-eq-{i:04d}" for i in range(spec.devices)]
        rep_ids = [f"{spec.tenant}-rep-{i:02d}" for i in range(spec.reps)]
        creds = {
            c.username: c.password for c in provision_mqtt_users(self.settings, eq_ids + rep_ids)
        }
        for i, dev in enumerate(eq_ids):
            asset = random_asset(rng, dev, now_s, failure_probability=spec.failure_probability)
            if i == 0 and spec.forced_failure_s is not None:
                asset = forced_failure(asset, now_s, *spec.forced_failure_s)
            sensor = EquipmentSensor(asset, interval_s=spec.sample_interval_s)
            agent = EdgeAgent(
                self._config(dev, creds[dev]),
                sensors=[sensor],
                clock=self.clock.now_ms,
                signer=self._signer(dev, "equipment"),
            )
            self.members.append(FleetMember(agent, "equipment", asset))
            del i
        per_rep = max(1, len(self.sites) // max(spec.reps, 1))
        for j, rep in enumerate(rep_ids):
            mine = self.sites[j * per_rep : (j + 1) * per_rep][:8] or self.sites[:1]
            home = (
                spec.center[0] + float(rng.normal(0, 0.05)),
                spec.center[1] + float(rng.normal(0, 0.03)),
            )
            track = visiting_track(now_s, home, [(s.lon, s.lat) for s in mine], rng)
            gps = PhoneGps(track, interval_s=spec.gps_interval_s, seed=spec.seed * 1000 + j)
            visits = PhoneVisits(track, {(s.lon, s.lat): s.site_id for s in mine})
            agent = EdgeAgent(
                self._config(rep, creds[rep]),
                gps=gps,
                events=visits,
                clock=self.clock.now_ms,
                signer=self._signer(rep, "phone"),
            )
            nav = PhoneNavigator(gps, visits, self.clock.now_s)
            agent.register_command(ROUTE_COMMAND, nav.handle)
            self.members.append(FleetMember(agent, "phone", navigator=nav))

    def equipment(self) -> list[tuple[str, AssetParams, Site]]:
        """(device id, asset, site) of every equipment device: device i is at site i."""
        out = []
        members = [m for m in self.members if m.kind == "equipment"]
        for m, site in zip(members, self.sites, strict=False):
            assert m.asset is not None
            out.append((m.agent.config.device_id, m.asset, site))
        return out

    def phones(self) -> list[tuple[str, PhoneNavigator]]:
        """(device id, navigator) of every rep's phone."""
        return [
            (m.agent.config.device_id, m.navigator)
            for m in self.members
            if m.kind == "phone" and m.navigator is not None
        ]

    def _signer(self, device_id: str, kind: str) -> Signer:
        """Each device keeps its own Ed25519 key; its public half is registered."""
        key = DeviceKey.load_or_create(device_id, self.workdir / f"{device_id}.key")
        self.records.append(DeviceRecord(device_id, self.spec.tenant, kind, key.public_key_bytes))
        return lambda _dev, event_id, t_ms, type_, data: key.sign(event_id, t_ms, type_, data)

    def _config(self, device_id: str, password: str) -> AgentConfig:
        port, ca = client_endpoint(self.settings)
        return AgentConfig(
            device_id=device_id,
            tenant=self.spec.tenant,
            username=device_id,
            password=password,
            outbox_path=self.workdir / f"{device_id}.outbox.sqlite",
            host=self.settings.mqtt_host,
            port=port,
            tls_ca_file=ca,
            batch_max_items=self.spec.batch_max_items,
            loop_timeout_s=self.loop_timeout_s,
        )

    def register(self, dsn: str) -> None:
        """Provisioning: device rows with their public keys, before the devices talk."""
        import psycopg

        from telemetry.devices import register_devices

        with psycopg.connect(dsn) as conn:
            register_devices(conn, self.records)

    def start(self) -> None:
        for m in self.members:
            m.thread = threading.Thread(
                target=m.agent.run, args=(self._stop,), name=m.agent.config.device_id, daemon=True
            )
            m.thread.start()

    def stop(self) -> None:
        self._stop.set()
        for m in self.members:
            if m.thread is not None:
                m.thread.join(timeout=10)

    def quiesce(self, timeout_s: float) -> bool:
        """Stop sampling, keep publishing until every stored message is confirmed."""
        import time

        for m in self.members:
            m.agent.sampling = False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            # every agent must have flushed its open batches before an empty outbox counts
            if all(m.agent.flushed.is_set() for m in self.members) and self.unconfirmed() == 0:
                return True
            time.sleep(0.2)
        return False

    def totals(self) -> dict[str, int]:
        out = {
            "samples": 0,
            "fixes": 0,
            "events": 0,
            "published": 0,
            "confirmed": 0,
            "republished": 0,
        }
        for m in self.members:
            c = m.agent.counters
            out["samples"] += c.samples
            out["fixes"] += c.fixes
            out["events"] += c.events
            out["published"] += c.published
            out["confirmed"] += c.confirmed
            out["republished"] += c.republished
        return out

    def unconfirmed(self) -> int:
        """Messages still in the agents' outboxes (not yet confirmed stored)."""
        return sum(m.agent.outbox.stats().total for m in self.members)
