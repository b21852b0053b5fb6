"""What a new user clicking through the console hit, in headless Chromium: markup in a name
stays text, a part a page leaves out is not printed as "null", an out-of-range amount is
refused on its field in words (and the form keeps the input), a lead's "converted" status
is not offered outside the conversion wizard, the deal names its lead, the audit history
names people and records ("created the record", no raw ids), a saved view's refused name is
explained on the name, the account page lists its equipment, and a negative value draws a
bar down from zero."""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.error
from collections.abc import Callable
from typing import Any

import pytest

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login
from tests.console.test_list_export_api import fetch, xlsx_rows
from tests.console.test_records_e2e import territory

HOSTILE = '<img src=x onerror="document.body.dataset.pwned=1">Zoë 😀'


def test_what_a_new_user_hit_clicking_through_the_console(
    console_url: str,
    test_settings: Settings,
    admin: dict[str, Any],
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    terr = territory(test_settings.dsn)
    rep = make_user(test_settings.dsn, "rep", territory_id=terr)
    tok = login(console_url, admin)
    acct = call(
        console_url,
        "POST",
        "/api/v1/accounts",
        {"name": "QA Pumps", "type": "customer", "territory_id": terr},
        tok,
    )
    call(
        console_url,
        "POST",
        "/api/v1/assets",
        {"account_id": acct["id"], "equipment_model": "pump-p200", "serial": "SN-QA-1"},
        tok,
    )
    twin = {"first_name": "Dana", "last_name": "Twin", "email": f"dana.{terr}@example.test"}
    keep = call(console_url, "POST", "/api/v1/contacts", {**twin, "territory_id": terr}, tok)
    dup = call(console_url, "POST", "/api/v1/contacts", {**twin, "territory_id": terr}, tok)
    company = "Quist & <Söhne>"
    article = call(
        console_url,
        "POST",
        "/api/v1/assistant/articles",
        {
            "title": "QA seal",
            "body": "Check the seal.",
            "audience": "internal",
            "territory_id": terr,
        },
        tok,
    )
    r = run_scenario(
        "qa",
        console_url,
        {
            "user": rep,
            "hostile": HOSTILE,
            "company": company,
            "account": acct["id"],
            "keep": keep["id"],
            "dup": dup["id"],
            "article": article["id"],
            "viewer": make_user(test_settings.dsn, "viewer"),
        },
        timeout_s=300,
    )
    assert r["sourceOffered"] is True
    assert r["lettersError"] == "must be a number" and r["lettersStay"] == "#/new/leads"
    assert r["amountError"] == "must be less than 10,000,000,000,000,000"
    assert r["keptName"] == HOSTILE
    assert r["title"] == HOSTILE and r["pwned"] is None
    for choices in (r["createStatusChoices"], r["editStatusChoices"], r["bulkStatusChoices"]):
        assert "new" in choices and "converted" not in choices
    assert r["dealLead"] == HOSTILE
    # the conversion's negative amount is refused beside it, in the console's words
    assert r["convertAmount"] == {
        "error": "must be at least 0",
        "invalid": "true",
        "focus": "convert-opp-amount",
    }
    audit = r["audit"]
    assert "created the record" in audit and "insertd" not in audit
    assert f"changed Lead: — → {HOSTILE}" in audit
    assert not re.search(r"→ \d+\b", audit)
    assert r["viewBlank"] == "Name the view first" and r["viewMax"] == "200"
    assert r["viewError"] == "View name must have at most 200 characters"
    # the last cell: the row's Edit and Delete buttons
    assert r["assets"] == [["pump-p200", "SN-QA-1", "—", "—", "standard · SLA 48 h", "EditDelete"]]
    # the typed health field is named the override it is (the lists' Health is computed)
    assert "Health override" in r["accountFields"] and "Health score" not in r["accountFields"]
    # what a page leaves out for this account or role is not printed as "null"
    assert "Computed: not yet." in r["healthText"] and "null" not in r["healthText"]
    assert "Check the seal." in r["articleText"] and "null" not in r["articleText"]
    # the article's territory by its name, not its id
    assert f"territory {terr}" not in r["articleText"] and " · for T-" in r["articleText"]
    assert "Dashboards" in r["dashboardsText"] and "null" not in r["dashboardsText"]
    assert "Dana Twin is deleted once merged" in r["mergeAsk"]
    assert r["afterCancel"] == 200 and r["afterMerge"] == 404
    assert len(r["barHeights"]) == 4 and all(h > 0 for h in r["barHeights"])
    assert r["errors"] == []


def test_a_rule_across_fields_is_refused_on_the_field_a_person_corrects(
    console_url: str, admin: dict[str, Any]
) -> None:
    tok = login(console_url, admin)

    def refusal(path: str, body: dict[str, Any]) -> dict[str, Any]:
        with pytest.raises(urllib.error.HTTPError) as e:
            call(console_url, "POST", path, body, tok)
        assert e.value.code == 422
        err: dict[str, Any] = json.loads(e.value.read())["error"]
        return err

    late = {"type": "call", "subject": "QA", "start_at": "2026-01-02T10:00:00Z"}
    err = refusal("/api/v1/activities", {**late, "end_at": "2026-01-01T10:00:00Z"})
    assert err == {"code": "invalid", "message": "end_at: ends before it starts", "field": "end_at"}
    acct = call(console_url, "POST", "/api/v1/accounts", {"name": "QA windows"}, tok)
    window = {"earliest_start": "2026-01-02T10:00:00Z", "latest_end": "2026-01-01T10:00:00Z"}
    err = refusal("/api/v1/work_orders", {"title": "QA", "account_id": acct["id"], **window})
    assert err["field"] == "latest_end" and "constraint" not in err["message"]
    err = refusal("/api/v1/contacts", {"email": "nobody@example.test"})
    assert err["field"] == "last_name" and "constraint" not in err["message"]


def test_exports_write_a_list_field_as_words_not_a_python_list(
    console_url: str, admin: dict[str, Any]
) -> None:
    tok = login(console_url, admin)
    acct = call(console_url, "POST", "/api/v1/accounts", {"name": "QA rivals"}, tok)
    deal = {"name": "QA rivals deal", "account_id": acct["id"], "competitors": ["=Rival", "Other"]}
    opp = call(console_url, "POST", "/api/v1/opportunities", deal, tok)
    only = json.dumps({"field": "id", "op": "eq", "value": opp["id"]})
    _, data = fetch(
        console_url,
        tok,
        "/api/v1/list_exports/opportunities.csv",
        filter=only,
        columns="name,competitors",
    )
    assert list(csv.reader(io.StringIO(data.decode()))) == [
        ["Name", "Competitors"],
        ["QA rivals deal", "'=Rival, Other"],
    ]
    _, data = fetch(
        console_url,
        tok,
        "/api/v1/list_exports/opportunities.xlsx",
        filter=only,
        columns="name,competitors",
    )
    assert xlsx_rows(data)[1] == ["QA rivals deal", "=Rival, Other"]


def test_what_an_admin_met_walking_the_demo_world(
    console_url: str, admin: dict[str, Any], run_scenario: Callable[..., dict[str, Any]]
) -> None:
    tok = login(console_url, admin)
    acct = call(
        console_url, "POST", "/api/v1/accounts", {"name": "QA walk", "currency": "EUR"}, tok
    )
    deal = {"name": "QA walk deal", "account_id": acct["id"], "amount": 5000, "currency": "EUR"}
    call(console_url, "POST", "/api/v1/opportunities", deal, tok)
    r = run_scenario(
        "qaWalk",
        console_url,
        {"user": admin, "account": acct["id"], "addresses": list(BAD_ADDRESSES)},
    )
    # the users list has no bulk actions: nothing stands in for them
    assert not re.search(r"\bnull\b", r["usersText"])
    # the assistant panel says what it is for, and Escape closes it back to its button
    panel = r["panel"]
    assert "next stop" in panel["hint"] and panel["expanded"] == "true"
    assert panel["speakLineHeight"] < 30
    assert panel["hiddenAfterEscape"] is True and panel["focusAfterEscape"] == "assistant-open"
    # the bot's people are chosen by name, not typed as ids
    assert not any("user id" in label for label in r["botLabels"])
    assert r["ownerChoice"] == "SELECT" and len(r["bookingChoices"]) >= 1
    assert not any(c.strip().isdigit() for c in r["bookingChoices"])
    # the assistant's period is named and not stretched across the page; the bot's on/off
    # box is on the line of its words
    assert r["period"]["label"] == "Period" and r["period"]["widthShare"] < 0.5
    assert r["period"]["checkboxLine"] is True
    # a refused bot setting says why on its own field, without the API's wording
    assert r["minutesError"] == "must be at least 10"
    assert r["minutesInvalid"] == "true"
    assert "body " not in r["botFormText"] and "`int`" not in r["botFormText"]
    # a create form: "Account *" on one line like any other label, the account search as
    # wide as its column, the form right under its title
    form = r["form"]
    assert form["requiredLabelHeight"] == form["plainLabelHeight"]
    assert form["pickerWidth"] == form["fieldWidth"]
    assert form["titleGap"] < 24
    # a new deal on a EUR account is in EUR
    assert r["dealCurrency"] == "EUR"
    # "open pipeline" is the open stages': won and lost deals are no pipeline
    assert r["openStages"] and r["closedStages"]
    assert not set(r["closedStages"]) & set(r["openStages"])
    charts = r["charts"]
    # a month is a date on the axis (not 01:00 AM in Paris), and one point is drawn
    assert charts["monthDots"] == 1
    assert "Dec 1, 2026" in charts["monthTexts"] and not any(":" in t for t in charts["monthTexts"])
    # bar labels are whole when there is room, and the axis ticks are round
    assert {"Rep acme-rep-00", "Rep acme-rep-01", "Rep acme-rep-02"} <= set(charts["repTexts"])
    assert {"0", "2.5", "5", "7.5", "10"} <= set(charts["repTexts"])
    # a count beside a sum of money: the chart's axis is money, so it charts the sum alone
    assert charts["mixedBars"] == [
        "Closed won · Sum of amount: 1,341,600 EUR",
        "Proposal · Sum of amount: 142,400 EUR",
    ]
    # a deep link's day, month, year or time that is none is named with what is wrong (it
    # showed this week, or 2026-13 as January 2027), with a link to the period it can show
    for hash, (words, href, label) in BAD_ADDRESSES.items():
        said = r["addresses"][hash]
        assert said is not None, hash
        assert words in said["text"] and said["role"] == "alert", (hash, said)
        assert (said["href"], said["label"]) == (href, label), (hash, said)
    assert '"notadate", is not a date' in r["addresses"]["#/calendar/week/notadate"]["text"]
    assert r["leapDay"] == "February 2028"
    assert r["errors"] == []


# a deep link that names no such period: what the page says, and where its link goes
BAD_ADDRESSES = {
    "#/calendar/week/notadate": ("is not a date", "#/calendar/week", "This week"),
    "#/calendar/month/2026-02-29": (
        "that month has days 01 to 28",
        "#/calendar/month",
        "This month",
    ),
    "#/calendar/weak": ("is not one of the calendar's views", "#/calendar/week", "This week"),
    "#/calendar/day/%E0%A4%A": ("cannot be read", "#/calendar", "Open the page without it"),
    "#/activities/2026-13": ("months go from 01 to 12", "#/activities", "This month"),
    "#/activities/0026-01": ("is outside the years 1900 to 2200", "#/activities", "This month"),
    "#/dispatch/2026-04-31": ("that month has days 01 to 30", "#/dispatch", "Today"),
    "#/quotas/twenty": ("is not a year", "#/quotas", "This year"),
    "#/device/pump-x/yesterday": (
        "is not a time",
        "#/device/pump-x",
        "The device's latest telemetry",
    ),
}


def test_saved_reports_open_whatever_shape_their_filter_has(
    console_url: str, admin: dict[str, Any], run_scenario: Callable[..., dict[str, Any]]
) -> None:
    tok = login(console_url, admin)
    tag = f"QArep{admin['id']}"
    acct = call(console_url, "POST", "/api/v1/accounts", {"name": f"{tag} site"}, tok)
    for amount in (7000, 4500, 3000):
        call(
            console_url,
            "POST",
            "/api/v1/opportunities",
            {
                "name": f"{tag} {amount}",
                "account_id": acct["id"],
                "amount": amount,
                "currency": "EUR",
                "close_date": "2026-03-14",
            },
            tok,
        )
    mine = {"field": "name", "op": "contains", "value": tag}

    def saved(name: str, filt: dict[str, Any], bucket: str) -> int:
        definition = {
            "entity": "opportunities",
            "filter": filt,
            "group_by": [{"field": "close_date", "bucket": bucket}],
            "measures": [{"agg": "sum", "field": "amount"}],
            "chart": "bar",
        }
        body = {"name": name, "definition": definition}
        return int(call(console_url, "POST", "/api/v1/reports", body, tok)["id"])

    reports = {
        # one bare condition, as fieldmesh/demo_library.py saves its reports
        "bare": saved(f"{tag} bare", mine, "month"),
        # big or small deals of mine: a shape the builder does not edit, kept as saved
        "anyOf": saved(
            f"{tag} any of",
            {
                "and": [
                    mine,
                    {
                        "or": [
                            {"field": "amount", "op": "gte", "value": 6000},
                            {"field": "amount", "op": "lte", "value": 3500},
                        ]
                    },
                ]
            },
            "quarter",
        ),
    }
    r = run_scenario("qaReports", console_url, {"user": admin, "reports": reports})
    bare, any_of = r["out"]["bare"], r["out"]["anyOf"]
    # the bare condition is the builder's one filter row, and the report ran
    assert bare["error"] == ""
    assert bare["filters"] == [["name", "contains", tag]]
    assert bare["rows"] == [["Mar 2026", "EUR", "€14,500"]] and "Mar 2026" in bare["barLabels"]
    # the other shape is said to be kept, and it is applied (the middle deal left out)
    assert any_of["error"] == "" and any_of["filters"] == []
    assert "kept and applied as saved" in any_of["kept"]
    assert any_of["rows"] == [["Q1 2026", "EUR", "€10,000"]]
    assert r["errors"] == []


def test_an_admin_gives_a_new_user_a_password_in_the_console(
    console_url: str, admin: dict[str, Any], run_scenario: Callable[..., dict[str, Any]]
) -> None:
    tok = login(console_url, admin)
    email = f"new-{admin['id']}@example.test"
    user = call(
        console_url, "POST", "/api/v1/users", {"email": email, "name": "New", "role": "rep"}, tok
    )
    password = "a-long-enough-secret-7"
    r = run_scenario(
        "qaPassword", console_url, {"user": admin, "target": user["id"], "password": password}
    )
    assert r["tooShort"] == "must have at least 8 characters"
    assert r["cleared"] == "" and r["errors"] == []
    assert login(console_url, {"email": email, "password": password})


def test_a_time_zone_must_be_one_that_exists(console_url: str, admin: dict[str, Any]) -> None:
    tok = login(console_url, admin)
    body = {"email": f"tz-{admin['id']}@example.test", "name": "TZ", "role": "rep"}
    with pytest.raises(urllib.error.HTTPError) as e:
        call(console_url, "POST", "/api/v1/users", {**body, "timezone": "Mars/Olympus"}, tok)
    assert e.value.code == 422
    err = json.loads(e.value.read())["error"]
    assert err["field"] == "timezone" and "not a known time zone" in err["message"]
    user = call(console_url, "POST", "/api/v1/users", {**body, "timezone": "Europe/Berlin"}, tok)
    assert user["timezone"] == "Europe/Berlin"
