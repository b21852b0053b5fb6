"""List exports: the rows a list shows (search, filter, sort, columns) under the caller's
access, as XLSX or CSV, references as names; bad input answered 4xx."""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from typing import Any

import psycopg
import pytest

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login
from tests.console.test_records_e2e import territory


def fetch(base: str, tok: str, path: str, **params: str) -> tuple[str, bytes]:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {tok}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return str(r.headers["Content-Type"]), r.read()


def xlsx_rows(data: bytes) -> list[list[str]]:
    """The sheet's cells as text, row by row (inline strings and numbers)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    rows = []
    for row in re.findall(r"<row [^>]*>(.*?)</row>", sheet):
        rows.append(
            [
                (t or v).replace("&amp;", "&").replace("&lt;", "<")
                for t, v in re.findall(r"<c [^>]*>(?:<is><t[^>]*>(.*?)</t></is>|<v>(.*?)</v>)", row)
            ]
        )
    return rows


def test_list_exports_hold_the_filtered_rows_the_caller_may_see_with_names(
    console_url: str, admin: dict[str, Any], test_settings: Settings
) -> None:
    mine, other = territory(test_settings.dsn), territory(test_settings.dsn)
    rep = make_user(test_settings.dsn, "rep", territory_id=mine)
    tok = login(console_url, admin)
    tag = uuid.uuid4().hex[:6]
    for i, terr in enumerate((mine, mine, other)):
        call(
            console_url,
            "POST",
            "/api/v1/contacts",
            {
                "first_name": f"=cmd{i}",
                "last_name": f"Exported{tag}",
                "email": f"e{i}{tag}@x.test",
                "territory_id": terr,
            },
            tok,
        )
    rep_tok = login(console_url, rep)
    ctype, data = fetch(
        console_url,
        rep_tok,
        "/api/v1/list_exports/contacts.xlsx",
        q=f"Exported{tag}",
        sort="-first_name",
        columns="first_name,email,territory_id",
    )
    assert ctype.startswith("application/vnd.openxmlformats")
    rows = xlsx_rows(data)
    assert rows[0] == ["First name", "Email", "Territory"]
    # only the rep's territory, in the list's sort order, the territory by name not id
    terr_name = call(console_url, "GET", f"/api/v1/territories/{mine}", token=tok)["name"]
    assert rows[1:] == [
        ["=cmd1", f"e1{tag}@x.test", terr_name],
        ["=cmd0", f"e0{tag}@x.test", terr_name],
    ]
    # CSV: the same rows, formula-like text neutralised; the admin sees all three
    ctype, data = fetch(
        console_url,
        tok,
        "/api/v1/list_exports/contacts.csv",
        q=f"Exported{tag}",
        filter=json.dumps({"field": "email", "op": "contains", "value": tag}),
        columns="first_name,email",
        sort="email",
    )
    assert ctype.startswith("text/csv")
    assert list(csv.reader(io.StringIO(data.decode()))) == [
        ["First name", "Email"],
        *[[f"'=cmd{i}", f"e{i}{tag}@x.test"] for i in range(3)],
    ]


def _store_scores(dsn: str, rows: list[tuple[str, int, str, float | None, int]]) -> None:
    """What the insights models store once trained (written here: no model in this world)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for entity, rid, model, prob, score in rows:
            conn.execute(
                "INSERT INTO insights_score (entity, record_id, model, model_version, probability,"
                " score) VALUES (%s, %s, %s, 'v-export', %s, %s) ON CONFLICT (entity, record_id,"
                " model) DO UPDATE SET probability = excluded.probability, score = excluded.score",
                (entity, rid, model, prob, score),
            )


def test_list_exports_carry_the_lists_score_columns_of_records_the_caller_may_see(
    console_url: str, admin: dict[str, Any], test_settings: Settings
) -> None:
    mine, other = territory(test_settings.dsn), territory(test_settings.dsn)
    rep = make_user(test_settings.dsn, "rep", territory_id=mine)
    tok, rep_tok = login(console_url, admin), login(console_url, rep)
    tag = uuid.uuid4().hex[:6]
    leads = [
        call(
            console_url,
            "POST",
            "/api/v1/leads",
            {"last_name": f"{name} {tag}", "company": "Scored Co", "territory_id": terr},
            tok,
        )["id"]
        for name, terr in (("Able", mine), ("Baker", mine), ("Charlie", other))
    ]
    _store_scores(
        test_settings.dsn,
        [("leads", leads[0], "lead-score", 0.71, 71), ("leads", leads[2], "lead-score", 0.9, 90)],
    )
    # the rep: their territory's leads only, the score as the list shows it, blank unscored
    _, data = fetch(
        console_url,
        rep_tok,
        "/api/v1/list_exports/leads.csv",
        q=tag,
        sort="last_name",
        columns="last_name,score",
    )
    assert list(csv.reader(io.StringIO(data.decode()))) == [
        ["Last name", "Score"],
        [f"Able {tag}", "71"],
        [f"Baker {tag}", ""],
    ]
    # every column by default: the fields, then the score; the admin sees all three
    _, data = fetch(console_url, tok, "/api/v1/list_exports/leads.csv", q=tag, sort="last_name")
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert "Last name" in rows[0] and rows[0][-1] == "Score"
    assert [r[-1] for r in rows[1:]] == ["71", "", "90"]

    # deals: the win probability in whole percent; accounts: churn risk and health
    acct = call(
        console_url, "POST", "/api/v1/accounts", {"name": f"Risky {tag}", "territory_id": mine}, tok
    )["id"]
    deal = {"name": f"Deal {tag}", "account_id": acct, "amount": 10, "currency": "EUR"}
    opp = call(console_url, "POST", "/api/v1/opportunities", deal, tok)["id"]
    _store_scores(
        test_settings.dsn,
        [
            ("opportunities", opp, "opportunity-win", 0.635, 63),
            ("accounts", acct, "account-churn", 0.125, 12),
            ("accounts", acct, "account-health", None, 58),
        ],
    )
    _, data = fetch(
        console_url, rep_tok, "/api/v1/list_exports/opportunities.xlsx", q=tag,
        columns="name,win_pct",
    )  # fmt: skip
    assert xlsx_rows(data) == [["Name", "Win %"], [f"Deal {tag}", "64"]]
    _, data = fetch(
        console_url, rep_tok, "/api/v1/list_exports/accounts.csv", q=tag,
        columns="name,churn_risk,health",
    )  # fmt: skip
    assert list(csv.reader(io.StringIO(data.decode()))) == [
        ["Name", "Churn risk", "Health"],
        [f"Risky {tag}", "13", "58"],
    ]
    # a score column belongs to its entity's list only
    with pytest.raises(urllib.error.HTTPError) as err:
        fetch(console_url, tok, "/api/v1/list_exports/contacts.csv", columns="last_name,score")
    assert err.value.code == 422


def test_a_list_and_a_saved_report_print_as_pdf(console_url: str, admin: dict[str, Any]) -> None:
    tok = login(console_url, admin)
    tag = uuid.uuid4().hex[:6]
    for i in range(3):
        call(console_url, "POST", "/api/v1/accounts", {"name": f"Printed {tag} {i}"}, tok)
    ctype, data = fetch(
        console_url, tok, "/api/v1/list_exports/accounts.pdf", q=f"Printed {tag}", columns="name"
    )
    assert ctype == "application/pdf" and data.startswith(b"%PDF") and b"/Type /Page" in data
    saved = call(
        console_url,
        "POST",
        "/api/v1/reports",
        {
            "name": f"Printed {tag}",
            "definition": {
                "entity": "accounts",
                "filter": {"field": "name", "op": "contains", "value": tag},
                "group_by": [{"field": "type"}],
                "measures": [{"agg": "count"}],
            },
        },
        tok,
    )
    ctype, data = fetch(console_url, tok, f"/api/v1/reports/{saved['id']}/export.pdf")
    assert ctype == "application/pdf" and data.startswith(b"%PDF")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/list_exports/nope.xlsx", {}),
        ("/api/v1/list_exports/contacts.pdfx", {}),
        ("/api/v1/list_exports/contacts.pdf", {"columns": "first_name,nope"}),
        ("/api/v1/list_exports/contacts.xlsx", {"columns": "password_hash"}),
        ("/api/v1/list_exports/contacts.csv", {"filter": "{bad"}),
        ("/api/v1/list_exports/contacts.csv", {"sort": "nope"}),
    ],
)
def test_bad_list_export_requests_are_4xx(
    console_url: str, admin: dict[str, Any], path: str, params: dict[str, str]
) -> None:
    tok = login(console_url, admin)
    with pytest.raises(urllib.error.HTTPError) as err:
        fetch(console_url, tok, path, **params)
    assert 400 <= err.value.code < 500
    assert json.loads(err.value.read())["error"]["message"]
