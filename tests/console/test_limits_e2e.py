"""The API's limits as a user meets them in the console (headless Chromium): implausible
values refused with the rule beside their field, an asset changed by someone else while
edited (the conflict explained, then overwritten), and the user's own time zone set on
their settings page and used at once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login


def test_implausible_phone_and_close_date_are_refused_beside_their_field(
    console_url: str, admin: dict[str, Any], run_scenario: Callable[..., dict[str, Any]]
) -> None:
    tok = login(console_url, admin)
    acct = call(console_url, "POST", "/api/v1/accounts", {"name": "Limits SA"}, tok)
    opp = call(
        console_url,
        "POST",
        "/api/v1/opportunities",
        {"name": "Limits deal", "account_id": acct["id"], "close_date": "2027-03-31"},
        tok,
    )
    last = f"Limits{uuid.uuid4().hex[:6]}"
    r = run_scenario(
        "implausible", console_url, {"user": admin, "oppId": opp["id"], "lastName": last}
    )
    assert r["phoneType"] == "tel"
    assert r["phoneError"].startswith("is not a phone number: 5 to 20 digits"), r["phoneError"]
    assert r["phoneInvalid"] == "true"
    assert r["phoneSaved"] == "+33 4 78 00 00 00"
    assert r["dateBounds"] == ["1900-01-01", "2200-12-31"]
    assert r["dateError"] == "must be between 1900-01-01 and 2200-12-31", r["dateError"]
    deal = call(console_url, "GET", f"/api/v1/opportunities/{opp['id']}", token=tok)
    assert deal["close_date"] == "2027-03-31"  # nothing written
    assert not r["nulls"]
    assert r["halfTyped"] == [
        "must be a date and time, like 2026-03-31 14:30",
        "#/new/activities",
    ]
    window = "must be between 1900-01-01 and 2200-12-31"
    assert r["farTimes"] == [[window, "#/new/activities"], [window, "#/new/activities"]]
    assert r["errors"] == [], r["errors"]
    assert [b.rstrip("0123456789") for b in r["bad"]] == [
        "422 POST /api/v1/contacts",
        "422 PATCH /api/v1/opportunities/",
        "422 POST /api/v1/activities",
        "422 POST /api/v1/activities",
    ], r["bad"]


def test_an_asset_changed_meanwhile_is_explained_and_can_be_overwritten(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    tok = login(console_url, admin)
    acct = call(console_url, "POST", "/api/v1/accounts", {"name": "Conflict Works"}, tok)
    asset = call(
        console_url,
        "POST",
        "/api/v1/assets",
        {"account_id": acct["id"], "equipment_model": "pump-p200", "serial": "SN-FIRST"},
        tok,
    )
    other = make_user(test_settings.dsn, "admin")
    r = run_scenario(
        "assetConflict",
        console_url,
        {
            "user": admin,
            "account": acct["id"],
            "asset": asset["id"],
            "otherToken": login(console_url, other),
        },
    )
    assert r["otherStatus"] == 200
    assert r["conflict"].startswith("Changed by someone else since you opened it"), r["conflict"]
    assert [row[:2] for row in r["rows"]] == [["pump-p200", "SN-MINE"]], r["rows"]
    assert r["errors"] == [], r["errors"]
    assert [b.rstrip("0123456789") for b in r["bad"]] == ["412 PATCH /api/v1/assets/"], r["bad"]
    now = call(console_url, "GET", f"/api/v1/assets/{asset['id']}", token=tok)
    assert (now["serial"], now["version"]) == ("SN-MINE", 3)


def test_a_user_sets_their_own_time_zone_in_the_console(
    console_url: str, test_settings: Settings, run_scenario: Callable[..., dict[str, Any]]
) -> None:
    rep = make_user(test_settings.dsn, "rep")
    r = run_scenario("settingsZone", console_url, {"user": rep})
    assert r["noteBefore"] == "Times in UTC"
    assert r["zoneBefore"] == "UTC"
    assert rep["email"] in r["who"] and "rep" in r["who"]
    assert (
        r["zoneError"] == "'Mars/Olympus' is not a known time zone (an IANA name like Europe/Paris)"
    )
    assert r["invalid"] == "true"
    assert r["deviceZone"] == "America/New_York"  # the browser's, offered with one click
    assert r["errorAfter"] == ""
    assert r["noteAfterReload"] == "Times in Asia/Tokyo"
    me = call(console_url, "GET", "/api/v1/auth/me", token=login(console_url, rep))
    assert me["timezone"] == "Asia/Tokyo"
    assert not r["nulls"]
    assert r["errors"] == [], r["errors"]
    assert [b.rstrip("0123456789") for b in r["bad"]] == ["422 PATCH /api/v1/auth/me"], r["bad"]
