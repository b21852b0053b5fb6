"""Accessibility (axe-core in headless Chromium): no serious or critical violation on the
CRM screens, at 1440 and at 390 px wide, and no sideways scrolling on a phone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login


def test_the_crm_screens_have_no_serious_accessibility_violations(
    console_url: str,
    test_settings: Settings,
    admin: dict[str, Any],
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    tok = login(console_url, admin)
    acct = call(
        console_url, "POST", "/api/v1/accounts", {"name": "Axe SA", "type": "customer"}, tok
    )
    call(
        console_url,
        "POST",
        "/api/v1/opportunities",
        {"name": "Axe deal", "account_id": acct["id"], "amount": 5000, "currency": "EUR"},
        tok,
    )
    # reps, so the dispatch board has lanes enough to scroll sideways on a phone
    for _ in range(3):
        make_user(test_settings.dsn, "rep")
    # a name of 300 characters and no space to break at: it wraps, the page keeps its width
    one_word = call(console_url, "POST", "/api/v1/accounts", {"name": "W" * 300}, tok)
    lead = call(
        console_url, "POST", "/api/v1/leads", {"last_name": "Axe", "company": "Axe Co"}, tok
    )
    # rows for the tables that scroll in their own box (this month's activities, articles)
    call(
        console_url,
        "POST",
        "/api/v1/activities",
        {
            "type": "call",
            "subject": "Axe call with a rather long subject",
            "account_id": acct["id"],
        },
        tok,
    )
    call(
        console_url,
        "POST",
        "/api/v1/assistant/articles",
        {"title": "Axe article", "body": "How to reset the unit.", "audience": "internal"},
        tok,
    )
    # a saved report, so the reports page lists one (its table scrolls in a box on a phone)
    call(
        console_url,
        "POST",
        "/api/v1/reports",
        {
            "name": "Axe accounts by type and a name long enough to wrap",
            "definition": {
                "entity": "accounts",
                "group_by": [{"field": "type"}],
                "measures": [{"agg": "count"}],
            },
        },
        tok,
    )
    pages = [
        "#/accounts",
        f"#/r/accounts/{acct['id']}",
        f"#/r/accounts/{one_word['id']}",
        f"#/r/leads/{lead['id']}",
        "#/new/contacts",
        f"#/new/assets/account_id={acct['id']}",
        "#/opportunities",
        "#/pipeline",
        "#/activities",
        "#/reports",
        "#/report/new",
        "#/workorders",
        "#/kpis",
        "#/quotas",
        "#/forecast",
        "#/kb",
        "#/kb/new",
        "#/assistant",
        "#/settings",
        "#/models",
        # the resources' day is a 900 px timeline: it scrolls in its box, not the page
        "#/calendar/resources/2026-01-05",
        "#/calendar/month/2026-01-05",
        "#/dispatch/2026-01-05",
    ]
    r = run_scenario("a11y", console_url, {"user": admin, "pages": pages}, timeout_s=400)["out"]
    violations = {k: v["found"] for k, v in r.items() if isinstance(v, dict) and v["found"]}
    assert violations == {}
    wide = {k: v["overflow"] for k, v in r.items() if k.startswith("phone #") and v["overflow"] > 0}
    assert wide == {}
    pages_boxes = {k: v["boxes"] for k, v in r.items() if isinstance(v, dict) and v.get("boxes")}
    not_regions = {k: [b["id"] for b in bs if not b["region"]] for k, bs in pages_boxes.items()}
    assert {k: v for k, v in not_regions.items() if v} == {}
    # the boxes were there, and at 390 px at least one table was wider than the phone
    assert {
        "phone #/activities",
        "phone #/kb",
        "phone #/quotas",
        "phone #/reports",
        "phone #/calendar/resources/2026-01-05",
    } <= set(pages_boxes)
    assert any(b["wide"] for k, bs in pages_boxes.items() if k.startswith("phone") for b in bs)
