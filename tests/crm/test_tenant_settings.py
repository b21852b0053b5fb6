"""The tenant's default currency (crm.tenant): anyone signed in reads it, admins change it to
an ISO 4217 code, and a record created without a currency (through the API or a CSV import)
is in it rather than in USD."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.crm.conftest import World
from tests.crm.test_csv import _import


@pytest.fixture
def restore_currency(db_dsn: str) -> Iterator[None]:
    """The session's database is shared by every test: put its default back afterwards."""
    with psycopg.connect(db_dsn) as conn:
        row = conn.execute("SELECT default_currency FROM tenant_settings").fetchone()
    assert row is not None
    yield
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE tenant_settings SET default_currency = %s", (row[0],))


def _set(world: World, code: str) -> None:
    r = world.api("admin").put("/tenant/settings", {"default_currency": code})
    assert r.status_code == 200, r.text
    assert r.json()["default_currency"] == code


def _created(world: World, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    r = world.api("admin").post(f"/{entity}", body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def test_anyone_signed_in_reads_the_default_and_only_admins_change_it(
    world: World, restore_currency: None
) -> None:
    got = world.api("viewer").get("/tenant/settings")
    assert got.status_code == 200, got.text
    before = got.json()
    assert {"EUR", "USD", "JPY"} <= set(before["currencies"])
    assert before["currencies"] == sorted(before["currencies"])
    anonymous = world.api("admin").session.get(
        world.url + "/api/v1/tenant/settings", headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401
    for who in ("viewer", "rep1", "manager"):
        r = world.api(who).put("/tenant/settings", {"default_currency": "EUR"})
        assert r.status_code == 403, (who, r.text)
    unchanged = world.api("rep1").get("/tenant/settings").json()
    assert unchanged["default_currency"] == before["default_currency"]
    _set(world, "EUR")
    after = world.api("rep2").get("/tenant/settings").json()
    assert after["default_currency"] == "EUR"
    assert after["updated_by"] == world.users["admin"]


@pytest.mark.parametrize(
    "code",
    ["eur", "EUX", "EURO", "", "E1R", "XXX", "XAU", "HRK", "€"],
)
def test_a_code_that_is_no_iso_4217_currency_is_a_422_naming_the_field(
    world: World, restore_currency: None, code: str
) -> None:
    _set(world, "CHF")
    r = world.api("admin").put("/tenant/settings", {"default_currency": code})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == "default_currency" and error["code"] == "invalid", error
    assert world.api("admin").get("/tenant/settings").json()["default_currency"] == "CHF"


def test_a_body_without_the_field_or_with_another_is_a_422_naming_it(
    world: World, restore_currency: None
) -> None:
    missing = world.api("admin").put("/tenant/settings", {})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "default_currency"
    other = world.api("admin").put("/tenant/settings", {"default_currency": "EUR", "locale": "fr"})
    assert other.status_code == 422 and other.json()["error"]["field"] == "locale"


def test_records_created_without_a_currency_are_in_the_tenant_default(
    world: World, restore_currency: None
) -> None:
    _set(world, "EUR")
    tag = uuid.uuid4().hex[:6]
    account = _created(world, "accounts", {"name": f"Euro Pumps {tag}"})
    assert account["currency"] == "EUR"
    lead = _created(world, "leads", {"last_name": f"Lead {tag}", "company": "Euro Pumps"})
    assert lead["currency"] == "EUR"
    deal = _created(world, "opportunities", {"name": f"Deal {tag}", "account_id": account["id"]})
    assert deal["currency"] == "EUR"
    named = _created(world, "accounts", {"name": f"Dollar Co {tag}", "currency": "USD"})
    assert named["currency"] == "USD"  # a currency given is kept
    # the New forms preselect what saving them empty stores
    entities = world.api("rep1").get("/meta/entities").json()["items"]
    defaults = {
        e["name"]: f["default"] for e in entities for f in e["fields"] if f["name"] == "currency"
    }
    assert defaults == {"accounts": "EUR", "leads": "EUR", "opportunities": "EUR"}
    # a stage nobody has a deal in (a new pipeline) reads in the default currency
    pipeline = _created(world, "pipelines", {"name": f"Empty {tag}"})
    _created(
        world,
        "pipeline_stages",
        {"pipeline_id": pipeline["id"], "name": "Only", "position": 1, "probability": 10},
    )
    stages = world.api("admin").get(
        "/analytics/pipeline/stages", params={"pipeline_id": pipeline["id"]}
    )
    assert stages.status_code == 200, stages.text
    assert [(s["stage"], s["currency"], s["count"]) for s in stages.json()["items"]] == [
        ("Only", "EUR", 0)
    ]
    # and a change applies to the next record, not to those made before
    _set(world, "JPY")
    assert _created(world, "accounts", {"name": f"Yen Works {tag}"})["currency"] == "JPY"
    assert world.api("admin").get(f"/accounts/{account['id']}").json()["currency"] == "EUR"
    # a deal without a currency is in its account's, not in the default; one that names
    # its currency keeps it
    dollars = _created(world, "opportunities", {"name": f"D {tag}", "account_id": named["id"]})
    assert dollars["currency"] == "USD"
    given = {"name": f"G {tag}", "account_id": named["id"], "currency": "CHF"}
    assert _created(world, "opportunities", given)["currency"] == "CHF"


def test_a_csv_import_without_a_currency_is_in_the_tenant_default(
    world: World, restore_currency: None
) -> None:
    _set(world, "GBP")
    tag = uuid.uuid4().hex[:6]
    api = world.api("rep1")
    no_column = _import(api, "accounts", "name", f"name,type\nNo Column {tag},customer\n")
    assert no_column["status"] == "done" and no_column["inserted_rows"] == 1, no_column
    text = f"name,currency\nEmpty Cell {tag},\nFranc {tag},CHF\n"
    with_column = _import(api, "accounts", "name", text)
    assert with_column["status"] == "done" and with_column["inserted_rows"] == 2, with_column
    found = api.get("/accounts", params={"q": tag, "limit": 10}).json()["items"]
    assert sorted((a["name"], a["currency"]) for a in found) == [
        (f"Empty Cell {tag}", "GBP"),
        (f"Franc {tag}", "CHF"),
        (f"No Column {tag}", "GBP"),
    ]
