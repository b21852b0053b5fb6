"""CRM screens in headless Chromium: pipeline drag and drop, CSV import with a bad row, every
screen renders without console errors."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import psycopg

from kernel.settings import Settings


def call(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def login(base: str, user: dict[str, Any]) -> str:
    return str(
        call(
            base,
            "POST",
            "/api/v1/auth/token",
            {"email": user["email"], "password": user["password"]},
        )["token"]
    )


def test_dragging_an_opportunity_to_the_next_stage_is_persisted(
    console_url: str, admin: dict[str, Any], run_scenario: Callable[..., dict[str, Any]]
) -> None:
    tok = login(console_url, admin)
    acct = call(console_url, "POST", "/api/v1/accounts", {"name": "Drag Co"}, tok)
    # a long first stage (the card dragged is its last): the other columns must stay on
    # the screen as drop targets (a long column once pushed them off and the drop failed)
    for n in range(40):
        call(console_url, "POST", "/api/v1/opportunities", {"name": f"Filler {n}", "account_id": acct["id"]}, tok)  # fmt: skip
    opp = call(
        console_url,
        "POST",
        "/api/v1/opportunities",
        {
            "name": "Pumps x4",
            "account_id": acct["id"],
            "amount": 40000,
            "close_date": "2027-03-14",
        },
        tok,
    )
    stages = call(
        console_url,
        "GET",
        "/api/v1/pipeline_stages?limit=200&filter="
        + urllib.parse.quote(
            json.dumps({"field": "pipeline_id", "op": "eq", "value": opp["pipeline_id"]})
        ),
        token=tok,
    )["items"]
    ordered = sorted(stages, key=lambda s: s["position"])
    i = next(k for k, s in enumerate(ordered) if s["id"] == opp["stage_id"])
    target = ordered[i + 1]["id"]
    r = run_scenario("pipeline", console_url, {"user": admin, "opp": opp["id"], "toStage": target})
    assert (
        call(console_url, "GET", f"/api/v1/opportunities/{opp['id']}", token=tok)["stage_id"]
        == target
    )
    assert r["columnAfterReload"] == str(target)
    # the card's close date reads as the record page's dates do, not as an ISO string
    assert "closes 3/14/2027" in r["cardText"] and "2027-03-14" not in r["cardText"]
    assert r["errors"] == [] and r["bad"] == []


def test_csv_import_shows_progress_and_the_bad_row_with_its_error(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    csv = "name,type,health_score\nImport Alpha,customer,80\nImport Beta,not-a-type,50\nImport Gamma,prospect,30\n"
    r = run_scenario("import", console_url, {"user": admin, "entity": "accounts", "csv": csv})
    assert r["status"] == "done", (r["failure"], r.get("bad"))
    # no file chosen is said beside the file input (it was the browser's own bubble)
    assert r["noFile"] == {
        "error": "Choose the CSV file to import.",
        "invalid": "true",
        "focus": "import-file",
    }
    assert r["noFileAfter"] == ""
    assert len(r["rows"]) == 1 and r["rows"][0][0] == "3" and r["rows"][0][1] == "type", r["rows"]
    assert "2 inserted" in r["state"] and "1 failed" in r["state"]
    assert r["progress"][0] == r["progress"][1]
    with psycopg.connect(test_settings.dsn) as conn:
        names = {n for (n,) in conn.execute("SELECT name FROM accounts WHERE name LIKE 'Import %'")}
    assert names == {"Import Alpha", "Import Gamma"}
    assert r["errors"] == [] and r["bad"] == []


def test_every_console_screen_renders_without_errors_and_fits_a_phone(
    console_url: str, admin: dict[str, Any], run_scenario: Callable[..., dict[str, Any]]
) -> None:
    tok = login(console_url, admin)
    parent = call(
        console_url, "POST", "/api/v1/accounts", {"name": "Holding SA", "type": "customer"}, tok
    )
    child = call(
        console_url,
        "POST",
        "/api/v1/accounts",
        {"name": "Holding Lyon", "parent_id": parent["id"]},
        tok,
    )
    call(
        console_url,
        "POST",
        "/api/v1/activities",
        {"type": "call", "subject": "Intro call", "account_id": child["id"]},
        tok,
    )
    deal = {"name": "Holding deal", "account_id": parent["id"], "amount": 9000, "currency": "EUR"}
    call(console_url, "POST", "/api/v1/opportunities", deal, tok)  # a pipeline chart
    r = run_scenario(
        "screens", console_url, {"user": admin, "account": child["id"], "parent": parent["id"]}
    )
    assert (
        "Holding SA" in r["out"][f"account/{child['id']}"]
        and "Intro call" in r["out"][f"account/{child['id']}"]
    )
    assert "Accounts" in r["out"]["accounts"]
    assert "Holding Lyon" in r["out"][f"r/accounts/{parent['id']}"]  # its child account
    # no view prints a null, an undefined or a NaN
    leaks = {v: t for v, t in r["out"].items() if re.search(r"\bnull\b|undefined|NaN", t)}
    assert leaks == {}
    assert r["errors"] == []
    assert all(b.startswith("404 GET /api/v1/alerts") for b in r["bad"]), r["bad"]
    # charts at 390 px: text at a readable size, no label over another, none cut off
    assert len(r["charts"]) >= 6 and r["phoneOverflow"] <= 0
    for chart in r["charts"]:
        assert chart["px"] >= 11, chart
        assert chart["overlaps"] == [] and chart["outside"] == [], chart
