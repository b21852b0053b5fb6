"""The console's main navigation: grouped in sections, a sidebar at 1440 px and a keyboard
menu at 390 px, offering each role only pages the server answers for it, and the pages of
their own it links to (the inbox, the workflow builder) open signed in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_records_e2e import territory

EVERYONE = {
    "#/accounts",
    "#/contacts",
    "#/leads",
    "#/opportunities",
    "#/pipeline",
    "#/activities",
    "#/calendar",
    "#/quotas",
    "#/workorders",
    "#/dispatch",
    "#/alerts",
    "#/kb",
    "#/map",
    "#/fleet",
    "#/fieldwork",
    "#/reports",
    "#/dashboards",
    "#/kpis",
    "#/analytics",
    "#/forecast",
    "#/segments",
    "#/assistant",
    "/engage/inbox/",
}
WRITERS = {"/console/rep/", "#/import", "/automation/builder/"}
OFFERED = {
    "admin": EVERYONE | WRITERS | {"#/users", "#/territories", "#/models"},
    "manager": EVERYONE | WRITERS | {"#/users", "#/territories", "#/models"},
    "rep": EVERYONE | WRITERS,
    "viewer": EVERYONE,
}


@pytest.mark.parametrize("role", ["admin", "manager", "rep", "viewer"])
def test_the_navigation_offers_each_role_only_pages_the_server_answers(
    console_url: str,
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
    role: str,
) -> None:
    user = make_user(test_settings.dsn, role, territory_id=territory(test_settings.dsn))
    r = run_scenario("nav", console_url, {"user": user}, timeout_s=400)
    assert set(r["links"]) == OFFERED[role]
    assert r["links"][0] == "#/accounts"
    sections = ["Sales", "Service", "Field", "Insights", "Admin"]
    assert r["sections"] == (sections if role != "viewer" else sections[:4])
    # no page the role is offered answers 401/403, and each marks its link as current
    assert {k: v["bad"] for k, v in r["refused"].items() if v["bad"]} == {}
    assert all(v["current"] for v in r["refused"].values())
    # the inbox and the workflow builder open signed in (the inbox was sent back to the
    # console: it only knew the session cookie, which the console does not use)
    others = {"/engage/inbox/"} | ({"/automation/builder/"} if role != "viewer" else set())
    assert {k: (v["ready"], v["path"]) for k, v in r["pages"].items()} == {
        k: (True, k) for k in others
    }, r["pages"]
    # 1440 px: a sidebar on the left under a one-line header
    assert r["box"]["left"] == 0 and 150 <= r["box"]["width"] <= 240
    assert r["headerHeight"] < 70
    # 390 px: the menu is closed, opens from the keyboard on its first link, Tab walks the
    # links, Escape closes it and gives the focus back; nothing scrolls sideways
    ph = r["phone"]
    assert ph["closed"] == 0 and ph["expanded"] == "true" and ph["openHeight"] > 0
    assert ph["focused"] == "#/accounts" and ph["next"] == "#/contacts"
    assert ph["afterEscape"] == {"expanded": "false", "focus": "nav-toggle"}
    assert ph["overflow"] <= 0
    # the header in two rows (it took four, 170 px), every control on the screen
    assert ph["header"]["height"] <= 100 and ph["header"]["outside"] == [], ph["header"]
    assert r["errors"] == []
