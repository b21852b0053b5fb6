"""Reports API: grouped measures computed in the database under the caller's access, money
never added across currencies, names instead of ids, saved/shared reports, CSV export with
formula neutralisation, dashboards of tiles; bad definitions answered 4xx naming the field."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login
from tests.console.test_records_e2e import territory


def status_of(base: str, method: str, path: str, body: Any, tok: str) -> tuple[int, Any]:
    try:
        return 200, call(base, method, path, body, tok)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@pytest.fixture
def world(console_url: str, admin: dict[str, Any], test_settings: Settings) -> dict[str, Any]:
    mine, other = territory(test_settings.dsn), territory(test_settings.dsn)
    rep = make_user(test_settings.dsn, "rep", territory_id=mine)
    rep2 = make_user(test_settings.dsn, "rep", territory_id=other)
    tok = login(console_url, admin)
    tag = uuid.uuid4().hex[:6]
    a_mine = call(
        console_url,
        "POST",
        "/api/v1/accounts",
        {"name": f"=HYPERLINK({tag})", "territory_id": mine},
        tok,
    )
    a_other = call(
        console_url,
        "POST",
        "/api/v1/accounts",
        {"name": f"Other {tag}", "territory_id": other},
        tok,
    )
    for amount, cur, acct in (
        (1000, "EUR", a_mine),
        (2500, "EUR", a_mine),
        (700, "USD", a_mine),
        (9999, "EUR", a_other),
    ):
        call(
            console_url,
            "POST",
            "/api/v1/opportunities",
            {"name": f"Deal {tag}", "account_id": acct["id"], "amount": amount, "currency": cur},
            tok,
        )
    flt = {"field": "name", "op": "eq", "value": f"Deal {tag}"}
    return {"rep": rep, "rep2": rep2, "tok": tok, "tag": tag, "filter": flt, "account": a_mine}


def _deals(world: dict[str, Any], **definition: Any) -> dict[str, Any]:
    """A report of the world's deals (its opportunities named `Deal <tag>`)."""
    return {"entity": "opportunities", "filter": world["filter"], **definition}


# the world's deals per account: what the saved, shared and exported reports hold
BY_ACCOUNT = {
    "group_by": [{"field": "account_id"}],
    "measures": [{"agg": "sum", "field": "amount"}],
}


def _run(console_url: str, definition: dict[str, Any], tok: str) -> dict[str, Any]:
    out: dict[str, Any] = call(console_url, "POST", "/api/v1/reports/run", definition, tok)
    return out


def test_a_grouped_report_counts_only_visible_rows_per_currency_with_names(
    console_url: str, world: dict[str, Any]
) -> None:
    rep_tok = login(console_url, world["rep"])
    definition = _deals(
        world,
        group_by=[{"field": "account_id"}],
        measures=[{"agg": "count"}, {"agg": "sum", "field": "amount"}],
        chart="bar",
    )
    r = _run(console_url, definition, rep_tok)
    assert [c["kind"] for c in r["columns"]] == ["group", "currency", "measure", "measure"]
    assert r["columns"][3]["money"] is True
    rows = sorted(r["rows"], key=lambda x: x[1])
    name = f"=HYPERLINK({world['tag']})"
    assert rows == [[name, "EUR", 2, 3500.0], [name, "USD", 1, 700.0]]  # not the other territory's
    everything = _run(console_url, definition, world["tok"])
    assert sum(x[2] for x in everything["rows"]) == 4


def _one_month_bucket(r: dict[str, Any]) -> None:
    # one group, named by the first day of its month (YYYY-MM-DD)
    assert len(r["rows"]) == 1 and r["rows"][0][0][:8] == r["rows"][0][0][:7] + "-"


def _plain_columns_with_their_currency(r: dict[str, Any]) -> None:
    assert [c["key"] for c in r["columns"]] == ["name", "amount", "account_id", "currency"]
    assert len(r["rows"]) == 2 and r["truncated"] is True


@pytest.mark.parametrize(
    ("definition", "check"),
    [
        (
            {
                "group_by": [{"field": "created_at", "bucket": "month"}],
                "measures": [{"agg": "avg", "field": "probability"}],
            },
            _one_month_bucket,
        ),
        (
            {"columns": ["name", "amount", "account_id"], "limit": 2},
            _plain_columns_with_their_currency,
        ),
    ],
    ids=["time-buckets", "plain-columns"],
)
def test_time_buckets_and_plain_columns(
    console_url: str,
    world: dict[str, Any],
    definition: dict[str, Any],
    check: Callable[[dict[str, Any]], None],
) -> None:
    check(_run(console_url, _deals(world, **definition), world["tok"]))


def test_stages_and_other_ordinal_groups_read_in_their_order_not_by_size_or_name(
    console_url: str, world: dict[str, Any], test_settings: Settings
) -> None:
    tok, tag, acct = world["tok"], world["tag"], world["account"]["id"]
    with psycopg.connect(test_settings.dsn) as conn:
        stages: dict[str, int] = dict(
            conn.execute(
                "SELECT s.name, s.id FROM pipeline_stages s JOIN pipelines p ON p.id ="
                " s.pipeline_id WHERE p.is_default"
            ).fetchall()
        )
    # by size: Negotiation first; by name: Closed won first; in the pipeline: Qualification
    for stage, n in (("Negotiation", 3), ("Qualification", 1), ("Proposal", 2), ("Closed won", 1)):
        for _ in range(n):
            deal = {"name": f"Staged {tag}", "account_id": acct, "stage_id": stages[stage]}
            call(console_url, "POST", "/api/v1/opportunities", deal, tok)
    by_stage = call(
        console_url,
        "POST",
        "/api/v1/reports/run",
        {
            "entity": "opportunities",
            "filter": {"field": "name", "op": "eq", "value": f"Staged {tag}"},
            "group_by": [{"field": "stage_id"}],
            "measures": [{"agg": "count"}],
            "chart": "bar",
        },
        tok,
    )
    assert by_stage["rows"] == [
        ["Qualification", 1],
        ["Proposal", 2],
        ["Negotiation", 3],
        ["Closed won", 1],
    ]
    # a priority reads low to urgent, a status along its life cycle, the second grouping too
    for priority, status, n in (("urgent", "new", 2), ("low", "scheduled", 1), ("high", "new", 1)):
        for _ in range(n):
            wo = {"title": f"Ranked {tag}", "account_id": acct, "priority": priority}
            call(console_url, "POST", "/api/v1/work_orders", {**wo, "status": status}, tok)
    by_priority = call(
        console_url,
        "POST",
        "/api/v1/reports/run",
        {
            "entity": "work_orders",
            "filter": {"field": "title", "op": "eq", "value": f"Ranked {tag}"},
            "group_by": [{"field": "status"}, {"field": "priority"}],
            "measures": [{"agg": "count"}],
        },
        tok,
    )
    assert by_priority["rows"] == [
        ["new", "high", 1],
        ["new", "urgent", 2],
        ["scheduled", "low", 1],
    ]


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ({"entity": "opportunities", "group_by": [{"field": "nope"}]}, "group_by[0]"),
        ({"entity": "opportunities", "measures": [{"agg": "sum", "field": "name"}]}, "measures[0]"),
        (
            {"entity": "opportunities", "group_by": [{"field": "status", "bucket": "day"}]},
            "group_by[0]",
        ),
        ({"entity": "opportunities", "group_by": [{"field": "close_date"}]}, "group_by[0]"),
        (
            {"entity": "opportunities", "filter": {"field": "amount", "op": "zz", "value": 1}},
            "filter",
        ),
        ({"entity": "users"}, None),
    ],
)
def test_bad_definitions_are_4xx(
    console_url: str, world: dict[str, Any], definition: dict[str, Any], field: str | None
) -> None:
    code, body = status_of(console_url, "POST", "/api/v1/reports/run", definition, world["tok"])
    assert 400 <= code < 500, body
    if field:
        assert body["error"]["field"] == field, body


def test_saved_reports_are_private_until_shared_and_export_csv_safely(
    console_url: str, world: dict[str, Any]
) -> None:
    rep_tok, rep2_tok = login(console_url, world["rep"]), login(console_url, world["rep2"])
    definition = _deals(world, **BY_ACCOUNT)
    saved = call(
        console_url, "POST", "/api/v1/reports", {"name": "Mine", "definition": definition}, rep_tok
    )
    assert status_of(console_url, "GET", f"/api/v1/reports/{saved['id']}", None, rep2_tok)[0] == 404
    call(console_url, "PATCH", f"/api/v1/reports/{saved['id']}", {"shared": True}, rep_tok)
    assert (
        call(console_url, "GET", f"/api/v1/reports/{saved['id']}", token=rep2_tok)["shared"] is True
    )
    assert (
        status_of(console_url, "PATCH", f"/api/v1/reports/{saved['id']}", {"name": "x"}, rep2_tok)[
            0
        ]
        == 403
    )
    # the other rep runs the shared report under their own access: the rows are theirs only
    theirs = call(console_url, "GET", f"/api/v1/reports/{saved['id']}/result", token=rep2_tok)
    assert [r[0] for r in theirs["rows"]] == [f"Other {world['tag']}"]
    req = urllib.request.Request(
        f"{console_url}/api/v1/reports/{saved['id']}/export.csv",
        headers={"Authorization": f"Bearer {rep_tok}"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/csv")
        lines = r.read().decode().splitlines()
    assert lines[0] == "Account,Currency,Sum of amount"
    assert sorted(lines[1:]) == [
        f"'=HYPERLINK({world['tag']}),EUR,3500.0",
        f"'=HYPERLINK({world['tag']}),USD,700.0",
    ]
    # dashboards: tiles must be reports the caller may open
    private = call(
        console_url,
        "POST",
        "/api/v1/reports",
        {"name": "Private", "definition": definition},
        rep2_tok,
    )
    code, body = status_of(
        console_url,
        "POST",
        "/api/v1/dashboards",
        {"name": "D", "tiles": [{"report_id": private["id"]}]},
        rep_tok,
    )
    assert code == 422 and body["error"]["field"] == "tiles[0].report_id"
    dash = call(
        console_url,
        "POST",
        "/api/v1/dashboards",
        {"name": "D", "tiles": [{"report_id": saved["id"], "width": 2}]},
        rep_tok,
    )
    assert dash["tiles"] == [{"report_id": saved["id"], "width": 2}] and dash["mine"] is True
    assert (
        status_of(console_url, "GET", f"/api/v1/dashboards/{dash['id']}", None, rep2_tok)[0] == 404
    )
    assert (
        status_of(console_url, "DELETE", f"/api/v1/reports/{saved['id']}", None, rep2_tok)[0] == 403
    )


def test_a_manager_builds_a_report_exports_it_and_pins_it_to_a_dashboard(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    tid = territory(test_settings.dsn)
    manager = make_user(test_settings.dsn, "manager", territory_id=tid)
    tok = login(console_url, admin)
    tag = uuid.uuid4().hex[:6]
    acct = call(
        console_url, "POST", "/api/v1/accounts", {"name": f"Acme {tag}", "territory_id": tid}, tok
    )
    for amount in (1200, 800):
        call(
            console_url,
            "POST",
            "/api/v1/opportunities",
            {"name": f"Deal {tag}", "account_id": acct["id"], "amount": amount, "currency": "EUR"},
            tok,
        )
    r = run_scenario(
        "report",
        console_url,
        {
            "user": manager,
            "dealName": f"Deal {tag}",
            "reportName": f"Deals {tag}",
            "dashboardName": f"Board {tag}",
        },
    )
    assert r["table"][0] == ["Account", "Currency", "Count", "Sum of amount"], r["table"]
    assert (
        r["table"][1][:3] == [f"Acme {tag}", "EUR", "2"]
        and "€" in r["table"][1][3]
        and "2,000" in r["table"][1][3]
    )
    assert any("2,000 EUR" in b for b in r["bars"]), r["bars"]
    assert r["csv"].splitlines() == [
        "Account,Currency,Count,Sum of amount",
        f"Acme {tag},EUR,2,2000.0",
    ]
    assert r["xlsx"] == {"name": "report.xlsx", "magic": "PK\x03\x04"}
    assert r["pdf"] == {"name": "report.pdf", "magic": "%PDF"}
    assert r["tileTitle"] == f"Deals {tag}" and r["tileRows"] == 1
    saved = call(console_url, "GET", f"/api/v1/reports/{r['reportId']}", token=tok)
    assert saved["shared"] is True and saved["owner_id"] == manager["id"]
    # a dashboard without a name is refused beside the name, in words, and none is made
    # under a name the user never gave ("My dashboard", "Dashboard")
    for refused in (r["pinNameless"], r["createNameless"]):
        assert refused["error"] == "Name must not be empty" and refused["invalid"] == "true"
    assert r["pinNameless"]["focus"] == "pin-new-name"
    assert r["createNameless"]["focus"] == "new-dashboard-name"
    assert r["dashboards"] == [f"Board {tag}"]
    assert r["errors"] == []
    assert r["bad"] == ["422 POST /api/v1/dashboards"] * 2  # the two refusals


def test_the_builder_groups_records_of_an_account_by_segment_name(
    console_url: str,
    world: dict[str, Any],
    admin: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    segment = f"loyal {world['tag']}"
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO insights_account_value (account_id, yearly_revenue, retention, clv,"
            " segment) VALUES (%s, 0, 0.5, 0, %s)",
            (world["account"]["id"], segment),
        )
    try:
        r = run_scenario("segmentReport", console_url, {"user": admin})
    finally:
        with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM insights_account_value WHERE account_id = %s",
                (world["account"]["id"],),
            )
    assert "Customer segment" in r["offered"]
    assert r["head"][0] == "Segment" and r["error"] == ""
    assert segment in r["groups"]  # the name, never an id
    assert not any(g.isdigit() for g in r["groups"])
    assert r["errors"] == [] and r["bad"] == []


def test_every_ready_made_report_runs(
    console_url: str, admin: dict[str, Any], run_scenario: Callable[..., dict[str, Any]]
) -> None:
    r = run_scenario("templates", console_url, {"user": admin})
    assert len(r["out"]) >= 8 and set(r["out"].values()) == {"ok"}, r["out"]
    assert r["errors"] == [] and r["bad"] == []


def test_xlsx_export_writes_text_as_text_and_numbers_as_numbers(
    console_url: str, world: dict[str, Any]
) -> None:
    definition = _deals(world, **BY_ACCOUNT)
    req = urllib.request.Request(
        f"{console_url}/api/v1/reports/export.xlsx",
        data=json.dumps(definition).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {world['tok']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"].startswith("application/vnd.openxmlformats")
        data = r.read()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        strings = z.read("xl/sharedStrings.xml").decode()
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    # the account named like a formula is a string cell, never a formula
    assert f"=HYPERLINK({world['tag']})" in strings and "<f>" not in sheet
    assert "<v>3500</v>" in sheet and "<v>9999</v>" in sheet


def test_a_dashboard_may_read_a_recent_result_and_refresh_runs_the_report_again(
    console_url: str, admin: dict[str, Any], test_settings: Settings
) -> None:
    tok = login(console_url, admin)
    tag = uuid.uuid4().hex[:6]
    call(console_url, "POST", "/api/v1/accounts", {"name": f"Cached {tag} 1"}, tok)
    definition = {
        "entity": "accounts",
        "filter": {"field": "name", "op": "contains", "value": f"Cached {tag}"},
        "measures": [{"agg": "count"}],
    }
    saved = call(
        console_url, "POST", "/api/v1/reports", {"name": f"C {tag}", "definition": definition}, tok
    )
    result = f"/api/v1/reports/{saved['id']}/result"
    first = call(console_url, "GET", f"{result}?max_age_s=600", token=tok)
    assert first["rows"] == [[1]] and first["as_of"]
    call(console_url, "POST", "/api/v1/accounts", {"name": f"Cached {tag} 2"}, tok)
    # within the age asked for: the earlier result, saying when it was computed
    again = call(console_url, "GET", f"{result}?max_age_s=600", token=tok)
    assert again["rows"] == [[1]] and again["as_of"] == first["as_of"]
    # run now (the refresh button): the new account counts
    fresh = call(console_url, "GET", result, token=tok)
    assert fresh["rows"] == [[2]] and fresh["as_of"] > first["as_of"]
    # an edited definition never reads the old result
    call(
        console_url,
        "PATCH",
        f"/api/v1/reports/{saved['id']}",
        {
            "definition": {
                **definition,
                "filter": {"field": "name", "op": "contains", "value": f"Cached {tag} 2"},
            }
        },
        tok,
    )
    assert call(console_url, "GET", f"{result}?max_age_s=600", token=tok)["rows"] == [[1]]
    # another user of a shared report gets their own rows, never the admin's result
    call(console_url, "PATCH", f"/api/v1/reports/{saved['id']}", {"shared": True}, tok)
    rep = login(
        console_url, make_user(test_settings.dsn, "rep", territory_id=territory(test_settings.dsn))
    )
    assert call(console_url, "GET", f"{result}?max_age_s=600", token=rep)["rows"] != [[1]]
