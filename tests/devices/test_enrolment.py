"""A real-path device: enrolled with a one-time token over HTTP, its signed events verify
and reach the ledger, its commands are acked, and once decommissioned the broker refuses it."""

from __future__ import annotations

import hashlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from edge_agent.enrol import EnrolmentError, enrol, enrolment_request
from edge_agent.signing import DeviceKey
from kernel import broker
from kernel.settings import Settings
from ledger.store import ingest_device_events
from telemetry.contracts import SCHEMA_VERSION, Kind, Sample, TelemetryBatch, Topic, encode
from tests.devices.conftest import StartDevice, new_token
from tests.eventually import eventually
from tests.gateway.harness import GatewayProcess
from tests.gateway.test_broker_auth import Probe
from tests.mqtt_probe import NOT_AUTHORIZED
from tests.world import People


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_only_managers_issue_enrolment_tokens(app_url: str, people: People) -> None:
    for who in ("rep1", "viewer"):
        r = people.api(app_url, who).post("/enrolment-tokens", json={})
        assert r.status_code == 403, r.text
    r = people.api(app_url, "manager").post("/enrolment-tokens", json={"ttl_s": 10})
    assert r.status_code == 422 and r.json()["error"]["field"] == "ttl_s"
    r = people.api(app_url, "manager").post("/enrolment-tokens", json={"device_id": "fm-gateway-7"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "device_id"


def test_a_token_is_used_once_and_a_wrong_key_proof_is_refused(
    app_url: str, people: People, tmp_path: Path, db_dsn: str
) -> None:
    api = people.api(app_url, "manager")
    token = new_token(api)
    # A proof signed by another key than the one presented is refused; the token survives.
    key, impostor = DeviceKey.generate(_uid("dev")), DeviceKey.generate("x")
    body = enrolment_request(key, token)
    body["proof"] = enrolment_request(DeviceKey(key.device_id, impostor.private_key), token)[
        "proof"
    ]
    r = requests.post(f"{app_url}/api/v1/device-enrolments", json=body, timeout=30)
    assert r.status_code == 401 and r.json()["error"]["field"] == "proof", r.text
    # A proof for another device id does not carry over either.
    other = enrolment_request(DeviceKey(_uid("dev"), key.private_key), token)
    body = {**enrolment_request(key, token), "proof": other["proof"]}
    assert (
        requests.post(f"{app_url}/api/v1/device-enrolments", json=body, timeout=30).status_code
        == 401
    )

    first = enrol(app_url, token, key.device_id, tmp_path / "a")
    assert first.mqtt_username == key.device_id and first.mqtt_password
    with pytest.raises(EnrolmentError) as refused:
        enrol(app_url, token, _uid("dev"), tmp_path / "b")
    assert refused.value.status == 401 and "used already" in str(refused.value)
    with psycopg.connect(db_dsn) as conn:
        row = conn.execute(
            "SELECT public_key FROM device WHERE device_id = %s", (key.device_id,)
        ).fetchone()
        used = conn.execute(
            "SELECT used_by_device FROM enrolment_token WHERE token_hash = %s",
            (hashlib.sha256(token.encode()).digest(),),
        ).fetchone()
    saved = DeviceKey.load(key.device_id, tmp_path / "a" / "device.key")
    assert row is not None and bytes(row[0]) == saved.public_key_bytes
    assert used == (key.device_id,)  # kept as its hash only, marked used by the device


def test_two_devices_racing_for_one_token_enrol_exactly_once(
    app_url: str, people: People, tmp_path: Path
) -> None:
    token = new_token(people.api(app_url, "manager"))
    ids = [_uid("race") for _ in range(4)]

    def attempt(device_id: str) -> int:
        try:
            enrol(app_url, token, device_id, tmp_path / device_id)
        except EnrolmentError as exc:
            return exc.status
        return 201

    with ThreadPoolExecutor(len(ids)) as pool:
        outcomes = sorted(pool.map(attempt, ids))
    assert outcomes == [201, 401, 401, 401]


def test_a_token_for_one_device_and_an_expired_token_are_refused(
    app_url: str, people: People, tmp_path: Path, db_dsn: str
) -> None:
    api = people.api(app_url, "manager")
    bound = new_token(api, device_id=_uid("only"))
    with pytest.raises(EnrolmentError, match="another device"):
        enrol(app_url, bound, _uid("dev"), tmp_path / "a")
    expired = new_token(api)
    with psycopg.connect(db_dsn) as conn:
        conn.execute(
            "UPDATE enrolment_token SET expires_at = now() - interval '1 s'"
            " WHERE used_at IS NULL AND created_at > now() - interval '1 min' AND device_id IS NULL"
        )
    with pytest.raises(EnrolmentError, match="expired"):
        enrol(app_url, expired, _uid("dev"), tmp_path / "b")


def test_a_real_device_enrols_signs_events_into_the_ledger_acks_commands_and_is_decommissioned(
    app_url: str,
    people: People,
    test_settings: Settings,
    db_dsn: str,
    gateway: GatewayProcess,
    start_device: StartDevice,
) -> None:
    api = people.api(app_url, "admin")
    device_id = _uid("pump")
    dev = start_device(new_token(api), device_id, "pump-p200")

    # Signed field events verify against the key recorded at enrolment and reach the ledger.
    event_id = dev.agent.record_event("service.done", {"note": "replaced seal"})

    def verified() -> bool:
        with psycopg.connect(db_dsn) as conn:
            row = conn.execute(
                "SELECT verified, verify_reason FROM device_event WHERE event_id = %s", (event_id,)
            ).fetchone()
        assert row is None or row[0], row
        return row is not None

    eventually(verified, what="the device's signed event stored as verified")
    with psycopg.connect(db_dsn) as conn:
        ingest_device_events(conn)
        entry = conn.execute(
            "SELECT entry_json FROM ledger_entry WHERE source = 'device_event' AND source_id = %s",
            (event_id,),
        ).fetchone()
    assert entry is not None and device_id in entry[0]

    # A command is published, applied and acked; its state follows the ack.
    r = api.post(f"/devices/{device_id}/commands", json={"name": "ping"})
    assert r.status_code == 201, r.text
    cmd = r.json()["command_id"]
    got = eventually(
        lambda: (
            (j := api.get(f"/devices/{device_id}/commands/{cmd}").json())["state"] != "sent" and j
        )
    )
    assert got["state"] == "acked" and got["detail"] == "pong"
    r = api.post(
        f"/devices/{device_id}/commands", json={"name": "config", "args": {"sample_interval_s": 0}}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "args.sample_interval_s"
    # A rep cannot see an unclaimed device, nor command it.
    assert people.api(app_url, "rep1").get(f"/devices/{device_id}/commands").status_code == 404

    # Health reflects what the device reported.
    h = api.get(f"/devices/{device_id}/health").json()
    assert h["enrolment"] == "active" and h["last_seen"] is not None and h["online"] is True

    # Decommissioned: the broker drops it and refuses its credentials; history stays.
    r = api.post(f"/devices/{device_id}/decommission")
    assert r.status_code == 200, r.text
    probe = Probe(test_settings, device_id, dev.enrolment.mqtt_password, device_id)
    try:
        assert probe.connect().connack == NOT_AUTHORIZED
    finally:
        probe.close()
    assert api.post(f"/devices/{device_id}/commands", json={"name": "ping"}).status_code == 409
    # A message that was on its way (queued in the broker) is kept as a dead letter only.
    tool = Probe(
        test_settings,
        broker.ADMIN_MQTT_USER,
        broker.device_password(test_settings, broker.ADMIN_MQTT_USER),
        f"fm-control-test-{device_id}",
    )
    try:
        late = TelemetryBatch(
            SCHEMA_VERSION, 10**9, [Sample(int(time.time() * 1000), "temp_c", 21.5)]
        )
        topic = str(Topic(dev.enrolment.tenant, device_id, Kind.TELEMETRY))
        assert tool.connect().publish(topic, encode(late)) == 0
    finally:
        tool.close()

    def dead_lettered() -> bool:
        with psycopg.connect(db_dsn) as conn:
            row = conn.execute(
                "SELECT reason FROM dead_letter WHERE device_id = %s AND topic = %s",
                (device_id, topic),
            ).fetchone()
            stored = conn.execute(
                "SELECT count(*) FROM ingest_message WHERE device_id = %s AND seq = %s",
                (device_id, 10**9),
            ).fetchone()
        assert stored == (0,)
        return row is not None and row[0] == "device_refused"

    eventually(dead_lettered, what="the late message dead-lettered")

    assert api.get(f"/devices/{device_id}/commands").json()["items"][0]["state"] == "acked"
    assert api.post(f"/devices/{device_id}/decommission").status_code == 409

    # Enrolled again (a new token, a new key): new credentials, and its events verify
    # against the new key at once.
    dev.stop.set()
    dev.thread.join(15)
    again = start_device(new_token(api), device_id, "pump-p200", directory_suffix="-again")
    assert again.enrolment.mqtt_password != dev.enrolment.mqtt_password
    assert again.enrolment.seq_start > 1  # numbered above what the first incarnation sent
    event_id = again.agent.record_event("service.done", {"note": "after re-enrolment"})
    eventually(verified, what="the re-enrolled device's event verified with its new key")


def test_a_device_is_claimed_only_onto_an_account_the_caller_may_write(
    app_url: str, people: People, tmp_path: Path, db_dsn: str
) -> None:
    with psycopg.connect(db_dsn) as conn:
        acc = conn.execute(
            "INSERT INTO accounts (name, territory_id) VALUES (%s, %s) RETURNING id",
            (_uid("acct"), people.t1),
        ).fetchone()
        conn.commit()
    assert acc is not None
    account_id = int(acc[0])
    device_id = _uid("meter")
    enrol(app_url, new_token(people.api(app_url, "manager")), device_id, tmp_path / "m")
    rep2, rep1 = people.api(app_url, "rep2"), people.api(app_url, "rep1")
    body = {"account_id": account_id, "equipment_model": "meter-m1"}
    assert rep2.post(f"/devices/{device_id}/claim", json=body).status_code == 404
    assert (
        people.api(app_url, "viewer").post(f"/devices/{device_id}/claim", json=body).status_code
        == 403
    )
    r = rep1.post(f"/devices/{device_id}/claim", json=body)
    assert r.status_code == 200, r.text
    assert rep1.get(f"/devices/{device_id}/health").status_code == 200
    assert rep2.get(f"/devices/{device_id}/health").status_code == 404
    assert rep1.post(f"/devices/{device_id}/claim", json=body).status_code == 409


def test_an_enrolment_token_takes_over_no_phone_or_device_its_issuer_may_not_see(
    app_url: str, people: People, db_dsn: str, devices_settings: Settings
) -> None:
    """An enrolment for an id that is already a device (rep2's phone; territory 2's
    decommissioned pump, whose history stays with it) would put the id on the token's
    account, give it the enrolling key and rotate its broker account to the enroller's
    password: territory 1's manager would read the phone's GPS history and receive its
    commands, and could sign events as the pump. A phone id is refused to every token, a
    decommissioned device to tokens of managers who may not see it (409, nothing changes);
    an admin's token still re-enrols the pump."""
    with psycopg.connect(db_dsn) as conn:
        accounts = [
            conn.execute(
                "INSERT INTO accounts (name, territory_id) VALUES (%s, %s) RETURNING id",
                (_uid("acct"), territory),
            ).fetchone()
            for territory in (people.t1, people.t2)
        ]
        conn.commit()
    mine, theirs = (int(a[0]) for a in accounts if a is not None)
    manager, admin = people.api(app_url, "manager"), people.api(app_url, "admin")
    phone = people.api(app_url, "rep2").post("/phone/devices", json={"label": "rep2's"}).json()
    pump = _uid("pump")
    enrolled = requests.post(
        f"{app_url}/api/v1/device-enrolments",
        json=enrolment_request(DeviceKey.generate(pump), new_token(admin, account_id=theirs)),
        timeout=30,
    )
    assert enrolled.status_code == 201, enrolled.text
    assert admin.post(f"/devices/{pump}/decommission").status_code == 200

    def enrol_as(api: Any, target: str, **token: Any) -> requests.Response:
        key = DeviceKey.generate(target)
        body = enrolment_request(key, new_token(api, **token))
        return requests.post(f"{app_url}/api/v1/device-enrolments", json=body, timeout=30)

    for device_id in (phone["device_id"], pump):
        for token in ({"account_id": mine}, {}, {"device_id": device_id}):
            r = enrol_as(manager, device_id, **token)
            assert r.status_code == 409, (device_id, token, r.status_code, r.text)
            assert r.json()["error"]["field"] == "device_id", r.text
            assert "mqtt_password" not in r.text
    r = enrol_as(admin, phone["device_id"], account_id=mine)
    assert r.status_code == 409, r.text  # a phone is never equipment
    # nothing changed hands: the manager still sees neither, no key or asset was added
    for device_id in (phone["device_id"], pump):
        assert manager.get(f"/devices/{device_id}").status_code == 404
    with psycopg.connect(db_dsn) as conn:
        row = conn.execute(
            "SELECT d.public_key IS NULL, (SELECT count(*) FROM assets a WHERE a.device_id ="
            " d.device_id) FROM device d WHERE d.device_id = %s",
            (phone["device_id"],),
        ).fetchone()
    assert row == (True, 0)
    # the broker account the phone app was given still stands (it would have been rotated)
    m = phone["mqtt"]
    assert m["password"] == broker.device_password(devices_settings, m["username"])
    # whoever may see the pump re-enrols it
    again = enrol_as(admin, pump)
    assert again.status_code == 201, again.text
