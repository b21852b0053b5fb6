"""The console's map APIs and live socket answer within the caller's record scope, close on
revocation, and serve every page with security headers (the real app over HTTP)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import aiohttp
import psycopg
import pytest

from kernel.settings import Settings
from tests.ar_viewer.people import make_token, make_user

pytestmark = pytest.mark.integration

PLAN_DAY = date(2001, 2, 3)


@dataclass(frozen=True)
class World:
    """Two territories, each with an account, a device on an asset, a rep and the rep's phone."""

    territories: tuple[int, int]
    devices: tuple[str, str]
    phones: tuple[str, str]
    reps: tuple[int, int]
    accounts: tuple[int, int]
    plans: tuple[int, int]


def _seed(dsn: str) -> World:
    tag = uuid.uuid4().hex[:8]
    out: dict[str, list[Any]] = {k: [] for k in World.__dataclass_fields__}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for side, lon in (("a", 6.6), ("b", 7.4)):
            (tid,) = conn.execute(
                "INSERT INTO territories (name) VALUES (%s) RETURNING id", (f"T{side} {tag}",)
            ).fetchone()  # type: ignore[misc]
            rep = make_user(conn, "rep", tid)
            (acc,) = conn.execute(
                "INSERT INTO accounts (name, territory_id, location) VALUES (%s, %s,"
                " ST_GeogFromText(%s)) RETURNING id",
                (f"Account {side} {tag}", tid, f"POINT({lon} 46.5)"),
            ).fetchone()  # type: ignore[misc]
            device, phone = f"pump-{side}-{tag}", f"phone-{side}-{tag}"
            conn.execute(
                "INSERT INTO device (device_id, tenant, kind) VALUES (%s, 't', 'equipment'),"
                " (%s, 't', 'phone')",
                (device, phone),
            )
            conn.execute(
                "INSERT INTO assets (account_id, device_id, equipment_model) VALUES (%s, %s, 'P')",
                (acc, device),
            )
            conn.execute("INSERT INTO geo_device_rep VALUES (%s, %s)", (phone, rep))
            conn.execute(
                "INSERT INTO visits (subject_id, fence_id, account_id, rep_id, arrived_at,"
                " checked_in_at) VALUES (%s, 1, %s, %s, now(), now())",
                (phone, acc, rep),
            )
            # bare plan rows on a day of their own: the map's other tests draw today's plans
            (plan,) = conn.execute(
                "INSERT INTO routing_plans (territory_id, plan_date, status, request, problem,"
                " result) VALUES (%s, %s, 'ready', '{}', '{}', '{}') RETURNING id",
                (tid, PLAN_DAY),
            ).fetchone()  # type: ignore[misc]
            conn.execute(  # the plan routes the territory's rep (what makes it a rep's)
                "INSERT INTO routing_stops (plan_id, visit_key, rep_id, seq, account_id, eta,"
                " service_start, service_end, wait_s, slack_s, travel_s, distance_m)"
                " VALUES (%s, %s, %s, 1, %s, now(), now(), now(), 0, 0, 0, 0)",
                (plan, f"account:{acc}", rep, acc),
            )
            for key, value in (
                ("territories", tid),
                ("devices", device),
                ("phones", phone),
                ("reps", rep),
                ("accounts", acc),
                ("plans", plan),
            ):
                out[key].append(value)
    return World(**{k: tuple(v) for k, v in out.items()})


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            body = r.read()
            ctype = r.headers.get("Content-Type", "")
            return r.status, dict(r.headers), json.loads(body) if "json" in ctype else body
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"null")


def test_a_reps_console_apis_exclude_another_territorys_devices_plans_and_visits(
    console_url: str, test_settings: Settings
) -> None:
    w = _seed(test_settings.dsn)
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        _, rep_a = make_token(conn, w.reps[0])
        admin = make_user(conn, "admin", None)
        _, admin_token = make_token(conn, admin)
        # a newer plan of rep A's territory that routes nobody: the routing API answers 404
        # to the rep for it (routing.access.may_see_plan), so the map must not list it
        (unrouted,) = conn.execute(
            "INSERT INTO routing_plans (territory_id, plan_date, status, request, problem, result)"
            " SELECT territory_id, plan_date, 'ready', '{}', '{}', '{}' FROM routing_plans"
            " WHERE id = %s"
            " RETURNING id",
            (w.plans[0],),
        ).fetchone()  # type: ignore[misc]

    status, _, body = _get(f"{console_url}/console/api/positions", rep_a)
    assert status == 200
    seen = {d["device_id"] for d in body["devices"]}
    assert w.devices[0] in seen and w.phones[0] in seen
    assert w.devices[1] not in seen and w.phones[1] not in seen
    mine = next(d for d in body["devices"] if d["device_id"] == w.devices[0])
    assert mine["account_id"] == w.accounts[0] and mine["lon"] == pytest.approx(6.6)

    status, _, body = _get(f"{console_url}/console/api/plans?date={PLAN_DAY}", rep_a)
    assert status == 200 and body["date"] == PLAN_DAY.isoformat()
    plan_ids = {p["id"] for p in body["plans"]}
    assert w.plans[0] in plan_ids and w.plans[1] not in plan_ids
    assert unrouted not in plan_ids

    status, _, body = _get(f"{console_url}/console/api/visits", rep_a)
    assert status == 200
    assert {v["account_id"] for v in body["visits"]} & set(w.accounts) == {w.accounts[0]}

    # an admin sees both territories
    _, _, body = _get(f"{console_url}/console/api/positions", admin_token)
    assert {w.devices[0], w.devices[1]} <= {d["device_id"] for d in body["devices"]}
    # one device (a device page), the equipment at one account (an account page): still
    # only what the caller may see
    for who, device, listed in ((rep_a, w.devices[0], True), (rep_a, w.devices[1], False)):
        _, _, body = _get(f"{console_url}/console/api/positions?device_id={device}", who)
        assert [d["device_id"] for d in body["devices"]] == ([device] if listed else [])
    _, _, body = _get(f"{console_url}/console/api/positions?account_id={w.accounts[0]}", rep_a)
    assert [d["device_id"] for d in body["devices"]] == [w.devices[0]]
    _, _, body = _get(f"{console_url}/console/api/positions?account_id={w.accounts[1]}", rep_a)
    assert body["devices"] == []
    assert 400 <= _get(f"{console_url}/console/api/positions?device_id=a%00b", rep_a)[0] < 500

    # no credentials: 401; a bad date: 422 naming the field
    assert _get(f"{console_url}/console/api/positions")[0] == 401
    status, _, body = _get(f"{console_url}/console/api/plans?date=2026-13-45", rep_a)
    assert status == 422 and body["error"]["field"] == "date"


async def _live(url: str, token: str, dsn: str, devices: tuple[str, str], cut: str) -> Any:
    """Connect as a rep, check what the feed forwards, then `cut` the credential in the
    database (as another worker would) and wait for the server to close the socket."""
    ws_url = url.replace("http://", "ws://") + "/console/live"
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
        await ws.send_str(json.dumps({"token": token}))
        hello = json.loads((await ws.receive(timeout=30)).data)
        assert hello["k"] == "hello" and hello["role"] == "rep"
        fixes = [[d, 6.6, 46.5, 1, None] for d in devices]
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(
                "SELECT pg_notify('fm_live', %s)", (json.dumps({"k": "pos", "rt": 1, "d": fixes}),)
            )
            await conn.execute(
                "SELECT pg_notify('fm_live', %s)", (json.dumps({"k": "dead", "n": 3}),)
            )
            pos = json.loads((await ws.receive(timeout=30)).data)
            assert pos["k"] == "pos" and [r[0] for r in pos["d"]] == [devices[0]]
            await conn.execute(cut)
        frames = []
        while True:  # the server closes on its own: the socket must not outlive the token
            msg = await ws.receive(timeout=60)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
            frames.append(json.loads(msg.data))
        return ws.close_code, frames


@pytest.mark.parametrize("cut", ["revoke the token", "deactivate the user"])
def test_the_live_socket_forwards_only_the_reps_devices_and_closes_when_the_credential_goes(
    console_url: str, test_settings: Settings, cut: str
) -> None:
    w = _seed(test_settings.dsn)
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        token_id, token = make_token(conn, w.reps[0])
    sql = (
        f"UPDATE api_tokens SET revoked_at = now() WHERE id = {token_id}"
        if cut.startswith("revoke")
        else f"UPDATE users SET active = false WHERE id = {w.reps[0]}"
    )
    code, frames = asyncio.run(
        _live(console_url, token, test_settings.dsn, (w.devices[0], w.devices[1]), sql)
    )
    assert code == 4401
    assert frames[-1]["k"] == "error" and "revoked" in frames[-1]["message"]
    # the dead-letter count is for operators, never a rep
    assert all(f["k"] != "dead" for f in frames)


def test_every_console_page_and_file_carries_security_headers(console_url: str) -> None:
    for path in ("/console/", "/console/rep/", "/console/app.js"):
        status, headers, _ = _get(f"{console_url}{path}")
        assert status == 200, path
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
        assert "object-src 'none'" in csp and "'unsafe-eval'" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
        assert "geolocation=(self)" in headers["Permissions-Policy"]
        assert "camera=()" in headers["Permissions-Policy"]
    assert _get(f"{console_url}/console/..%2F..%2Fpyproject.toml")[0] == 404


def test_every_console_and_ar_route_is_declared_and_documented(test_settings: Settings) -> None:
    from fieldmesh.app import build_app
    from kernel import openapi
    from kernel.http import undeclared_routes

    app = build_app(test_settings, ("console.routes", "ar_viewer.routes"))
    assert undeclared_routes(app) == []
    paths = openapi.document(app)["paths"]
    for path in ("/console/", "/console/live", "/console/api/positions", "/ar/s/{token}",
                 "/ar/territories/{name}/scene.{fmt}", "/api/v1/ar/shares/{id}"):  # fmt: skip
        assert path in paths, path
    assert paths["/console/api/positions"]["get"]["x-access"]["roles"] != "public"
    assert paths["/api/v1/ar/shares"]["post"]["x-access"]["roles"] == ["admin", "manager"]
