"""Ready-made KPIs: each computed in the database over the caller's records and a period,
with its definition; bad input answered 4xx."""

from __future__ import annotations

import urllib.error
import urllib.parse
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login
from tests.console.test_records_e2e import territory

JUNE = {"since": "2026-06-01T00:00:00Z", "until": "2026-07-01T00:00:00Z"}


def kpi(base: str, tok: str, key: str, **params: str) -> list[list[Any]]:
    out = call(base, "GET", f"/api/v1/kpis/{key}?{urllib.parse.urlencode(params)}", token=tok)
    return list(out["rows"])


@pytest.fixture
def june(test_settings: Settings) -> dict[str, Any]:
    """A territory's June: three work orders and three closed deals, one stalled deal."""
    tid = territory(test_settings.dsn)
    rep = make_user(test_settings.dsn, "rep", territory_id=tid)
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:

        def one(q: str, *p: Any) -> Any:
            row = conn.execute(q, p).fetchone()
            assert row is not None
            return row[0]

        a = one("INSERT INTO accounts (name, territory_id) VALUES ('KPI A', %s) RETURNING id", tid)
        b = one("INSERT INTO accounts (name, territory_id) VALUES ('KPI B', %s) RETURNING id", tid)
        for acct, prio, created, sla, done in (
            (b, "high", "2026-06-10", "2026-06-12", "2026-06-11"),  # met, fixed first time
            (a, "high", "2026-06-10", "2026-06-11", "2026-06-15"),  # missed, a repeat visit
            (a, "low", "2026-06-16", None, "2026-06-18"),  # the repeat visit
        ):
            conn.execute(
                "INSERT INTO work_orders (account_id, title, priority, status, created_at,"
                " sla_due_at, completed_at, territory_id)"
                " VALUES (%s, 'kpi', %s, 'done', %s, %s, %s, %s)",
                (acct, prio, created, sla, done, tid),
            )
        stage = {
            n: one("SELECT id FROM pipeline_stages WHERE name = %s", n)
            for n in ("Qualification", "Closed won", "Closed lost")
        }
        pipeline = one("SELECT pipeline_id FROM pipeline_stages WHERE id = %s", stage["Closed won"])
        for status, st, created, closed in (
            ("won", "Closed won", "2026-06-01", "2026-06-11"),
            ("lost", "Closed lost", "2026-06-02", "2026-06-15"),
            ("won", "Closed won", "2026-06-05", "2026-06-25"),
            ("open", "Qualification", "2026-05-01", None),
        ):
            conn.execute(
                "INSERT INTO opportunities (name, account_id, pipeline_id, stage_id, amount,"
                " currency, probability, status, owner_id, territory_id, created_at, closed_at)"
                " VALUES ('kpi', %s, %s, %s, 500, 'EUR', 10, %s, %s, %s, %s, %s)",
                (a, pipeline, stage[st], status, rep["id"], tid, created, closed),
            )
        conn.execute(
            "UPDATE opportunity_stage_history SET changed_at = o.created_at FROM opportunities o"
            " WHERE o.id = opportunity_id AND o.territory_id = %s",
            (tid,),
        )
        name = one("SELECT name FROM users WHERE id = %s", rep["id"])
    return {"rep": rep, "name": name}


def test_kpis_count_the_callers_records_over_the_period(
    console_url: str, admin: dict[str, Any], june: dict[str, Any]
) -> None:
    tok = login(console_url, june["rep"])
    listed = call(console_url, "GET", "/api/v1/kpis", token=tok)["items"]
    assert {k["key"] for k in listed} >= {
        "sla_attainment",
        "mttr",
        "first_time_fix_rate",
        "win_rate",
        "cycle_time",
        "time_in_stage",
        "stalled_deals",
    }
    assert all(k["definition"] and k["unit"] for k in listed)
    assert kpi(console_url, tok, "sla_attainment", **JUNE) == [["2026-06-01", 50.0, 2]]
    assert kpi(console_url, tok, "mttr", **JUNE) == [["high", 72.0, 2], ["low", 48.0, 1]]
    assert kpi(console_url, tok, "first_time_fix_rate", **JUNE) == [["2026-06-01", 66.7, 3]]
    name = june["name"]
    assert kpi(console_url, tok, "win_rate", **JUNE) == [[name, 66.7, 3]]
    assert kpi(console_url, tok, "cycle_time", **JUNE) == [[name, 15.0, 2]]
    assert kpi(console_url, tok, "stalled_deals") == [[name, "EUR", 1, 500.0]]
    # another period holds none of it
    assert (
        kpi(
            console_url, tok, "win_rate", since="2025-01-01T00:00:00Z", until="2025-02-01T00:00:00Z"
        )
        == []
    )


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/kpis/nope", {}),
        (
            "/api/v1/kpis/win_rate",
            {"since": "2026-07-01T00:00:00Z", "until": "2026-06-01T00:00:00Z"},
        ),
        ("/api/v1/kpis/win_rate", {"since": "yesterday"}),
        ("/api/v1/kpis/win_rate", {"since": "2026-06-01T00:00:00"}),
    ],
)
def test_bad_kpi_requests_are_4xx(
    console_url: str, admin: dict[str, Any], path: str, params: dict[str, str]
) -> None:
    tok = login(console_url, admin)
    with pytest.raises(urllib.error.HTTPError) as err:
        call(console_url, "GET", f"{path}?{urllib.parse.urlencode(params)}", token=tok)
    assert 400 <= err.value.code < 500


def test_the_kpi_page_shows_each_kpi_with_its_definition_and_lists_export_from_the_toolbar(
    console_url: str,
    admin: dict[str, Any],
    june: dict[str, Any],
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    tok = login(console_url, admin)
    call(console_url, "POST", "/api/v1/accounts", {"name": "Exportable KPI Ltd"}, tok)
    r = run_scenario("kpisExport", console_url, {"user": admin, "search": "Exportable KPI"})
    keys = {t["key"] for t in r["tiles"]}
    assert {"sla_attainment", "win_rate", "stalled_deals"} <= keys
    sla = next(t["text"] for t in r["tiles"] if t["key"] == "sla_attainment")
    assert "share completed by it" in sla
    assert r["files"] == {
        "xlsx": {"name": "accounts.xlsx", "magic": "PK\x03\x04"},
        "pdf": {"name": "accounts.pdf", "magic": "%PDF"},
    }
    # the list's shown columns, its score columns (churn risk, health) after them
    assert r["columns"] == "name,type,annual_revenue,owner_id,last_visit_at,churn_risk,health"
    assert r["exportError"] == "" and r["errors"] == [] and r["bad"] == []


def test_quota_attainment_per_rep_and_period_with_quotas_set_by_managers(
    console_url: str, admin: dict[str, Any], june: dict[str, Any], test_settings: Settings
) -> None:
    tok = login(console_url, admin)
    rep, name = june["rep"], june["name"]
    other = make_user(test_settings.dsn, "rep", territory_id=territory(test_settings.dsn))
    body = {"period_start": "2026-06-01", "period_end": "2026-07-01", "currency": "EUR"}
    call(console_url, "PUT", "/api/v1/quotas", {**body, "user_id": rep["id"], "amount": 2000}, tok)
    call(console_url, "PUT", "/api/v1/quotas", {**body, "user_id": other["id"], "amount": 9}, tok)
    # the same start and currency replaces the quota
    set_ = call(
        console_url, "PUT", "/api/v1/quotas", {**body, "user_id": rep["id"], "amount": 4000}, tok
    )
    assert set_["amount"] == 4000 and set_["user_name"] == name
    rep_tok = login(console_url, rep)
    # two deals of 500 EUR won in June: 25 % of 4,000; no open deal due in the rest of June
    assert kpi(console_url, rep_tok, "quota_attainment", **JUNE) == [
        [name, "EUR", "2026-06-01", 4000.0, 1000.0, 25.0, 0.0, 0.0]
    ]
    # a rep sees their own quota only, and may not set one
    mine = call(console_url, "GET", "/api/v1/quotas", token=rep_tok)["items"]
    assert [q["user_id"] for q in mine] == [rep["id"]]
    with pytest.raises(urllib.error.HTTPError) as err:
        call(
            console_url,
            "PUT",
            "/api/v1/quotas",
            {**body, "user_id": rep["id"], "amount": 1},
            rep_tok,
        )
    assert err.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as err:
        call(
            console_url,
            "PUT",
            "/api/v1/quotas",
            {**body, "period_end": "2026-05-01", "user_id": rep["id"], "amount": 1},
            tok,
        )
    assert err.value.code == 422


def test_managers_set_quotas_for_their_team_only_and_reps_are_offered_none(
    console_url: str, admin: dict[str, Any], june: dict[str, Any], test_settings: Settings
) -> None:
    rep = june["rep"]
    mgr = make_user(test_settings.dsn, "manager")
    stranger = make_user(test_settings.dsn, "rep")
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        conn.execute("UPDATE users SET manager_id = %s WHERE id = %s", (mgr["id"], rep["id"]))
    mtok, atok, rtok = login(console_url, mgr), login(console_url, admin), login(console_url, rep)
    offered = call(console_url, "GET", "/api/v1/quotas/assignable", token=mtok)["items"]
    assert {u["id"] for u in offered} == {mgr["id"], rep["id"]}
    assert call(console_url, "GET", "/api/v1/quotas/assignable", token=rtok)["items"] == []
    everyone = call(console_url, "GET", "/api/v1/quotas/assignable", token=atok)["items"]
    assert {rep["id"], mgr["id"], stranger["id"]} <= {u["id"] for u in everyone}
    body = {"period_start": "2026-06-01", "period_end": "2026-07-01", "currency": "EUR"}
    mine = call(
        console_url, "PUT", "/api/v1/quotas", {**body, "user_id": rep["id"], "amount": 5}, mtok
    )
    theirs = call(
        console_url, "PUT", "/api/v1/quotas", {**body, "user_id": stranger["id"], "amount": 5}, atok
    )
    # a manager cannot touch another team's quota (not even see it), nor a rep their own
    for tok, qid, code in ((mtok, theirs["id"], 404), (rtok, mine["id"], 403)):
        with pytest.raises(urllib.error.HTTPError) as err:
            call(console_url, "DELETE", f"/api/v1/quotas/{qid}", token=tok)
        assert err.value.code == code
    call(console_url, "DELETE", f"/api/v1/quotas/{mine['id']}", token=mtok)
    left = call(console_url, "GET", f"/api/v1/quotas?user_id={rep['id']}", token=atok)["items"]
    assert left == []


def test_the_quota_screen_sets_quotas_and_shows_attainment_by_role(
    console_url: str,
    june: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    rep, name = june["rep"], june["name"]
    mgr = make_user(test_settings.dsn, "manager")
    other = make_user(test_settings.dsn, "rep")
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE users SET manager_id = %s WHERE id = ANY(%s)",
            (mgr["id"], [rep["id"], other["id"]]),
        )
    r = run_scenario(
        "quotas",
        console_url,
        {
            "manager": mgr,
            "repUser": rep,
            "rep": rep["id"],
            "other": other["id"],
            "year": "2026",  # opened as #/quotas/2026: listed in any later year too
            "month": "2026-06",
        },
        timeout_s=300,
    )
    assert set(map(int, r["offered"][1:])) == {mgr["id"], rep["id"], other["id"]}
    assert r["offered"][0] == "all"
    assert "above zero" in r["amountError"]
    # Q2 2026: 4,000 EUR; the two 500 EUR deals won in June make 25 %
    who, period, quota, won, attainment, *_ = r["quarter"]
    assert (who, period) == (name, "Q2 2026")
    assert "4,000" in quota and "€" in quota and "1,000" in won and "25.0 %" in attainment
    # June for each of the three: the rep's 1,000 EUR made, the team's 1,000 of 3,000
    june_rows = [row for row in r["rows"] if row[1] == "June 2026"]
    assert len(june_rows) == 3
    assert next(row for row in june_rows if row[0] == name)[4].endswith("100.0 %")
    assert r["totals"][0][:2] == ["Team (3 reps)", "June 2026"] and "33.3 %" in r["totals"][0][4]
    assert other["id"] not in r["left"]
    assert r["repView"] == {"form": False, "users": [rep["id"]], "buttons": 0}
    assert r["errors"] == [] and r["bad"] == []
