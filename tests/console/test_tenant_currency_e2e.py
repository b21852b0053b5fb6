"""The tenant's default currency in the console: an admin sets EUR on the settings page (a
refused code explained on the field first), and the New account form preselects EUR."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login


@pytest.fixture
def usd_again(test_settings: Settings) -> Iterator[None]:
    """The session's database is shared: USD before (what a new tenant has) and after."""
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        conn.execute("UPDATE tenant_settings SET default_currency = 'USD'")
        yield
        conn.execute("UPDATE tenant_settings SET default_currency = 'USD'")


def test_an_admin_sets_eur_and_new_accounts_preselect_it(
    console_url: str,
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
    usd_again: None,
) -> None:
    admin = make_user(test_settings.dsn, "admin")
    rep = make_user(test_settings.dsn, "rep")
    res = run_scenario("currency", console_url, {"admin": admin, "rep": rep})
    assert res["errors"] == [], res
    # the one refused request is the bad code's
    assert res["bad"] == ["422 PUT /api/v1/tenant/settings"], res["bad"]
    out = res["out"]
    assert out["before"] == "USD"
    assert "upper-case" in out["badError"] and out["badInvalid"] == "true", out
    assert "EUR" in out["toast"] and out["errorAfter"] == ""
    assert out["newAccount"] == "EUR"
    assert out["newDeal"] == "EUR"
    assert out["newAccountAfterReload"] == "EUR"
    assert "€" in out["money"], out["money"]
    assert out["repSees"] == "EUR" and out["repDisabled"] and not out["repSave"]
    # and what the form preselects is what the API stores for a record without a currency
    tok = login(console_url, admin)
    made = call(console_url, "POST", "/api/v1/accounts", {"name": "Euro Works"}, tok)
    assert made["currency"] == "EUR"
