"""The map works offline (Natural Earth basemap from npm world-atlas, no tile server),
clusters thousands of accounts, lists devices, and replays a device's track; the sites and
track APIs apply record-level access."""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login
from tests.console.test_records_e2e import territory


def seed(dsn: str, accounts: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    device = f"pump-{tag}"
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        tid = conn.execute(
            "INSERT INTO territories (name) VALUES (%s) RETURNING id", (f"Map {tag}",)
        ).fetchone()
        assert tid is not None
        conn.execute(
            "INSERT INTO accounts (name, territory_id, location)"
            " SELECT 'Site ' || %s || '-' || g, %s,"
            " st_setsrid(st_makepoint(4.5 + (g %% 50) * 0.01, 45.5 + (g / 50) * 0.01), 4326)::geography"
            " FROM generate_series(1, %s) g",
            (tag, tid[0], accounts),
        )
        conn.execute(
            "INSERT INTO device (device_id, tenant, name) VALUES (%s, 't', %s)",
            (device, f"Pump {tag}"),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO gps_fix (time, device_id, seq, lon, lat, accuracy_m) VALUES (%s, %s, %s, %s, %s, 5)",
                [
                    (
                        now - dt.timedelta(minutes=60 - i),
                        device,
                        i,
                        4.80 + i * 0.001,
                        45.75,
                    )
                    for i in range(60)
                ],
            )
    return {"device": device, "territory": tid[0], "now": now}


def test_sites_and_tracks_follow_record_access(
    console_url: str, admin: dict[str, Any], test_settings: Settings
) -> None:
    w = seed(test_settings.dsn, 30)
    outsider = make_user(test_settings.dsn, "rep", territory_id=territory(test_settings.dsn))
    tok, out_tok = login(console_url, admin), login(console_url, outsider)
    assert len(call(console_url, "GET", "/console/api/sites", token=tok)["ids"]) >= 30
    assert call(console_url, "GET", "/console/api/sites", token=out_tok)["ids"] == []
    span = urllib.parse.urlencode(
        {
            "device_id": w["device"],
            "from": (w["now"] - dt.timedelta(hours=2)).isoformat(),
            "to": (w["now"] + dt.timedelta(minutes=1)).isoformat(),
        }
    )
    tr = call(console_url, "GET", f"/console/api/track?{span}", token=tok)
    assert len(tr["t_ms"]) == 60 and tr["t_ms"] == sorted(tr["t_ms"]) and tr["lon"][0] == 4.80
    for token, query, code in (
        (out_tok, span, 404),  # a device the rep may not see does not exist for them
        (
            tok,
            span.replace("from=", "x=") + "&from=2026-01-01T00:00:00Z",
            422,
        ),  # a period over 31 days
    ):
        try:
            call(console_url, "GET", f"/console/api/track?{query}", token=token)
            raise AssertionError("expected an error")
        except urllib.error.HTTPError as err:
            assert err.code == code


def test_the_map_shows_geography_offline_clusters_accounts_and_replays_a_track(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    w = seed(test_settings.dsn, 2000)
    # the device shows on the map at its account's site
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        acct = conn.execute(
            "SELECT id FROM accounts WHERE territory_id = %s LIMIT 1", (w["territory"],)
        ).fetchone()
        assert acct is not None
        conn.execute(
            "INSERT INTO assets (account_id, device_id, equipment_model) VALUES (%s, %s, 'P-100')",
            (acct[0], w["device"]),
        )
    r = run_scenario("mapgeo", console_url, {"user": admin, "device": w["device"]})
    assert r["basemap"] in ("countries-50m.json", "countries-10m.json")
    assert r["sites"] >= 2000
    assert r["clusters"] and sum(r["clusters"]) <= r["sites"] and max(r["clusters"]) > 10
    # each cluster, a button to the keyboard, says what it counts
    assert r["clusterNames"] == [f"{n} account sites: zoom in" for n in r["clusters"]]
    assert r["landDrawn"] >= 1
    assert r["visibleRows"] == [w["device"]]
    assert r["points"] == 60 and r["first"] != r["last"]
    assert r["errors"] == [] and r["bad"] == [], (r["errors"], r["bad"])
