"""The /api/v1/geo endpoints against the real PostGIS, through the real app."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fieldmesh.app import build_app
from geo.geodesy import haversine_m
from identity.auth import create_user, issue_token
from kernel.settings import Settings
from telemetry.schema import partition_ddl, week_start
from tests.geo.catalogue import offset, square_m

pytestmark = pytest.mark.integration

# Far from every other test's data: a private corner of the map.
BASE = (-150.0 + uuid.uuid4().int % 50, -40.0)


def square(cx_m: float, cy_m: float, half_m: float) -> dict[str, Any]:
    geo = square_m(cx_m, cy_m, half_m)
    lon0, lat0 = offset(0, 0)
    geo["coordinates"] = [
        [[x - lon0 + BASE[0], y - lat0 + BASE[1]] for x, y in ring] for ring in geo["coordinates"]
    ]
    return geo


def here(east_m: float, north_m: float = 0.0) -> tuple[float, float]:
    """The same shift as `square` (the layout is drawn at the catalogue site's scale)."""
    x, y = offset(east_m, north_m)
    lon0, lat0 = offset(0, 0)
    return x - lon0 + BASE[0], y - lat0 + BASE[1]


async def _user(
    dsn: str, role: str, territory_id: int | None = None, manager_id: int | None = None
) -> tuple[int, dict[str, str]]:
    """A new user and the headers that authenticate as them."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        uid = await create_user(
            conn,
            email=f"{role}{uuid.uuid4().hex[:8]}@geo.test",
            name=role,
            role=role,
            territory_id=territory_id,
            manager_id=manager_id,
        )
        return uid, {"Authorization": f"Bearer {(await issue_token(conn, uid))[1]}"}


async def _token(dsn: str, role: str) -> str:
    return (await _user(dsn, role))[1]["Authorization"].removeprefix("Bearer ")


def _account(conn: psycopg.Connection, name: str, east_m: float, revenue: float) -> int:
    lon, lat = here(east_m)
    row = conn.execute(
        "INSERT INTO accounts (name, annual_revenue, location) VALUES (%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography) RETURNING id",
        (name, revenue, lon, lat),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_territories_fences_and_history_over_http(test_settings: Settings, db_dsn: str) -> None:
    asyncio.run(_scenario(test_settings, db_dsn))


async def _scenario(settings: Settings, dsn: str) -> None:
    admin = {"Authorization": f"Bearer {await _token(dsn, 'admin')}"}
    rep = {"Authorization": f"Bearer {await _token(dsn, 'rep')}"}  # in no territory
    viewer = {"Authorization": f"Bearer {await _token(dsn, 'viewer')}"}  # reads everything
    tag = uuid.uuid4().hex[:6]
    client = TestClient(TestServer(build_app(settings)))
    await client.start_server()
    try:
        # --- bad input: a self-intersecting territory is refused, naming the feature
        bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}
        fc: dict[str, Any] = {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"name": f"A{tag}"},
                    "geometry": square(0, 0, 1000),
                },
                {"type": "Feature", "properties": {"name": f"X{tag}"}, "geometry": bowtie},
            ],
        }
        r = await client.post("/api/v1/geo/territories", json=fc, headers=admin)
        assert r.status == 422
        err = (await r.json())["error"]
        assert err["field"] == "features[1].geometry" and "Self-intersection" in err["message"]
        r = await client.post("/api/v1/geo/territories", json=fc, headers=rep)
        assert r.status == 403

        # --- import two overlapping territories
        fc["features"][1] = {
            "type": "Feature",
            "properties": {"name": f"B{tag}"},
            "geometry": square(1500, 0, 1000),
        }
        r = await client.post("/api/v1/geo/territories", json=fc, headers=admin)
        assert r.status == 201, await r.text()
        body = await r.json()
        ta, tb = (t["id"] for t in body["territories"])
        assert {"a": ta, "b": tb} in [{"a": o["a"], "b": o["b"]} for o in body["overlaps"]]

        with psycopg.connect(dsn, autocommit=True) as conn:
            in_a = _account(conn, f"in A {tag}", -500, 1000)
            in_both = _account(conn, f"overlap {tag}", 750, 2000)
            in_b = _account(conn, f"in B {tag}", 2000, 4000)
            nowhere = _account(conn, f"nowhere {tag}", 9000, 8000)

        r = await client.post("/api/v1/geo/territories/assign", headers=admin)
        moved = {m["account_id"]: m for m in (await r.json())["moved"]}
        assert moved[in_a]["to_territory"] == ta
        assert moved[in_both]["to_territory"] == ta  # equal areas: the lower id
        assert moved[in_b]["to_territory"] == tb
        assert nowhere not in moved
        r = await client.post("/api/v1/geo/territories/assign", headers=admin)
        assert not {in_a, in_both, in_b} & {m["account_id"] for m in (await r.json())["moved"]}

        # --- B moves away: re-import with reassign reports what moved
        fc2 = {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"name": f"B{tag}"},
                    "geometry": square(8500, 0, 1000),
                }
            ],
        }
        r = await client.post("/api/v1/geo/territories?reassign=true", json=fc2, headers=admin)
        moved = {m["account_id"]: m for m in (await r.json())["moved"]}
        assert moved[in_b] == {"account_id": in_b, "from_territory": tb, "to_territory": None}
        assert moved[nowhere] == {"account_id": nowhere, "from_territory": None, "to_territory": tb}

        r = await client.get("/api/v1/geo/territories/balance", headers=viewer)
        rows = {t["territory_id"]: t for t in (await r.json())["territories"]}
        assert (rows[ta]["accounts"], rows[ta]["revenue"]) == (2, 3000.0)
        assert (rows[tb]["accounts"], rows[tb]["revenue"]) == (1, 8000.0)

        r = await client.get("/api/v1/geo/territories", headers=viewer)
        names = {f["properties"]["name"] for f in (await r.json())["features"]}
        assert {f"A{tag}", f"B{tag}"} <= names
        # a rep in no territory sees none of them
        r = await client.get("/api/v1/geo/territories", headers=rep)
        assert r.status == 200 and (await r.json())["features"] == []

        # --- geofences
        r = await client.post(
            "/api/v1/geo/fences/sync-accounts",
            json={"radius_m": 150, "dwell_s": 300},
            headers=admin,
        )
        assert r.status == 200 and (await r.json())["upserted"] >= 4
        r = await client.get(f"/api/v1/geo/fences?account_id={in_a}", headers=viewer)
        fences = (await r.json())["fences"]
        assert [(f["kind"], f["radius_m"], f["auto"]) for f in fences] == [("circle", 150.0, True)]
        r = await client.post(
            "/api/v1/geo/fences",
            json={"geometry": {"type": "Point", "coordinates": list(here(0))}, "radius_m": -5},
            headers=admin,
        )
        assert r.status == 422 and (await r.json())["error"]["field"] == "radius_m"
        r = await client.post(
            "/api/v1/geo/fences",
            json={"geometry": {"type": "Point", "coordinates": [181, 0]}, "radius_m": 50},
            headers=admin,
        )
        assert r.status == 422 and "longitude" in (await r.json())["error"]["message"]
        r = await client.post(
            "/api/v1/geo/fences", json={"name": "yard", "geometry": square(0, 0, 50)}, headers=admin
        )
        assert r.status == 201
        fid = (await r.json())["id"]
        assert (await client.get(f"/api/v1/geo/fences/{fid}", headers=viewer)).status == 200
        assert (await client.get(f"/api/v1/geo/fences/{fid}", headers=rep)).status == 404
        assert (await client.delete(f"/api/v1/geo/fences/{fid}", headers=admin)).status == 204
        assert (await client.get(f"/api/v1/geo/fences/{fid}", headers=viewer)).status == 404

        # --- history: 10 minutes parked, then 3 km east at 10 m/s
        device = f"phone-{tag}"
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO device (device_id, tenant) VALUES (%s, 't')", (device,))
            for w in {week_start(t0), week_start(t0 + timedelta(hours=1))}:
                conn.execute(partition_ddl("gps_fix", w))
            rows_in = [(t0 + timedelta(seconds=10 * k), *here(0), 5.0) for k in range(60)]
            rows_in += [
                (t0 + timedelta(seconds=600 + 10 * k), *here(100 * k), 5.0) for k in range(1, 31)
            ]
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO gps_fix (time, device_id, seq, lon, lat, accuracy_m) VALUES (%s, %s, 1, %s, %s, %s)",
                    [(t, device, x, y, a) for t, x, y, a in rows_in],
                )
        period = {
            "from": (t0 - timedelta(minutes=1)).isoformat(),
            "to": (t0 + timedelta(hours=1)).isoformat(),
        }
        r = await client.get(f"/api/v1/geo/subjects/{device}/track", params=period, headers=rep)
        assert r.status == 404  # a phone of no rep: admins and viewers only
        r = await client.get(f"/api/v1/geo/subjects/{device}/track", params=period, headers=viewer)
        track = await r.json()
        assert (
            track["geometry"]["type"] == "LineString"
            and len(track["geometry"]["coordinates"]) == 90
        )
        expected_m = float(haversine_m(*here(0), *here(3000)))
        assert track["properties"]["distance_m"] == pytest.approx(expected_m, rel=0.005)
        r = await client.get(
            f"/api/v1/geo/subjects/{device}/summary", params=period, headers=viewer
        )
        summary = await r.json()
        assert len(summary["stops"]) == 1 and summary["stops"][0]["duration_s"] == pytest.approx(
            590
        )
        assert summary["time"]["driving_s"] == pytest.approx(310)
        r = await client.get(
            "/api/v1/geo/subjects/x/track", params={"from": "yesterday"}, headers=viewer
        )
        assert r.status == 422 and (await r.json())["error"]["field"] == "from"
        r = await client.get("/api/v1/geo/coverage", headers=rep)
        assert r.status == 200

        # --- the OpenAPI document lists the geo paths; a request without a token is refused
        doc = await (await client.get("/api/v1/openapi.json")).json()
        assert (
            "/api/v1/geo/territories" in doc["paths"]
            and "post" in doc["paths"]["/api/v1/geo/fences"]
        )
        assert (await client.get("/api/v1/geo/territories")).status == 401
    finally:
        await client.close()
