"""CRM record pages in headless Chromium, as a sales rep: create with a validation error on
the field, convert a lead, edit inline (invalid value, conflict), search with a typo, delete
with confirmation; and the buttons each role is offered match what the API allows."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login


def territory(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO territories (name) VALUES (%s) RETURNING id",
            (f"T-{uuid.uuid4().hex[:8]}",),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_sales_rep_does_a_days_work_in_the_browser(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    tid = territory(test_settings.dsn)
    rep = make_user(test_settings.dsn, "rep", territory_id=tid)
    tok = login(console_url, admin)
    suffix = uuid.uuid4().hex[:4]
    contact = call(
        console_url,
        "POST",
        "/api/v1/contacts",
        {"first_name": "Johanna", "last_name": f"Schmidtke{suffix}", "territory_id": tid},
        tok,
    )
    # another territory's namesake must not be found by the rep
    hidden = call(
        console_url,
        "POST",
        "/api/v1/contacts",
        {
            "first_name": "Johanna",
            "last_name": f"Schmidtke{suffix}",
            "territory_id": territory(test_settings.dsn),
        },
        tok,
    )
    pipe = next(
        p
        for p in call(console_url, "GET", "/api/v1/pipelines", token=tok)["items"]
        if p["is_default"]
    )
    stages = call(console_url, "GET", "/api/v1/pipeline_stages?limit=200", token=tok)["items"]
    won = next(s for s in stages if s["pipeline_id"] == pipe["id"] and s["is_won"])
    r = run_scenario(
        "records",
        console_url,
        {
            "user": rep,
            "contact": contact["id"],
            "misspelled": f"Johana Shmidtke{suffix}",
            "wonStage": won["id"],
        },
    )
    assert r["fieldError"] == "must be at least 0", r["fieldError"]
    assert r["savingAfterError"] == "Create"  # no "saving..." left behind
    lead = call(console_url, "GET", f"/api/v1/leads/{r['leadId']}", token=tok)
    assert lead["status"] == "converted" and lead["converted_opportunity_id"] == r["oppId"]
    opp = call(console_url, "GET", f"/api/v1/opportunities/{r['oppId']}", token=tok)
    assert opp["name"] == "Renamed elsewhere" and float(opp["amount"]) == 15000
    assert opp["status"] == "won" and opp["stage_id"] == won["id"]
    # the rep's "won deals by month" report: this month, their one deal, in euros
    assert (
        len(r["wonReport"]) == 1
        and "€" in r["wonReport"][0][2]
        and "15,000" in r["wonReport"][0][2]
    ), r["wonReport"]
    assert "€" in r["amountShown"] and "12,000" in r["amountShown"], r["amountShown"]
    assert "€" in r["amountAfter"] and "15,000" in r["amountAfter"]
    assert r["accountName"] == "Quist Pumps"
    assert r["inlineError"] == "must be at most 100", r["inlineError"]
    assert "Changed by" in r["conflict"] and "Overwrite" in r["conflict"]
    found = {(h["type"], int(h["id"])) for h in r["hits"]}
    assert ("contacts", contact["id"]) in found and ("contacts", hidden["id"]) not in found
    assert r["contactTitle"] == f"Johanna Schmidtke{suffix}"
    with psycopg.connect(test_settings.dsn) as conn:
        assert (
            conn.execute("SELECT 1 FROM accounts WHERE id = %s", (r["accId"],)).fetchone() is None
        )
    assert not r["nulls"]
    assert r["errors"] == [], r["errors"]
    assert r["bad"] == [
        "422 POST /api/v1/leads",
        "422 PATCH /api/v1/opportunities/" + str(r["oppId"]),
        "412 PATCH /api/v1/opportunities/" + str(r["oppId"]),
    ], r["bad"]


def test_each_role_is_offered_only_the_buttons_the_api_allows(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    tid = territory(test_settings.dsn)
    rep = make_user(test_settings.dsn, "rep", territory_id=tid)
    viewer = make_user(test_settings.dsn, "viewer")
    tok = login(console_url, admin)
    acct = call(
        console_url, "POST", "/api/v1/accounts", {"name": "Perm Co", "territory_id": tid}, tok
    )
    pages = {
        "accounts": "#/accounts",
        "account": f"#/r/accounts/{acct['id']}",
        "territories": "#/territories",
        "me": f"#/r/users/{rep['id']}",
    }
    as_rep = run_scenario("permissions", console_url, {"user": rep, "pages": pages})["out"]
    assert (
        as_rep["accounts"]["create"] and as_rep["account"]["edit"] > 3 and as_rep["account"]["del"]
    )
    assert as_rep["account"]["addEquipment"]  # POST /api/v1/assets takes every role but viewer
    # territories and users are admin-written: a rep is offered no create, edit or delete
    assert not as_rep["territories"]["create"]
    assert as_rep["me"]["edit"] == 0 and not as_rep["me"]["del"]
    as_viewer = run_scenario("permissions", console_url, {"user": viewer, "pages": pages})["out"]
    assert not as_viewer["accounts"]["create"]
    assert as_viewer["account"]["edit"] == 0 and not as_viewer["account"]["del"]
    assert not as_viewer["account"]["addEquipment"]
    as_admin = run_scenario("permissions", console_url, {"user": admin, "pages": pages})["out"]
    assert (
        as_admin["territories"]["create"] and as_admin["me"]["edit"] > 3 and as_admin["me"]["del"]
    )


def test_a_rep_adds_edits_and_deletes_equipment_from_the_account_page(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    tid = territory(test_settings.dsn)
    rep = make_user(test_settings.dsn, "rep", territory_id=tid)
    tok = login(console_url, admin)
    acct = call(
        console_url, "POST", "/api/v1/accounts", {"name": "Kettle Works", "territory_id": tid}, tok
    )
    model = f"Compressor {uuid.uuid4().hex[:6]}"
    r = run_scenario("equipment", console_url, {"user": rep, "account": acct["id"], "model": model})
    assert r["accountShown"] == "Kettle Works"  # prefilled, by name
    assert r["fieldError"] == "must be at least 1", r["fieldError"]
    assert r["invalid"] == "true"
    assert [(row[0], row[1]) for row in r["rows"]] == [(model, "SN-0042")], r["rows"]
    assert "SLA 24 h" in r["rows"][0][4]
    # edited in the list: the form has the asset's values, a bad SLA is shown on its field
    assert r["editSerial"] == "SN-0042"
    assert r["editError"] == "must be at least 1", r["editError"]
    assert [(row[0], row[1]) for row in r["edited"]] == [(model, "SN-0042")], r["edited"]
    assert "SLA 6 h" in r["edited"][0][4]
    # deleted after a confirmation naming it
    assert r["confirmTitle"] == f'Delete asset "{model} · SN-0042"?', r["confirmTitle"]
    assets = call(console_url, "GET", f"/api/v1/assets?account_id={acct['id']}", token=tok)
    assert assets["items"] == []
    assert not r["nulls"]
    assert r["errors"] == [], r["errors"]
    assert [b.rstrip("0123456789") for b in r["bad"]] == [
        "422 POST /api/v1/assets",
        "422 PATCH /api/v1/assets/",
    ], r["bad"]
    # an admin (who sees every device) links a device too, picked by its name
    code = f"KW-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO device (device_id, tenant, kind, name) VALUES (%s, 'acme', 'equipment', %s)",
            (code, f"Kettle pump {code[3:]}"),
        )
    other = call(console_url, "POST", "/api/v1/accounts", {"name": "Kettle Two"}, tok)
    r = run_scenario(
        "equipment",
        console_url,
        {
            "user": admin,
            "account": other["id"],
            "model": model,
            "device": f"Kettle pump {code[3:]}",
        },
    )
    assert r["fieldError"] == "must be at least 1" and r["errors"] == [], r
    assert [(row[0], row[2]) for row in r["rows"]] == [(model, code)], r["rows"]


def test_saved_views_and_bulk_assignment_on_a_list(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    tid = territory(test_settings.dsn)
    manager = make_user(test_settings.dsn, "manager", territory_id=tid)
    rep = make_user(test_settings.dsn, "rep", territory_id=tid)
    tok = login(console_url, admin)
    company = f"Bulkco {uuid.uuid4().hex[:6]}"
    leads = [
        call(
            console_url,
            "POST",
            "/api/v1/leads",
            {"last_name": name, "company": company, "territory_id": tid},
            tok,
        )["id"]
        for name in ("Alder", "Birch", "Cedar")
    ]
    r = run_scenario(
        "listtools",
        console_url,
        {
            "user": manager,
            "company": company,
            "leads": leads,
            "rep": rep["id"],
            "viewName": "My bulk view",
        },
    )
    assert r["order"] == list(reversed(leads))  # sorted by last name, descending
    assert r["done"] == 3
    owners = {call(console_url, "GET", f"/api/v1/leads/{i}", token=tok)["owner_id"] for i in leads}
    assert owners == {rep["id"]}
    assert r["restored"] == {"q": company, "sort": "-last_name"}
    views = call(
        console_url, "GET", "/api/v1/views?entity=leads", token=login(console_url, manager)
    )["items"]
    assert [(v["name"], v["params"]["q"], v["params"]["sort"]) for v in views] == [
        ("My bulk view", company, "-last_name")
    ]
    # another user does not see it
    assert (
        call(console_url, "GET", "/api/v1/views?entity=leads", token=login(console_url, rep))[
            "items"
        ]
        == []
    )
    assert r["errors"] == [] and r["bad"] == []
