"""Who sees what through /api/v1/geo, and what bad input answers (always 4xx, field named).

Two territories side by side, a rep with a phone in each, a manager over the first rep:
a rep never reads the other rep's track, fences or visits (404 or filtered out), a viewer
never writes (403), and malformed GeoJSON, coordinates, times and paths are refused.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fieldmesh.app import build_app
from kernel.settings import Settings
from telemetry.schema import partition_ddl, week_start
from tests.geo import test_api
from tests.geo.test_api import _user

pytestmark = pytest.mark.integration

# 200 km east of test_api's corner of the map, so that neither test's territories hold the
# other's accounts.
AWAY_M = 200_000


def square(cx_m: float, cy_m: float, half_m: float) -> dict[str, Any]:
    return test_api.square(cx_m + AWAY_M, cy_m, half_m)


def here(east_m: float, north_m: float = 0.0) -> tuple[float, float]:
    return test_api.here(east_m + AWAY_M, north_m)


def test_geo_records_are_scoped_and_bad_input_is_refused(
    test_settings: Settings, db_dsn: str
) -> None:
    asyncio.run(_scenario(test_settings, db_dsn))


def _one(conn: psycopg.Connection, q: str, *args: Any) -> int:
    row = conn.execute(q, args).fetchone()
    assert row is not None
    return int(row[0])


async def _scenario(settings: Settings, dsn: str) -> None:
    tag = uuid.uuid4().hex[:6]
    _, admin = await _user(dsn, "admin")
    _, viewer = await _user(dsn, "viewer")
    client = TestClient(TestServer(build_app(settings, ("geo.routes",))))
    await client.start_server()
    try:
        # Two territories, 20 km apart (A around 0 m, B around 20 km east).
        fc = {
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "properties": {"name": n}, "geometry": square(x, 0, 1000)}
                for n, x in ((f"SA{tag}", 0), (f"SB{tag}", 20_000))
            ],
        }
        r = await client.post("/api/v1/geo/territories", json=fc, headers=admin)
        assert r.status == 201, await r.text()
        ta, tb = (t["id"] for t in (await r.json())["territories"])
        manager_id, manager = await _user(dsn, "manager", territory_id=ta)
        rep_a_id, rep_a = await _user(dsn, "rep", territory_id=ta, manager_id=manager_id)
        rep_b_id, rep_b = await _user(dsn, "rep", territory_id=tb)
        phone_a, phone_b = f"pa-{tag}", f"pb-{tag}"
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        with psycopg.connect(dsn, autocommit=True) as conn:
            acc = {}
            for key, tid, east in (("a", ta, 0), ("b", tb, 20_000)):
                lon, lat = here(east)
                acc[key] = _one(
                    conn,
                    "INSERT INTO accounts (name, territory_id, location) VALUES"
                    " (%s, %s, ST_MakePoint(%s, %s)::geography) RETURNING id",
                    f"{key} {tag}", tid, lon, lat,
                )  # fmt: skip
            for phone, uid in ((phone_a, rep_a_id), (phone_b, rep_b_id)):
                conn.execute("INSERT INTO device (device_id, tenant) VALUES (%s, 't')", (phone,))
                conn.execute("INSERT INTO geo_device_rep VALUES (%s, %s)", (phone, uid))
            conn.execute(partition_ddl("gps_fix", week_start(t0)))
            for phone, east in ((phone_a, 0), (phone_b, 20_000)):
                for k in range(3):
                    conn.execute(
                        "INSERT INTO gps_fix (time, device_id, seq, lon, lat, accuracy_m)"
                        " VALUES (%s, %s, %s, %s, %s, 5)",
                        (t0 + timedelta(seconds=10 * k), phone, k, *here(east + 10 * k)),
                    )
            visit = {}
            for key, phone, uid in (("a", phone_a, rep_a_id), ("b", phone_b, rep_b_id)):
                visit[key] = _one(
                    conn,
                    "INSERT INTO visits (subject_id, fence_id, account_id, rep_id, arrived_at,"
                    " checked_in_at) VALUES (%s, 0, %s, %s, %s, %s) RETURNING id",
                    phone, acc[key], uid, t0, t0,
                )  # fmt: skip

        async def fence(headers: dict[str, str], **body: Any) -> tuple[int, dict[str, Any]]:
            r = await client.post("/api/v1/geo/fences", json=body, headers=headers)
            return r.status, await r.json()

        status, fa = await fence(admin, geometry=square(0, 0, 100), account_id=acc["a"])
        assert status == 201
        status, fb = await fence(admin, geometry=square(20_000, 0, 100), account_id=acc["b"])
        assert status == 201
        status, free_b = await fence(admin, name="yard B", geometry=square(20_500, 0, 50))
        assert status == 201

        # --- GPS history: a rep sees their own phone, never another rep's (404)
        period = {"from": (t0 - timedelta(minutes=1)).isoformat()}
        for what in ("track", "summary", "events"):
            url_b = f"/api/v1/geo/subjects/{phone_b}/{what}"
            assert (await client.get(url_b, params=period, headers=rep_a)).status == 404
            assert (await client.get(url_b, params=period, headers=manager)).status == 404
            assert (await client.get(url_b, params=period, headers=rep_b)).status == 200
        r = await client.get(f"/api/v1/geo/subjects/{phone_a}/track", params=period, headers=rep_a)
        assert r.status == 200 and (await r.json())["properties"]["fixes"] == 3
        r = await client.get(
            f"/api/v1/geo/subjects/{phone_a}/track", params=period, headers=manager
        )
        assert r.status == 200  # the manager of the rep who carries it

        # --- fences: another territory's are 404 one by one and absent from lists
        for fid in (fb["id"], free_b["id"]):
            assert (await client.get(f"/api/v1/geo/fences/{fid}", headers=rep_a)).status == 404
            assert (await client.get(f"/api/v1/geo/fences/{fid}", headers=rep_b)).status == 200
        assert (await client.get(f"/api/v1/geo/fences/{fa['id']}", headers=rep_a)).status == 200
        r = await client.get("/api/v1/geo/fences", headers=rep_a)
        ids = {f["id"] for f in (await r.json())["fences"]}
        assert fa["id"] in ids and not {fb["id"], free_b["id"]} & ids

        # --- visits: filtered to the caller's accounts and reps
        r = await client.get("/api/v1/geo/visits", params=period, headers=rep_a)
        ids = {v["id"] for v in (await r.json())["visits"]}
        assert visit["a"] in ids and visit["b"] not in ids
        r = await client.get(
            "/api/v1/geo/visits", params={**period, "subject_id": phone_b}, headers=manager
        )
        assert (await r.json())["visits"] == []

        # --- territories: the caller's own (a rep) or their team's (a manager)
        for headers in (rep_a, manager):
            r = await client.get("/api/v1/geo/territories", headers=headers)
            assert [f["id"] for f in (await r.json())["features"]] == [ta]
            r = await client.get("/api/v1/geo/territories/balance", headers=headers)
            assert [t["territory_id"] for t in (await r.json())["territories"]] == [ta]
            r = await client.get("/api/v1/geo/coverage", headers=headers)
            assert [t["territory_id"] for t in (await r.json())["territories"]] == [ta]

        # --- writes: viewers and reps are refused (403), managers only on what they see
        assert (await fence(viewer, geometry=square(0, 0, 10)))[0] == 403
        assert (await fence(rep_a, geometry=square(0, 0, 10)))[0] == 403
        r = await client.post("/api/v1/geo/territories", json=fc, headers=viewer)
        assert r.status == 403
        r = await client.post("/api/v1/geo/territories/assign", headers=manager)
        assert r.status == 403
        r = await client.post("/api/v1/geo/fences/sync-accounts", json={}, headers=viewer)
        assert r.status == 403
        assert (await client.delete(f"/api/v1/geo/fences/{fa['id']}", headers=viewer)).status == 403
        assert (await client.delete(f"/api/v1/geo/fences/{fa['id']}", headers=rep_a)).status == 403
        assert (
            await client.delete(f"/api/v1/geo/fences/{fb['id']}", headers=manager)
        ).status == 404
        status, err = await fence(manager, geometry=square(0, 0, 10), account_id=acc["b"])
        assert status == 422 and err["error"]["field"] == "account_id"
        status, err = await fence(manager, geometry=square(0, 0, 10), rep_id=rep_b_id)
        assert status == 422 and err["error"]["field"] == "rep_id"
        status, err = await fence(manager, geometry=square(0, 0, 10), device_id=phone_b)
        assert status == 422 and err["error"]["field"] == "device_id"
        status, _ = await fence(manager, name="in B", geometry=square(20_000, 500, 50))
        assert status == 403  # a free fence outside the manager's territories
        r = await client.get("/api/v1/geo/fences", headers=admin)
        assert "in B" not in {f["name"] for f in (await r.json())["fences"]}  # rolled back
        status, mine = await fence(manager, name="in A", geometry=square(0, 500, 50))
        assert status == 201
        assert (
            await client.delete(f"/api/v1/geo/fences/{mine['id']}", headers=manager)
        ).status == 204

        # --- a boolean is a boolean: "false" in a body is refused, in a query it is false
        status, err = await fence(admin, geometry=square(0, 0, 10), repair="false")
        assert status == 422 and err["error"]["field"] == "repair"
        r = await client.post("/api/v1/geo/territories/assign?dry_run=false", headers=admin)
        assert r.status == 200 and (await r.json())["dry_run"] is False
        r = await client.post("/api/v1/geo/territories/assign?dry_run=maybe", headers=admin)
        assert r.status == 422 and (await r.json())["error"]["field"] == "dry_run"

        # --- bad input: 4xx naming the field, never a 5xx
        pt = {"type": "Point", "coordinates": list(here(0))}
        bad_fences: list[tuple[dict[str, Any], int, str | None]] = [
            ({"geometry": {"type": "Point", "coordinates": [0, 91]}, "radius_m": 5}, 422, "geometry"),
            ({"geometry": {"type": "Point", "coordinates": [1e300, 0]}, "radius_m": 5}, 422, "geometry"),
            ({"geometry": {"type": "Point", "coordinates": ["a", 0]}, "radius_m": 5}, 422, "geometry.coordinates.0"),
            ({"geometry": {"type": "Point", "coordinates": [0]}, "radius_m": 5}, 422, "geometry.coordinates"),
            ({"geometry": {"type": "Circle", "coordinates": [0, 0]}}, 422, "geometry.type"),
            ({"geometry": pt, "radius_m": 1e9}, 422, "radius_m"),
            ({"geometry": pt, "radius_m": "50"}, 422, "radius_m"),
            ({"geometry": pt, "radius_m": 5, "account_id": 2**70}, 422, "account_id"),
            ({"geometry": pt, "radius_m": 5, "account_id": 999_999_999}, 422, "account_id"),
            ({"geometry": {"type": "Point", "coordinates": [0, 0]}, "radius_m": 1e400}, 400, None),
            ({"geometry": pt, "radius_m": 5, "color": "red"}, 422, "color"),  # an unknown field
            ({"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0], [0, 0]]]}}, 422, "geometry"),
        ]  # fmt: skip
        for body, status_want, field in bad_fences:
            status, err = await fence(admin, **body)
            assert (status, err["error"]["field"]) == (status_want, field), (body, err)
        raw_bodies: list[tuple[bytes, int, str | None]] = [
            (b'{"geometry": {"type": "Point", "coordinates": [NaN, 0]}}', 400, None),
            (b'{"geometry": {"type": "Point", "coordinates": [1e400, 0]}}', 422, "geometry.coordinates.0"),
            (b'{"geometry": {"type": "Point", "coordinates": [0, 0]}, "name": "a\\u0000b"}', 400, None),
            (b'{"geometry": {"type": "Point", "coordinates": [0, 0]}, "name": "\\ud800"}', 400, None),
            (b"[" * 100 + b"]" * 100, 400, None),
            (b'{"name": "' + b"a" * (4 * 1024 * 1024) + b'"}', 413, None),  # a fence is one shape
        ]  # fmt: skip
        for raw, status_want, field in raw_bodies:
            r = await client.post(
                "/api/v1/geo/fences",
                data=raw,
                headers={**admin, "Content-Type": "application/json"},
            )
            err = (await r.json())["error"]
            assert (r.status, err["field"]) == (status_want, field), (raw[:60], err)
        r = await client.post(
            "/api/v1/geo/territories",
            json={"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "x"}, "geometry": pt}]},
            headers=admin,
        )  # fmt: skip
        assert r.status == 422 and (await r.json())["error"]["field"] == "features.0.geometry.type"
        r = await client.post(
            "/api/v1/geo/territories",
            json={"type": "Feature", "properties": {"name": "  "}, "geometry": square(0, 0, 5)},
            headers=admin,
        )
        assert r.status == 422 and "name" in (await r.json())["error"]["field"]
        r = await client.post(
            "/api/v1/geo/validate", json={"type": "Polygon", "coordinates": "x"}, headers=rep_a
        )
        assert r.status == 422 and (await r.json())["error"]["field"] == "coordinates"
        r = await client.post("/api/v1/geo/validate", json=square(0, 0, 5), headers=rep_a)
        assert r.status == 200 and (await r.json())["valid"] is True
        for params, field in (
            ({"to": "0001-01-01T00:00:00+00:00"}, "from"),
            ({"from": "0001-01-01T00:00:00+01:00"}, "from"),
            ({"to": "9999-12-31T23:00:00-05:00"}, "to"),
            ({"from": "2026-01-01T00:00:00"}, "from"),  # a time without a zone
            ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ):
            r = await client.get("/api/v1/geo/visits", params=params, headers=admin)
            assert r.status == 422 and (await r.json())["error"]["field"] == field, params
        for url, want in (
            ("/api/v1/geo/fences/%00", 400),
            ("/api/v1/geo/fences/abc", 404),
            ("/api/v1/geo/fences/99999999999999999999999", 404),
            ("/api/v1/geo/fences/\u0661\u0662", 404),  # non-ASCII digits
            ("/api/v1/geo/subjects/a%00b/track", 400),
            ("/api/v1/geo/subjects/no-such-phone/track", 404),
        ):
            r = await client.get(url, headers=admin)
            assert r.status == want, (url, r.status, await r.text())
    finally:
        await client.close()


def test_altitudes_are_dropped_not_refused(test_settings: Settings, db_dsn: str) -> None:
    asyncio.run(_altitudes(test_settings))


async def _altitudes(settings: Settings) -> None:
    _, admin = await _user(settings.dsn, "admin")
    client = TestClient(TestServer(build_app(settings, ("geo.routes",))))
    await client.start_server()
    try:
        sq = square(50_000, 0, 100)
        sq3 = {**sq, "coordinates": [[[*p, 12.5] for p in ring] for ring in sq["coordinates"]]}
        tag = uuid.uuid4().hex[:6]
        feature = {"type": "Feature", "properties": {"name": f"Z{tag}"}, "geometry": sq3}
        r = await client.post("/api/v1/geo/territories", json=feature, headers=admin)
        assert r.status == 201, await r.text()
        r = await client.post("/api/v1/geo/fences", json={"geometry": sq3}, headers=admin)
        assert r.status == 201, await r.text()
        assert all(len(p) == 2 for p in (await r.json())["geometry"]["coordinates"][0])
        r = await client.post(
            "/api/v1/geo/fences",
            json={
                "geometry": {"type": "Point", "coordinates": [*here(50_000), 3.0]},
                "radius_m": 9,
            },
            headers=admin,
        )
        assert r.status == 201, await r.text()
        # valid on shapely's plane, refused by PostGIS on the sphere: still a 422
        wide = {
            "type": "Polygon",
            "coordinates": [[[-90, 0], [90, 0], [90, 10], [-90, 10], [-90, 0]]],
        }
        feature = {"type": "Feature", "properties": {"name": f"W{tag}"}, "geometry": wide}
        r = await client.post("/api/v1/geo/territories", json=feature, headers=admin)
        err = (await r.json())["error"]
        assert r.status == 422 and err["field"] == "features[0].geometry", err
        assert "Antipodal" in err["message"]
    finally:
        await client.close()
