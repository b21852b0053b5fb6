"""Signed firmware and staged OTA rollouts to real-path devices (the simulator's images).

Images are checked on upload; a device refuses an image whose hash or signature is
wrong; a rollout reaches the chosen percentage of a model's devices, each of which
downloads, verifies, switches and reports its new version; a build that fails to boot
rolls back on the device, and failures over the threshold halt the rollout.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import psycopg
from psycopg import AsyncConnection

from devices import commands, firmware
from edge_agent.ota import firmware_message
from firmware_sim.ota import build_image
from kernel.settings import Settings
from ledger.verify import b64url_encode
from tests.devices.conftest import ReleaseKeyPair, RunningDevice, StartDevice, new_token
from tests.eventually import eventually
from tests.gateway.harness import GatewayProcess
from tests.world import Api, People


def _sign(key: ReleaseKeyPair, model: str, version: str, image: bytes) -> str:
    sha = hashlib.sha256(image).hexdigest()
    return b64url_encode(key.private.sign(firmware_message(model, version, sha)))


def _upload(
    api: Api, key: ReleaseKeyPair, model: str, version: str, image: bytes, sig: str | None = None
) -> dict:  # type: ignore[type-arg]
    r = api.post(
        "/firmware",
        params={
            "equipment_model": model,
            "version": version,
            "key_id": key.key_id,
            "signature": sig or _sign(key, model, version, image),
        },
        data=image,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _fleet(api: Api, start_device: StartDevice, model: str, n: int) -> list[RunningDevice]:
    token_model = {"equipment_model": model}
    return [
        start_device(new_token(api, **token_model), f"{model}-{i}", model, "1.0.0")
        for i in range(n)
    ]


def _firmware(db_dsn: str, device_ids: list[str]) -> dict[str, str | None]:
    with psycopg.connect(db_dsn) as conn:
        rows = conn.execute(
            "SELECT device_id, firmware FROM device_status WHERE device_id = ANY(%s)",
            (device_ids,),
        ).fetchall()
    return {d: fw for d, fw in rows}


def _rollout_until(api: Api, rollout_id: int, states: tuple[str, ...]) -> dict:  # type: ignore[type-arg]
    def done() -> dict | None:  # type: ignore[type-arg]
        r = api.get(f"/rollouts/{rollout_id}")  # reading advances it (as the job does)
        assert r.status_code == 200, r.text
        j = r.json()
        return j if j["state"] in states else None

    return eventually(done, timeout_s=120, interval_s=0.5, what=f"rollout in {states}")


def test_uploads_need_a_valid_release_signature_and_size(
    app_url: str, people: People, release_key: ReleaseKeyPair
) -> None:
    api = people.api(app_url, "manager")
    model = f"m{uuid.uuid4().hex[:6]}"
    image = build_image(model, "2.0.0")
    bad = _sign(release_key, model, "2.0.1", image)  # signed for another version
    r = api.post(
        "/firmware",
        params={
            "equipment_model": model,
            "version": "2.0.0",
            "key_id": release_key.key_id,
            "signature": bad,
        },
        data=image,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "signature", r.text
    r = api.post(
        "/firmware",
        params={"equipment_model": model, "version": "2.0.0", "key_id": "nobody", "signature": bad},
        data=image,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "key_id", r.text
    r = api.post(
        "/firmware",
        params={
            "equipment_model": model,
            "version": "2.0.0",
            "key_id": release_key.key_id,
            "signature": bad,
        },
        data=b"x" * (firmware.MAX_IMAGE_BYTES + 1),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 413, r.text
    assert people.api(app_url, "rep1").post("/release-keys", json={}).status_code == 403
    img = _upload(api, release_key, model, "2.0.0", image)
    assert img["sha256"] == hashlib.sha256(image).hexdigest()
    assert _upload(api, release_key, model, "2.0.0", image)["sha256"] == img["sha256"]


def test_a_device_refuses_an_image_whose_hash_or_signature_is_wrong(
    app_url: str,
    people: People,
    test_settings: Settings,
    db_dsn: str,
    release_key: ReleaseKeyPair,
    gateway: GatewayProcess,
    start_device: StartDevice,
) -> None:
    api = people.api(app_url, "admin")
    model = f"valve{uuid.uuid4().hex[:6]}"
    image = build_image(model, "2.0.0")
    img = _upload(api, release_key, model, "2.0.0", image)
    (dev,) = _fleet(api, start_device, model, 1)
    eventually(lambda: _firmware(db_dsn, [dev.device_id]).get(dev.device_id) == "1.0.0")

    async def send_forged() -> list[str]:
        image_row = firmware.Image(
            **{
                k: img[k]
                for k in (
                    "sha256",
                    "equipment_model",
                    "version",
                    "size_bytes",
                    "key_id",
                    "signature",
                )
            }
        )
        good = firmware.ota_args(test_settings, image_row, dev.device_id)
        fake_sha = hashlib.sha256(b"something else").hexdigest()
        wrong_hash = {  # a valid signature over a hash the downloaded bytes do not have
            **good,
            "sha256": fake_sha,
            "signature": b64url_encode(
                release_key.private.sign(firmware_message(model, "2.0.0", fake_sha))
            ),
        }
        wrong_sig = {**good, "signature": b64url_encode(b"\x00" * 64)}
        ids = []
        async with await AsyncConnection.connect(db_dsn) as conn:
            for args in (wrong_hash, wrong_sig):
                async with conn.transaction():
                    ids.append(
                        await commands.send(
                            conn,
                            test_settings,
                            dev.device_id,
                            "ota",
                            args,
                            created_by=None,
                            timeout_s=120,
                        )
                    )
        return ids

    ids = asyncio.run(send_forged())

    def finished(command_id: str) -> dict[str, Any] | None:
        j: dict[str, Any] = api.get(f"/devices/{dev.device_id}/commands/{command_id}").json()
        return j if j["state"] != "sent" else None

    for cmd_id, reason in zip(ids, ("SHA-256 mismatch", "bad signature"), strict=True):
        got = eventually(lambda c=cmd_id: finished(c))  # type: ignore[misc]
        assert got["state"] == "failed" and reason in got["detail"], got
    assert dev.agent.firmware == "1.0.0"
    assert _firmware(db_dsn, [dev.device_id])[dev.device_id] == "1.0.0"


def test_a_staged_rollout_reaches_its_percentage_and_a_bad_build_halts_it(
    app_url: str,
    people: People,
    db_dsn: str,
    release_key: ReleaseKeyPair,
    gateway: GatewayProcess,
    start_device: StartDevice,
) -> None:
    api = people.api(app_url, "admin")
    model = f"pump{uuid.uuid4().hex[:6]}"
    fleet = _fleet(api, start_device, model, 5)
    ids = [d.device_id for d in fleet]
    eventually(
        lambda: (
            set(_firmware(db_dsn, ids).values()) == {"1.0.0"} and len(_firmware(db_dsn, ids)) == 5
        )
    )

    good = _upload(
        api, release_key, model, "2.0.0", build_image(model, "2.0.0", size_bytes=200_000)
    )
    r = api.post("/rollouts", json={"sha256": good["sha256"], "percent": 40, "wave_size": 1})
    assert r.status_code == 201, r.text
    rollout_id = r.json()["id"]

    def finished_by_the_job() -> bool:  # no API read in between: the periodic job advances it
        with psycopg.connect(db_dsn) as conn:
            row = conn.execute(
                "SELECT state FROM firmware_rollout WHERE id = %s", (rollout_id,)
            ).fetchone()
        return row is not None and row[0] != "running"

    eventually(finished_by_the_job, timeout_s=180, interval_s=0.5)
    done = _rollout_until(api, rollout_id, ("completed", "halted"))
    assert done["state"] == "completed" and done["devices"] == 2 and done["succeeded"] == 2, done

    def updated(n: int) -> dict[str, str | None] | None:
        v = _firmware(db_dsn, ids)
        return v if sum(1 for x in v.values() if x == "2.0.0") == n else None

    first = eventually(lambda: updated(2))
    assert sorted(str(v) for v in first.values()) == ["1.0.0", "1.0.0", "1.0.0", "2.0.0", "2.0.0"]
    # Widening to 60 % adds the next device in the rollout's order; the first two stay.
    r = api.post(f"/rollouts/{done['id']}/widen", json={"percent": 60})
    assert r.status_code == 200, r.text
    done = _rollout_until(api, done["id"], ("completed", "halted"))
    assert done["state"] == "completed" and done["devices"] == 3 and done["succeeded"] == 3, done
    fw = eventually(lambda: updated(3))
    assert {d for d, v in first.items() if v == "2.0.0"} < {
        d for d, v in fw.items() if v == "2.0.0"
    }
    assert api.post(f"/rollouts/{done['id']}/widen", json={"percent": 50}).status_code == 422
    updated_ids = {d for d, v in fw.items() if v == "2.0.0"}

    # A correctly signed build that does not boot: each device rolls back, and the
    # rollout halts once failures pass the threshold, before the rest get it.
    crash = _upload(api, release_key, model, "2.1.0", build_image(model, "2.1.0", boots=False))
    r = api.post(
        "/rollouts",
        json={
            "sha256": crash["sha256"],
            "percent": 100,
            "wave_size": 1,
            "min_results": 2,
            "failure_threshold": 0.5,
        },
    )
    assert r.status_code == 201, r.text
    halted = _rollout_until(api, r.json()["id"], ("completed", "halted"))
    assert halted["state"] == "halted" and "failure rate" in halted["reason"], halted
    assert halted["failed"] == 2 and halted["succeeded"] == 0 and halted["pending"] == 3, halted
    after = _firmware(db_dsn, ids)
    assert {d for d, v in after.items() if v == "2.0.0"} == updated_ids  # rolled back, not bricked
    widen = api.post(f"/rollouts/{halted['id']}/widen", json={"percent": 100})
    assert widen.status_code == 409, widen.text
    assert "2.1.0" not in after.values()

    health = api.get("/fleet/health").json()
    mine = next(m for m in health["models"] if m["equipment_model"] == model)
    assert mine["devices"] == 5 and mine["firmware"] == {"1.0.0": 2, "2.0.0": 3}
    # what the console lists: the model's images, newest first, and the rollouts with progress
    images = api.get(f"/firmware?equipment_model={model}").json()["items"]
    assert [i["version"] for i in images] == ["2.1.0", "2.0.0"]
    listed = {r["id"]: r for r in api.get("/rollouts?limit=100").json()["items"]}
    assert listed[halted["id"]]["state"] == "halted" and listed[halted["id"]]["failed"] == 2
    assert listed[done["id"]]["succeeded"] == 3
    only_halted = api.get("/rollouts?state=halted&limit=100").json()["items"]
    assert {r["state"] for r in only_halted} == {"halted"}
    assert people.api(app_url, "rep1").get("/rollouts").status_code == 403
    assert people.api(app_url, "rep1").get("/firmware").status_code == 403
