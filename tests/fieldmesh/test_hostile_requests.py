"""Hostile requests to every operation of the whole app (tests/hostile.py makes them, from
a fixed seed): no answer is a 5xx, an error that is not the JSON error shape, a hang, or
a 2xx that shows a territory-1 user data of territory 2. The app runs on a database of
its own, with territory 2's world (tests/hostile_world.py: a record of every kind of
tenant data, its text carrying a marker) made by territory 2's rep, and its live world
(tests/hostile_live.py: telemetry, threshold and anomaly alerts, a predicted failure, a
GPS track, geofence events and a visit) reported over MQTT through a real broker and
gateway, and the ledger's receipts of its field event, visit and closed work order, which
the sealer anchored: every operation is probed with their ids (a receipt's proof, the
audit entry linking it) and the leak check looks for their event hashes.

Beside the REST API, the other ways a territory-1 user could read territory 2's live data
are tried here too: the console's live WebSocket, a phone's broker account, and the
assistant. The map has no other source: its tiles come from an outside tile server (no
records), and its layers are the REST reads /console/api/positions, /sites, /visits,
/track and /plans, which the hostile requests cover (there is no bounding-box query)."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp
import pytest
import requests
from psycopg import AsyncConnection

from edge_agent.enrol import enrolment_request
from edge_agent.signing import DeviceKey
from engage.sms import inbound_key
from fieldmesh import services
from fieldmesh.migrate import upgrade
from identity import auth
from kernel.settings import Settings
from ledger.sources import WORK_ORDER_DONE
from tests.appserver import serve_app
from tests.eventually import eventually, eventually_async
from tests.gateway.harness import GatewayProcess
from tests.hostile import Case, cases, check
from tests.hostile_live import (
    ANOMALY_MODEL,
    HOT,
    INSIDE,
    Live,
    device_probe,
    now_ms,
    phone_probe,
    plant,
    train_anomaly,
)
from tests.hostile_world import World, seed
from tests.mqtt_probe import NOT_AUTHORIZED
from tests.world import Api, People, make_people

SEED = int(os.environ.get("FIELDMESH_FUZZ_SEED", "20261207"))
# cases per operation beyond the fixed ones; FIELDMESH_FUZZ_CASES raises it for a long run
PER_OPERATION = int(os.environ.get("FIELDMESH_FUZZ_CASES", "8"))
TIMEOUT_S = 20.0
# These would lock the fuzzing users out (revoke a token, deactivate or demote a user);
# tests/crm/test_api.py and tests/identity cover them.
EXCLUDED = {
    ("DELETE", "/api/v1/auth/tokens/{token_id}"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/users/{user_id}/deactivate"),
    ("PUT", "/api/v1/users/{user_id}/password"),
    ("PATCH", "/api/v1/users/{id}"),
    ("DELETE", "/api/v1/users/{id}"),
}


@dataclass
class Target:
    url: str
    people: People
    marker: str
    ids: dict[str, Any]
    world: World
    live: Live
    settings: Settings

    @property
    def markers(self) -> tuple[str, ...]:
        return (self.marker, *self.live.markers)

    @property
    def id_fields(self) -> dict[str, set[Any]]:
        """Territory 2's visit is numbers only: its account, fence and rep."""
        return {
            "account_id": {self.world.account},
            "fence_id": {self.ids["/api/v1/geo/fences"]},
            "rep_id": {self.people.users["rep2"]},
        }


async def _expired_token(dsn: str, user_id: int) -> str:
    """A real token of rep1 whose time ran out (ttl -1 s)."""
    async with await AsyncConnection.connect(dsn) as conn:
        _, token = await auth.issue_token(conn, user_id, "expired", ttl_s=-1)
        await conn.commit()
    return token


@pytest.fixture(scope="module")
def target(services_up: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    name = f"fm_hostile_{uuid.uuid4().hex[:8]}"
    dsn = services.create_database(services_up, name)
    # a tenant of its own: the gateway's shared-subscription session takes no other
    # test's messages
    settings = services_up.with_overrides(database_url=dsn, tenant=f"hz{uuid.uuid4().hex[:8]}")
    gateway: GatewayProcess | None = None
    try:
        upgrade(dsn)
        people = asyncio.run(make_people(dsn, "hostile"))
        people.tokens["expired"] = asyncio.run(_expired_token(dsn, people.users["rep1"]))
        marker = f"T2SECRET{uuid.uuid4().hex[:6]}"
        with serve_app(settings) as url:
            world = seed(url, people, marker, inbound_key(services_up))
            train_anomaly(settings, tmp_path_factory.mktemp("models"))
            log = tmp_path_factory.mktemp("gw") / "gateway.log"
            gateway = GatewayProcess(settings, settings.tenant, log_path=log).start()
            live = plant(url, people, marker, world, settings)
            ids = {**world.ids, **live.ids}
            yield Target(url, people, marker, ids, world, live, settings)
    finally:
        if gateway is not None:
            gateway.stop()
        services.drop_database(services_up, name)


def _send(target: Target, case: Case) -> str | None:
    headers: dict[str, str] = dict(case.headers)
    if case.who == "invalid":
        headers["Authorization"] = "Bearer fm_not-a-real-token"
    elif case.who != "anon":
        headers["Authorization"] = f"Bearer {target.people.tokens[case.who]}"
    if case.content_type:
        headers["Content-Type"] = case.content_type
    try:
        r = requests.request(
            case.method,
            case.url(target.url),
            data=case.body,
            headers=headers,
            timeout=TIMEOUT_S,
            allow_redirects=False,
            stream=True,
        )
        body = r.raw.read(2_000_000, decode_content=True)
        r.close()
    except requests.Timeout:
        return f"{case.label()}\n    no answer within {TIMEOUT_S} s"
    except requests.ConnectionError as exc:
        return f"{case.label()}\n    connection failed: {exc}"
    ctype = r.headers.get("Content-Type", "")
    problem = check(case, r.status_code, ctype, body, target.markers, target.id_fields)
    return None if problem is None else f"{case.label()}\n    {problem}"


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def _live_reads(target: Target) -> list[tuple[str, dict[str, str], str]]:
    """(path, query, what rep2 finds there) for each kind of territory 2's live data."""
    live, marker = target.live, target.marker
    period = {"from": live.period[0], "to": live.period[1]}
    lon = f"{INSIDE[0]:.6f}"
    return [
        ("/api/v1/devices", {}, live.device),  # its status: firmware and last seen
        ("/api/v1/devices", {}, f"{marker}-fw"),
        (f"/api/v1/devices/{live.device}", {}, str(HOT)),  # latest values
        (f"/api/v1/devices/{live.device}/telemetry", {"metric": "bearing_temp_c"}, str(HOT)),
        ("/api/v1/alerts", {"state": "all"}, live.alerts["threshold"]),
        ("/api/v1/alerts", {"state": "all"}, live.alerts["prediction"]),
        ("/api/v1/alerts", {"state": "all"}, live.alerts["anomaly"]),
        (f"/api/v1/devices/{live.compressor}", {}, live.compressor),
        (f"/api/v1/work_orders/{live.work_orders['anomaly']}", {}, live.compressor),
        (f"/api/v1/work_orders/{live.work_orders['threshold']}", {}, marker),
        (f"/api/v1/work_orders/{live.work_orders['prediction']}", {}, live.pump),
        ("/console/api/positions", {}, live.phone),
        ("/console/api/positions", {}, lon),
        ("/console/api/track", {"device_id": live.phone, **period}, lon),
        (f"/api/v1/geo/subjects/{live.phone}/track", period, lon),
        (f"/api/v1/geo/subjects/{live.phone}/events", period, '"enter"'),
        ("/api/v1/geo/visits", period, f'"rep_id":{target.people.users["rep2"]}'),
        ("/console/api/visits", {}, live.phone),
        ("/console/api/search", {"q": marker, "types": "devices"}, live.pump),
        *(
            (f"/api/v1/ledger/events/{source_id}/proof", {"source": source}, handle)
            for (source, source_id), handle in zip(
                live.receipts.items(), live.receipt_hashes, strict=True
            )
        ),
        (f"/api/v1/ledger/events/{marker}-ev1/proof", {}, f"{marker} inspected"),
        (f"/api/v1/work_orders/{live.receipts[WORK_ORDER_DONE]}/audit", {}, "/proof"),
    ]


def test_hostile_requests_get_json_4xx_and_no_other_territory(target: Target) -> None:
    doc = requests.get(target.url + "/api/v1/openapi.json", timeout=30).json()
    # the leak check can see a leak: territory 2's records carry the marker for those who
    # may see them
    seen = requests.get(
        target.url + "/api/v1/accounts", headers=target.people.headers("admin"), timeout=30
    )
    assert target.marker in seen.text
    # and so do the other kinds of territory 2's data, for rep2 who made them
    rep2 = target.people.headers("rep2")
    for path in (
        "/api/v1/work_orders/{}",
        "/api/v1/assets/{}",
        "/api/v1/devices/{}",
        "/api/v1/geo/fences/{}",
        "/api/v1/engage/conversations/{}",
        "/api/v1/reports/{}",
        "/api/v1/dashboards/{}",
        "/api/v1/automation/workflows/{}",
        "/api/v1/phone/reports/{}",
        "/api/v1/imports/{}",
    ):
        url = target.url + path.format(_first(target.ids[path.removesuffix("/{}")]))
        assert target.marker in requests.get(url, headers=rep2, timeout=30).text, path
    # and territory 2's live data, each with the handle the leak check looks for
    for path, params, handle in _live_reads(target):
        got = requests.get(target.url + path, params=params, headers=rep2, timeout=30)
        assert got.status_code == 200 and handle in got.text, (path, handle, got.text[:300])
    rng = random.Random(SEED)
    planned = list(
        cases(doc, target.ids, rng, PER_OPERATION, EXCLUDED, probe_query=target.live.probe_query)
    )
    assert len(planned) > 300
    all_cases = [c for _, cs in planned for c in cs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = [p for p in pool.map(lambda c: _send(target, c), all_cases) if p]
    # the app still answers after all of it
    assert requests.get(target.url + "/health", timeout=30).status_code == 200
    assert not problems, f"{len(problems)} of {len(all_cases)} cases:\n" + "\n".join(problems[:80])


# --------------------------------------------------------------------------- other channels


def _phone_of(target: Target, who: str) -> dict[str, Any]:
    """A phone of `who`, registered as the phone app does: its broker connection."""
    r = target.people.api(target.url, who).post("/phone/devices", {"label": f"{who} phone"})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _fix(lon: float, lat: float) -> dict[str, Any]:
    return {"v": 1, "seq": now_ms(), "fixes": [[now_ms() - 500, lon, lat, 5.0, 0.0, None]]}


def test_the_live_socket_shows_territory_2_to_rep2_and_not_to_territory_1(target: Target) -> None:
    """The console's live feed (positions, device status, geofence events, threshold and
    anomaly alerts over one WebSocket): rep2 gets territory 2's frames; rep1 and territory 1's manager, connected
    at the same time, get none of them, only rep1's own phone (which is also what tells
    that every earlier frame has reached them)."""
    live, world = target.live, target.world
    mine = _phone_of(target, "rep1")
    base = f"fm/v1/{world.enrolment['tenant']}/dev/{live.device}/telemetry"

    def report_territory_2() -> None:
        with device_probe(world.enrolment) as dev:
            for value in (20.0, HOT):  # clears the alert, then raises it again
                sample = {"v": 1, "seq": live.device_seq.next(), "samples": [[now_ms(), "bearing_temp_c", value]]}  # fmt: skip
                assert dev.publish(base, sample) == 0
        with phone_probe(target.settings, world.phone) as phone:
            assert phone.publish(world.phone["mqtt"]["gps_topic"], _fix(*INSIDE)) == 0
        assert live.compressor_report is not None
        live.compressor_report()  # clears the anomaly alert and raises it again

    def report_rep1() -> None:
        with phone_probe(target.settings, mine) as phone:
            assert phone.publish(mine["mqtt"]["gps_topic"], _fix(2.35, 48.85)) == 0

    async def run() -> dict[str, list[str]]:
        frames: dict[str, list[str]] = {"rep2": [], "rep1": [], "manager": []}
        async with aiohttp.ClientSession() as session:
            sockets = {
                who: await session.ws_connect(
                    target.url.replace("http", "ws") + "/console/live",
                    headers=target.people.headers(who),
                )
                for who in frames
            }

            async def read(who: str) -> None:
                async for msg in sockets[who]:
                    frames[who].append(str(msg.data))

            readers = [asyncio.create_task(read(who)) for who in frames]

            async def saw(who: str, *texts: str) -> bool:
                return all(any(t in f for f in frames[who]) for t in texts)

            try:
                await eventually_async(lambda: saw("rep1", '"hello"'))
                await eventually_async(lambda: saw("manager", '"hello"'))
                await eventually_async(lambda: saw("rep2", '"hello"'))
                await asyncio.to_thread(report_territory_2)
                await eventually_async(
                    lambda: saw("rep2", '"k":"alert"', '"k":"pos"', live.device, live.phone),
                    what="rep2's frames of territory 2",
                )
                await eventually_async(
                    lambda: saw("rep2", live.compressor, live.alerts["anomaly"]),
                    what="rep2's frame of territory 2's anomaly alert",
                )
                await asyncio.to_thread(report_rep1)
                for who in ("rep1", "manager"):
                    await eventually_async(
                        partial(saw, who, '"k":"pos"', mine["device_id"]),
                        what=f"{who}'s frame of rep1's phone",
                    )
            finally:
                for ws in sockets.values():
                    await ws.close()
                await asyncio.gather(*readers, return_exceptions=True)
        return frames

    frames = asyncio.run(run())
    for who in ("rep1", "manager"):
        for frame in frames[who]:
            for marker in target.markers:
                assert marker not in frame, (who, marker, frame[:300])


def test_a_phones_broker_account_reads_and_writes_only_its_own_topics(target: Target) -> None:
    """rep1's phone, with the broker account the API gave it, over the WebSocket listener
    the phone app uses: every subscription to rep2's phone, to territory 2's equipment or
    to a wildcard is refused (SUBACK 0x87), nothing of theirs is delivered to it while
    they report, and a fix it publishes into rep2's phone's topic is never stored."""
    live, world = target.live, target.world
    tenant = world.enrolment["tenant"]
    mine = _phone_of(target, "rep1")
    own = f"fm/v1/{tenant}/dev/{mine['device_id']}"
    rep2_phone = f"fm/v1/{tenant}/dev/{live.phone}"
    equipment = f"fm/v1/{tenant}/dev/{live.device}"
    refused = [
        f"{rep2_phone}/gps",
        f"{rep2_phone}/receipt",
        f"{rep2_phone}/cmd/+",
        f"{rep2_phone}/status",
        f"{equipment}/telemetry",
        f"{equipment}/receipt",
        f"{equipment}/cmd/+",
        f"fm/v1/{tenant}/#",
        f"fm/v1/{tenant}/dev/+/gps",
        "fm/v1/+/dev/+/receipt",
        "#",
        f"$share/hostile/fm/v1/{tenant}/dev/+/gps",
        f"{own}/gps",  # what it may write, it may not read
    ]
    spoof = (13.555555, 52.555555)
    with phone_probe(target.settings, mine) as phone:
        assert phone.subscribe(refused) == [NOT_AUTHORIZED] * len(refused)
        assert phone.subscribe([f"{own}/receipt", f"{own}/cmd/+"]) == [1, 1]
        # territory 2 reports (the gateway answers each with a receipt on its own topic)
        with phone_probe(target.settings, world.phone) as theirs:
            assert theirs.publish(world.phone["mqtt"]["gps_topic"], _fix(*INSIDE)) == 0
        with device_probe(world.enrolment) as dev:
            sample = {"v": 1, "seq": live.device_seq.next(), "samples": [[now_ms(), "bearing_temp_c", 30.0]]}  # fmt: skip
            assert dev.publish(f"{equipment}/telemetry", sample) == 0
        # then rep1's phone: its own receipt is the last thing it can be sent
        assert phone.publish(mine["mqtt"]["gps_topic"], _fix(2.35, 48.85)) == 0
        eventually(lambda: any(t == f"{own}/receipt" for t, _ in phone.received()))
        assert {t for t, _ in phone.received()} == {f"{own}/receipt"}
    with phone_probe(target.settings, mine) as phone:
        code = phone.publish(f"{rep2_phone}/gps", _fix(*spoof))
        assert code != 0  # refused (0x87), or the broker dropped the connection
    with phone_probe(target.settings, mine) as phone:  # what the gateway stored, it receipts
        assert phone.subscribe([f"{own}/receipt"]) == [1]
        assert phone.publish(mine["mqtt"]["gps_topic"], _fix(2.36, 48.86)) == 0
        eventually(lambda: phone.received() != [])
    period = {"from": live.period[0], "to": live.period[1]}
    track = target.people.api(target.url, "rep2").get(f"/geo/subjects/{live.phone}/track", params=period)  # fmt: skip
    assert track.status_code == 200 and f"{INSIDE[0]:.6f}" in track.text
    assert f"{spoof[0]:.6f}" not in track.text


def test_the_assistant_tells_territory_1_nothing_of_territory_2(target: Target) -> None:
    """Questions on alerts, devices, where rep2 is and territory 2's records, asked by rep1
    and territory 1's manager: no answer names territory 2's data (a name the question
    itself gave may be echoed: the longer record texts, and every other handle, may not
    appear), and acknowledging territory 2's alert by its device's name changes nothing."""
    live, marker = target.live, target.marker
    records = (f"{marker} account", f"{marker} street", f"Lead{marker}", f"{marker} deal")

    def ask(who: str, text: str, confirm: bool = False) -> str:
        r = target.people.api(target.url, who).post(
            "/assistant/messages", {"text": text, "confirm": confirm}
        )
        assert r.status_code == 200, r.text
        return str(r.text)

    # rep2, who may, is told of territory 2's records: the check below can see them
    assert f"{marker} account" in ask("rep2", f"find {marker}")
    questions = [
        "show alerts",
        "show me the open alerts",
        "how many alerts are there",
        "how many open work orders",
        "where is Rep Two",
        "where is rep2",
        "what is my next stop",
        f"find {marker}",
        f"search devices {live.device}",
        f"find the account {marker} account",
        f"acknowledge the alert on {live.device}",
        "acknowledge the alert",
    ]
    for who in ("rep1", "manager"):
        for text in questions:
            for confirm in (False, True):
                answer = ask(who, text, confirm)
                for handle in (*records, *target.markers):
                    if handle not in text:
                        assert handle not in answer, (who, text, handle, answer[:400])
    alerts = target.people.api(target.url, "rep2").get(
        "/alerts", params={"device_id": live.device, "state": "all"}
    )
    by = {a["acknowledged_by"] for a in alerts.json()["items"]}
    assert not by & {f"rep1-{target.people.suffix}@x.test", f"mgr-{target.people.suffix}@x.test"}


def test_dead_letters_show_a_manager_only_the_devices_they_may_see(target: Target) -> None:
    """A message the gateway refuses is kept with the device it came from. Territory 2's
    device's refused message is listed to the admin and not to territory 1's manager;
    rep1's phone's (territory 1) is listed to that manager, so the filter is not 'none'."""
    live, world = target.live, target.world
    tenant = world.enrolment["tenant"]
    mine = _phone_of(target, "rep1")
    bad = {"v": 1, "seq": live.device_seq.next(), "samples": "not a list"}
    with device_probe(world.enrolment) as dev:
        assert dev.publish(f"fm/v1/{tenant}/dev/{live.device}/telemetry", bad) == 0
    with phone_probe(target.settings, mine) as phone:
        assert phone.publish(mine["mqtt"]["gps_topic"], {"v": 1, "fixes": "nowhere"}) == 0

    def devices(who: str) -> set[str]:
        r = target.people.api(target.url, who).get("/dead-letters", params={"limit": 500})
        assert r.status_code == 200, r.text
        return {str(i["device_id"]) for i in r.json()["items"]}

    eventually(
        lambda: {live.device, mine["device_id"]} <= devices("admin"),
        what="both refused messages kept",
    )
    seen = devices("manager")
    assert mine["device_id"] in seen
    assert live.device not in seen


async def _other_territory_manager(target: Target) -> tuple[str, str]:
    """A new territory (not territory 2) and its new manager: the territory's name and the
    manager's token."""
    name = f"north-{uuid.uuid4().hex[:8]}"
    async with await AsyncConnection.connect(target.settings.dsn) as conn:
        cur = await conn.execute("INSERT INTO territories (name) VALUES (%s) RETURNING id", (name,))
        row = await cur.fetchone()
        assert row is not None
        uid = await auth.create_user(
            conn,
            email=f"mgr-{uuid.uuid4().hex[:8]}@x.test",
            name="North Manager",
            role="manager",
            territory_id=int(row[0]),
        )
        _, token = await auth.issue_token(conn, uid, "test")
        await conn.commit()
    return name, token


def test_a_customers_link_and_a_device_of_territory_1_get_nothing_of_territory_2(
    target: Target,
) -> None:
    """The callers with no user behind them. A customer holding territory 1's AR share link
    (and one for territory 1's device): its page and scene files carry none of territory
    2's handles, and the link's token is no credential anywhere else (the API, another
    scene). Territory 1's device, with the broker account its enrolment gave it: every
    subscription to territory 2's equipment (telemetry, receipts, commands, the anomaly
    compressor) is refused and nothing of theirs reaches it while they report, and its
    broker password is no API credential."""
    live, world, people = target.live, target.world, target.people
    # territory 1 and its manager of this test's own (the hostile requests before it may
    # have deleted or changed the shared ones)
    territory, token = asyncio.run(_other_territory_manager(target))
    manager = Api(target.url, token)
    account = manager.post("/accounts", {"name": "north customer"})
    assert account.status_code == 201, account.text
    token = manager.post("/enrolment-tokens", {"account_id": account.json()["id"]}).json()
    key = DeviceKey.generate(f"north-{uuid.uuid4().hex[:6]}")
    enrolled = requests.post(
        f"{target.url}/api/v1/device-enrolments",
        json=enrolment_request(key, token["token"], equipment_model=ANOMALY_MODEL),
        timeout=30,
    )
    assert enrolled.status_code == 201, enrolled.text
    mine = enrolled.json()
    links = [
        manager.post("/ar/shares", {"territory": territory}),
        manager.post("/ar/shares", {"device_id": key.device_id}),
    ]
    for link in links:
        assert link.status_code == 201, link.text
    # the scenes show what they should: the territory's account, the device
    scene = requests.get(links[0].json()["url"] + "/scene.json", timeout=60)
    assert scene.status_code == 200 and "north customer" in scene.text, scene.text[:300]
    for link in links:
        url = link.json()["url"]
        for suffix in ("", "/scene.json", "/scene.glb"):
            got = requests.get(url + suffix, timeout=60)
            assert got.status_code == 200, (url + suffix, got.text[:300])
            for marker in target.markers:
                assert marker.encode() not in got.content, (suffix, marker)
        share_token = link.json()["token"]
        for path in (
            f"/api/v1/ledger/events/{live.receipts['device_event']}/proof",
            "/api/v1/alerts",
            f"/ar/assets/{live.compressor}/scene.json",
            f"/ar/territories/south-{people.suffix}/scene.json",
        ):
            got = requests.get(
                target.url + path, headers={"Authorization": f"Bearer {share_token}"}, timeout=30
            )
            assert got.status_code == 401, (path, got.status_code, got.text[:300])
            assert got.json()["error"]["code"] == "unauthorized"

    tenant = world.enrolment["tenant"]
    refused = [
        f"fm/v1/{tenant}/dev/{theirs}/{kind}"
        for theirs in (live.device, live.compressor, live.pump)
        for kind in ("telemetry", "event", "receipt", "cmd/+", "status")
    ] + [f"fm/v1/{tenant}/dev/+/receipt", f"fm/v1/{tenant}/#"]
    with device_probe(mine) as dev:
        assert dev.subscribe(refused) == [NOT_AUTHORIZED] * len(refused)
        assert dev.subscribe([f"fm/v1/{tenant}/dev/{key.device_id}/receipt"]) == [1]
        assert live.compressor_report is not None
        live.compressor_report()  # territory 2 reports (and is receipted) meanwhile
        sample = {"v": 1, "seq": int(mine.get("seq_start", 1)), "samples": [[now_ms(), "temperature_c", 20.0]]}  # fmt: skip
        assert dev.publish(f"fm/v1/{tenant}/dev/{key.device_id}/telemetry", sample) == 0
        eventually(lambda: dev.received() != [], what="the device's own receipt")
        assert {t for t, _ in dev.received()} == {f"fm/v1/{tenant}/dev/{key.device_id}/receipt"}
    for path in ("/api/v1/alerts", f"/api/v1/devices/{key.device_id}"):
        got = requests.get(
            target.url + path,
            headers={"Authorization": f"Bearer {mine['mqtt_password']}"},
            timeout=30,
        )
        assert got.status_code == 401, (path, got.status_code)
        got = requests.get(
            target.url + path, auth=(mine["mqtt_username"], mine["mqtt_password"]), timeout=30
        )
        assert got.status_code == 401, (path, got.status_code)
    assert requests.get(target.url + "/health", timeout=30).status_code == 200
