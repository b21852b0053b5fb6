"""Territory 2's live world for the hostile requests: what arrives over MQTT, through the
real path (the broker, and the gateway `fieldmesh gateway` runs with its stages), and what
the product's own jobs make of it.

`plant(...)` has territory 2's devices report, with the broker credentials the API gave
them (tests/hostile_world.py enrolled them, or registered them as rep2's phone):
- the equipment at territory 2's account: its status (its firmware carries the marker),
  telemetry, then a reading above a threshold rule on its equipment model, which raises
  an alert (on the device, whose id carries the marker) and opens a work order on the
  account, and
  a signed field event whose id and data carry the marker;
- a pump enrolled at the same account (its id carries the marker): 21 days of readings
  degrading towards a bearing failure, which the `failure-7d` model (trained as
  `fieldmesh maintenance train` does) predicts through the hourly job's code path
  (crm_sync.predictions): a prediction stored on the asset, a predicted_failure alert
  and a proactive work order;
- rep2's phone (over the broker's WebSocket listener, as the phone app does): a GPS track
  driving into the account's geofence and staying, which gives geofence events, a visit
  and the phone's position on the map;
- a compressor enrolled at the account (its id carries the marker) whose readings turn
  unlike healthy compressors': the live anomaly detector the gateway loaded at its start
  (`train_anomaly`, as `fieldmesh maintenance train anomaly --live` stores it)
  raises an `anomaly` alert and its work order;
- then the ledger, as the sealer role runs it (`ledger.service.Sealer`, on an in-process
  chain): the signed field event, the visit's check-in and a work order rep2 closed are
  sealed, anchored, and get receipts (their proofs, the work order's audit entry's link).

Much of that has no text of its own: a track, a position or a visit names the phone by
its id and the place by its coordinates. `Live.markers` holds those handles (the phone's
id, the inside coordinates, the threshold reading, the devices' broker passwords) beside
the marker, and the leak check looks for each of them in what territory-1 users get.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import requests

from crm_sync.predictions import predict_failures
from edge_agent.signing import DeviceKey
from firmware_sim.physics import DAY_S, EQUIPMENT_MODELS, METRICS, AssetParams, FailureMode
from firmware_sim.physics import readings as simulated_readings
from insights.maintenance.training import train_anomaly_live, train_failure_sim
from kernel.settings import Settings
from ledger.chain import Chain
from ledger.config import LedgerConfig
from ledger.service import Sealer
from ledger.sources import VISIT_CHECKIN, WORK_ORDER_DONE
from ledger.store import receipt_for
from tests.eventually import eventually
from tests.hostile_world import EQUIPMENT_MODEL, World, enrol
from tests.mqtt_probe import MqttProbe
from tests.world import People

# rep2's phone parks here, inside the account's 200 m fence around (13.40, 52.52): values
# with six decimals, as the API and the live feed round them, that nothing else holds
INSIDE = (13.401737, 52.520919)
OUTSIDE = (13.387913, 52.513377)  # about 1 km away: where the phone comes from
LIMIT = 80.0  # the threshold rule's limit (bearing_temp_c above it raises)
HOT = 97.3579  # the reading that crosses it, a value only territory 2's telemetry holds
ANOMALY_MODEL = "compressor-c80"  # the compressor's: its live anomaly detector is fleet-wide
ANOMALY_STEP_S = 60.0  # the compressor's sampling interval, as the detector was trained


def device_probe(enrolment: dict[str, Any]) -> MqttProbe:
    """The enrolled device's own connection, from what its enrolment answered."""
    return MqttProbe(
        enrolment["mqtt_host"],
        int(enrolment["mqtt_port"]),
        enrolment["mqtt_username"],
        enrolment["mqtt_password"],
        enrolment["device_id"],
    )


def phone_probe(settings: Settings, phone: dict[str, Any]) -> MqttProbe:
    """A registered phone's connection, as the phone app opens it: MQTT over the broker's
    WebSocket listener with the account `POST /api/v1/phone/devices` gave it."""
    m = phone["mqtt"]
    return MqttProbe(
        settings.mqtt_host, int(m["port"]), m["username"], m["password"], m["client_id"],
        websockets=True,
    )  # fmt: skip


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Seq:
    """A device's monotonic sequence numbers (from the one its enrolment gave)."""

    value: int

    def next(self) -> int:
        self.value += 1
        return self.value


@dataclass
class Live:
    ids: dict[str, Any]  # more path prefixes (and ids) of territory-2 records for the probes
    markers: tuple[str, ...]  # ids and values only territory 2's live data holds
    probe_query: dict[str, list[str]]  # query parameters the probes give territory-2 ids
    device: str  # the equipment with the threshold alert
    pump: str  # the equipment with the predicted failure
    phone: str  # rep2's phone
    device_seq: Seq
    compressor: str = ""  # the equipment with the anomaly alert
    compressor_report: Callable[[], None] | None = None  # its healthy, then anomalous rows
    alerts: dict[str, str] = field(default_factory=dict)  # kind -> alert id
    # the ledger's source ids of territory 2's anchored entries, by source
    receipts: dict[str, str] = field(default_factory=dict)
    receipt_hashes: tuple[str, ...] = ()  # their event hashes (hex)
    work_orders: dict[str, int] = field(default_factory=dict)  # kind -> work order id
    period: tuple[str, str] = ("", "")  # from, to: holds every fix and sample planted


def _ok(r: requests.Response, what: str) -> Any:
    assert r.status_code in (200, 201), (what, r.status_code, r.text[:500])
    return r.json()


def plant(url: str, people: People, marker: str, world: World, settings: Settings) -> Live:
    """Territory 2's live data through the broker and the running gateway, and the failure
    prediction through the job's code path; answers what the probes need."""
    rep2 = people.api(url, "rep2")
    admin = people.api(url, "admin")
    device = world.device.device_id
    tenant = world.enrolment["tenant"]
    base = f"fm/v1/{tenant}/dev/{device}"
    seq = Seq(int(world.enrolment.get("seq_start", 1)))
    live = Live({}, (), {}, device, "", world.phone["device_id"], seq)

    with device_probe(world.enrolment) as dev:
        fw = {"v": 1, "online": True, "t": now_ms(), "fw": f"{marker}-fw"}
        assert dev.publish(f"{base}/status", fw, retain=True) == 0
        first = {"v": 1, "seq": seq.next(), "samples": [[now_ms(), "bearing_temp_c", 41.0]]}
        assert dev.publish(f"{base}/telemetry", first) == 0
        eventually(
            lambda: "bearing_temp_c" in rep2.get(f"/devices/{device}").json().get("latest", {}),
            what="the first reading stored",
        )
        # a rule on the device's model (rules are fleet-wide configuration, which every
        # user reads: neither carries the marker): a reading above the limit raises an
        # alert, which opens a work order on the account
        _ok(
            admin.put(
                "/alert-rules/hostile-hot",
                {
                    "equipment_model": EQUIPMENT_MODEL,
                    "metric": "bearing_temp_c",
                    "kind": "threshold",
                    "direction": "above",
                    "limit": LIMIT,
                    "clear_at": 70.0,
                    "severity": "critical",
                },
            ),
            "alert rule",
        )

        def raised() -> str | None:
            # the gateway re-reads rules every few seconds: report until one applies
            hot = {"v": 1, "seq": seq.next(), "samples": [[now_ms(), "bearing_temp_c", HOT]]}
            assert dev.publish(f"{base}/telemetry", hot) == 0
            time.sleep(0.5)
            items = rep2.get("/alerts", params={"device_id": device}).json()["items"]
            return str(items[0]["alert_id"]) if items else None

        live.alerts["threshold"] = eventually(raised, timeout_s=90, what="the alert raised")
        event = world.device.signed_event(
            f"{marker}-ev1", now_ms(), "inspection", {"note": f"{marker} inspected"}
        )
        assert dev.publish(f"{base}/event", {"v": 1, "seq": seq.next(), "events": [event]}) == 0
    live.ids["/api/v1/ledger/events"] = event["id"]

    _plant_anomaly(url, people, marker, world, live)
    _plant_prediction(url, people, marker, world, settings, live)
    _plant_track(url, people, world, settings, live)

    # the work orders the alerts opened, as rep2 sees them
    orders = rep2.get("/work_orders", params={"limit": 100}).json()
    items = orders["items"] if isinstance(orders, dict) else orders
    by_ref = {str((w.get("custom") or {}).get("alert_id")): int(w["id"]) for w in items}
    for kind, alert_id in live.alerts.items():
        assert alert_id in by_ref, (kind, alert_id, [w.get("title") for w in items])
        live.work_orders[kind] = by_ref[alert_id]

    _anchor(url, people, marker, world, settings, live)

    start = (datetime.now(UTC) - timedelta(days=20)).isoformat()
    end = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    live.period = (start, end)
    live.ids.update(
        {
            "/api/v1/alerts": list(live.alerts.values()),
            "/api/v1/devices": [device, live.pump, live.phone, live.compressor],
            "/api/v1/geo/subjects": [live.phone, device],
            "/ar/assets": [device, live.pump, live.compressor],
            "/api/v1/ledger/events": list(live.receipts.values()),
            "/api/v1/work_orders": [world.ids["/api/v1/work_orders"], *live.work_orders.values()],
        }
    )
    live.probe_query = {
        "device_id": [device, live.pump, live.phone, live.compressor],
        "subject_id": [live.phone],
        "account_id": [str(world.account)],
        # search text naming territory 2's records and devices (every list, the console's
        # search, the assistant's lookups)
        "q": [marker, live.compressor],
        # the anchored entries' sources (a visit's and a work order's ids are numbers that
        # territory 1's records may share: the source says which entry)
        "source": list(live.receipts),
        "from": [start],
        "to": [end],
    }
    live.markers = (
        live.phone,
        f"{INSIDE[0]:.6f}",
        f"{INSIDE[1]:.6f}",
        str(HOT),
        *live.alerts.values(),
        # a receipt of territory 2's entries: its leaf's hash (its root and inclusion path
        # are shared with every other entry of the batch)
        *live.receipt_hashes,
        world.enrolment["mqtt_password"],
        world.phone["mqtt"]["password"],
    )
    return live


def _plant_prediction(
    url: str, people: People, marker: str, world: World, settings: Settings, live: Live
) -> None:
    """A pump at the account reports 21 days of hourly readings degrading towards a bearing
    failure; the failure model trained on the simulator's fleet predicts it (the hourly
    job's code path), which stores the prediction on the asset, raises a predicted_failure
    alert and opens a proactive work order."""
    admin = people.api(url, "admin")
    rep2 = people.api(url, "rep2")
    key = DeviceKey.generate(f"{marker}-pump")
    enrolment = enrol(url, admin, world.account, key, "pump-p200")
    live.pump = key.device_id
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    now_s = now.timestamp()
    failing = AssetParams(
        "failing", EQUIPMENT_MODELS["pump-p200"], installed_s=now_s - 200 * DAY_S,
        failure_mode=FailureMode.BEARING, fault_onset_s=now_s - 15 * DAY_S,
        failure_s=now_s + 2 * DAY_S, seed=11,
    )  # fmt: skip
    t = now_s - np.arange(21 * 24, 0, -1, dtype=np.float64) * 3600.0
    r = simulated_readings(failing, t)
    samples = [
        [int(ti * 1000), m, round(float(r[m][i]), 4)] for i, ti in enumerate(t) for m in METRICS
    ]
    seq = int(enrolment.get("seq_start", 1))
    with device_probe(enrolment) as pump:
        for i in range(0, len(samples), 1000):
            batch = {"v": 1, "seq": seq + i, "samples": samples[i : i + 1000]}
            assert (
                pump.publish(f"fm/v1/{enrolment['tenant']}/dev/{key.device_id}/telemetry", batch)
                == 0
            )

    def stored() -> bool:
        got = rep2.get(
            f"/devices/{key.device_id}/telemetry",
            params={
                "metric": METRICS[0],
                "from": datetime.fromtimestamp(t[0] - 3600, UTC).isoformat(),
                "to": now.isoformat(),
                "bucket_s": 86400 * 30,
            },
        ).json()
        return bool(sum(b["n"] for b in got.get("buckets", [])) == len(t))

    eventually(stored, what="the pump's readings stored")
    train_failure_sim(
        state_dir=Path(settings.state_dir) / f"hostile-{uuid.uuid4().hex[:6]}",
        dsn=settings.dsn, n_assets=120, days=60, seed=5,
    )  # fmt: skip
    opened = predict_failures(settings.dsn, now)
    assert len(opened) == 1, opened
    items = rep2.get("/alerts", params={"device_id": key.device_id, "state": "all"}).json()
    live.alerts["prediction"] = next(
        str(a["alert_id"]) for a in items["items"] if a["alert_type"] == "predicted_failure"
    )


def _plant_track(url: str, people: People, world: World, settings: Settings, live: Live) -> None:
    """rep2's phone drives into the account's fence and stays half an hour: geofence
    events, a visit (still open: listed whatever the day) and the phone's last position."""
    rep2 = people.api(url, "rep2")
    phone = world.phone
    end = now_ms() - 1000
    fixes = [[end - (40 - i) * 60_000, *OUTSIDE, 8.0, 0.0, None] for i in range(3)]
    fixes += [[end - k * 30_000, *INSIDE, 5.0, 0.0, None] for k in range(70, -1, -1)]
    with phone_probe(settings, phone) as p:
        batch = {"v": 1, "seq": now_ms(), "fixes": fixes}
        assert p.publish(phone["mqtt"]["gps_topic"], batch) == 0
    eventually(
        lambda: rep2.get("/geo/visits", params={"subject_id": live.phone}).json()["visits"],
        what="rep2's visit",
    )
    eventually(
        lambda: rep2.get(f"/geo/subjects/{live.phone}/events").json()["events"],
        what="rep2's geofence events",
    )


def train_anomaly(settings: Settings, state_dir: Path) -> None:
    """The live anomaly detector of ANOMALY_MODEL, on healthy simulated compressors at the
    compressor's interval, stored and activated as `fieldmesh maintenance train` does; the
    gateway started after this scores every device of that model with it."""
    train_anomaly_live(
        ANOMALY_MODEL, state_dir=state_dir, dsn=settings.dsn, n_assets=3, hours=8.0,
        interval_s=ANOMALY_STEP_S, seed=7,
    )  # fmt: skip


def _plant_anomaly(url: str, people: People, marker: str, world: World, live: Live) -> None:
    """A compressor at the account reports healthy readings, then readings no healthy
    compressor gives (hot, shaking): the gateway's live monitor raises an anomaly alert."""
    admin = people.api(url, "admin")
    rep2 = people.api(url, "rep2")
    key = DeviceKey.generate(f"{marker}-cmp")
    enrolment = enrol(url, admin, world.account, key, ANOMALY_MODEL)
    live.compressor = key.device_id
    healthy = AssetParams(
        "healthy", EQUIPMENT_MODELS[ANOMALY_MODEL], installed_s=0.0,
        failure_s=float("inf"), seed=3,
    )  # fmt: skip
    topic = f"fm/v1/{enrolment['tenant']}/dev/{key.device_id}/telemetry"
    seq = Seq(int(enrolment.get("seq_start", 1)))
    rows = 40

    def report() -> None:
        """30 healthy rows then 10 anomalous ones, ending now (after an earlier raise, the
        healthy rows clear the alert and the others raise it again)."""
        end_s = now_ms() / 1000
        t = end_s - np.arange(rows, 0, -1, dtype=np.float64) * ANOMALY_STEP_S
        r = simulated_readings(healthy, t)
        samples = []
        for i, ti in enumerate(t):
            for m in METRICS:
                v = float(r[m][i])
                if i >= 30:  # far outside anything healthy
                    v = v * 6.0 + 150.0
                samples.append([int(ti * 1000), m, round(v, 4)])
        with device_probe(enrolment) as dev:
            assert dev.publish(topic, {"v": 1, "seq": seq.next(), "samples": samples}) == 0

    def raised() -> str | None:
        # repeated until the gateway's device map (re-read every few seconds) knows the
        # compressor's model
        report()
        time.sleep(0.5)
        got = rep2.get("/alerts", params={"device_id": key.device_id, "state": "all"}).json()
        found = [a for a in got["items"] if a["alert_type"] == "anomaly"]
        return str(found[0]["alert_id"]) if found else None

    live.alerts["anomaly"] = eventually(raised, timeout_s=90, what="the anomaly alert raised")
    live.compressor_report = report


def _anchor(
    url: str, people: People, marker: str, world: World, settings: Settings, live: Live
) -> None:
    """rep2 closes a work order; the sealer (the role's code, on an in-process chain) takes
    the signed field event, the visit's check-in and the closed work order into the log,
    seals, anchors and writes their receipts."""
    rep2 = people.api(url, "rep2")
    order = _ok(
        rep2.post(
            "/work_orders",
            {"account_id": world.account, "title": f"{marker} closed job", "assignee_id": people.users["rep2"]},
        ),
        "work order",
    )  # fmt: skip
    for status in ("assigned", "in_progress", "done"):
        moved = rep2.patch(
            f"/work_orders/{order['id']}", {"status": status}, headers={"If-Match": "*"}
        )
        _ok(moved, f"work order {status}")
    visits = rep2.get("/geo/visits", params={"subject_id": live.phone}).json()["visits"]
    wanted = {
        "device_event": f"{marker}-ev1",
        VISIT_CHECKIN: str(visits[0]["id"]),
        WORK_ORDER_DONE: str(order["id"]),
    }
    config = LedgerConfig(batch_size=1, batch_interval_s=3600)
    chain = Chain.connect(None)
    hashes = []
    with (
        Sealer(settings.dsn, config, lambda: chain) as sealer,
        psycopg.connect(settings.dsn) as conn,
    ):
        for _ in range(10):
            sealer.tick(force_seal=True)
            got = {s: receipt_for(conn, i, s) for s, i in wanted.items()}
            if all(got.values()):
                hashes = [r.event_hash.hex() for r in got.values() if r is not None]
                break
        else:
            raise AssertionError(f"receipts of {wanted} not written: {got}")
    live.receipts = wanted
    live.receipt_hashes = tuple(hashes)
