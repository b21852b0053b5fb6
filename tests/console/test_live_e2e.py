"""Sign-in and the live map in headless Chromium against the real app, gateway and fleet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_sim.fleet import Fleet, FleetSpec
from kernel.settings import Settings
from tests.gateway.harness import GatewayProcess


def test_sign_in_refuses_a_wrong_password_keeps_the_session_across_reloads_and_signs_out(
    console_url: str, admin: dict[str, Any], run_scenario: Callable[..., dict[str, Any]]
) -> None:
    r = run_scenario("signin", console_url, {"user": admin})
    assert "wrong e-mail or password" in r["wrong"]
    assert admin["email"] in r["who"] and "(admin)" in r["who"]
    assert r["whoAfterReload"] == r["who"]
    # signed out: nothing of the last screen stays behind the dialog, nor comes back with
    # the back button, and the token is revoked
    assert r["afterSignOut"] == "" and r["afterBack"] == ""
    assert r["oldTokenStatus"] == 401
    # signed out elsewhere: a request's 401, the live socket's close (4401) and another tab's
    # Sign out clear the page as the button does, with the header's search and assistant
    cleared = {"view": "", "dataView": None, "search": "", "hits": "", "assistant": 0}
    assert r["after401"] == cleared
    assert r["afterSocket"] == cleared
    assert r["afterOtherTab"] == cleared
    assert r["errors"] == []
    # the wrong password, the revoked token tried above, and the search sent with it; on a
    # loaded machine also a read the open view had in flight when its token was revoked
    expected = [
        "401 POST /api/v1/auth/token",
        "401 GET /api/v1/auth/me",
        "401 GET /console/api/search",
    ]
    assert [b for b in r["bad"] if b in expected] == expected
    assert all(b.startswith("401 GET /") for b in r["bad"] if b not in expected), r["bad"]


def test_a_simulated_rep_moves_on_the_live_map(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    tenant: str,
    tmp_path: Path,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    gw = GatewayProcess(test_settings, tenant, log_path=tmp_path / "gateway.log").start()
    fleet = Fleet(
        test_settings,
        FleetSpec(tenant=tenant, devices=2, reps=1, gps_interval_s=2.0, speedup=10.0, lead_s=900.0),
        tmp_path / "fleet",
    )
    try:
        fleet.start()
        r = run_scenario("live", console_url, {"user": admin, "device": f"{tenant}-rep-00"})
    finally:
        fleet.stop()
        gw.stop()
    assert r["first"] != r["second"]
    assert r["markers"] >= 1 and r["latencies"] >= 1
    assert r["errors"] == [] and r["bad"] == []
