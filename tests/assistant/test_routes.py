"""POST /api/v1/assistant/messages on the real app: reads go through the caller's access,
writes wait for a confirmation, bad input is a 4xx naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kernel.settings import Settings
from tests.appserver import serve_app
from tests.world import Api, People

pytestmark = pytest.mark.integration

NOW = "2026-03-02T09:00:00"


@pytest.fixture(scope="module")
def url(test_settings: Settings) -> Iterator[str]:
    with serve_app(test_settings, ("crm.routes", "assistant.routes")) as u:
        yield u


@pytest.fixture(scope="module")
def seeded(url: str, people: People) -> dict[str, Any]:
    """Two accounts, one per territory, an open deal on each, and rep1's next job."""
    admin = people.api(url, "admin")
    tag = people.suffix
    north = admin.post(
        "/accounts", {"name": f"Quillon {tag} North", "territory_id": people.t1}
    ).json()
    south = admin.post(
        "/accounts", {"name": f"Quillon {tag} South", "territory_id": people.t2}
    ).json()
    for acc, amount in ((north, 1000), (south, 7000)):
        r = admin.post(
            "/opportunities",
            {"name": f"Deal {acc['name']}", "account_id": acc["id"], "amount": amount},
        )
        assert r.status_code == 201, r.text
    wo = admin.post(
        "/work_orders",
        {
            "title": "replace the condenser fan",
            "account_id": north["id"],
            "assignee_id": people.users["rep1"],
            "scheduled_start": "2099-03-02T13:00:00+00:00",
            "status": "scheduled",
        },
    )
    assert wo.status_code == 201, wo.text
    return {"north": north, "south": south, "wo": wo.json(), "tag": tag}


def ask(api: Api, text: str, **extra: Any) -> dict[str, Any]:
    r = api.post("/assistant/messages", {"text": text, "now": NOW, "tz": "Europe/Berlin", **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_search_shows_only_what_the_caller_may_see(
    url: str, people: People, seeded: dict[str, Any]
) -> None:
    text = f"find accounts named Quillon {seeded['tag']}"
    mine = ask(people.api(url, "rep1"), text)
    assert mine["intent"] == "search_records"
    assert f"Quillon {seeded['tag']} North" in mine["answer"]
    assert f"Quillon {seeded['tag']} South" not in mine["answer"]
    assert mine["links"] == [f"/api/v1/accounts/{seeded['north']['id']}"]
    everything = ask(people.api(url, "admin"), text)
    assert everything["actions"][0]["total"] == 2


def test_pipeline_value_is_summed_over_the_callers_opportunities(
    url: str, people: People, seeded: dict[str, Any]
) -> None:
    rep2 = ask(people.api(url, "rep2"), "how much pipeline do we have")
    assert rep2["intent"] == "report_query" and rep2["slots"] == {"metric": "pipeline_value"}
    # rep2 sees the south territory only: its deal is in, the north one is not.
    assert rep2["actions"][0]["value"] == 7000.0


def test_next_stop_is_the_reps_next_scheduled_job(
    url: str, people: People, seeded: dict[str, Any]
) -> None:
    r = ask(people.api(url, "rep1"), "whats my next stop")
    assert r["intent"] == "next_stop"
    assert r["actions"][0]["work_order_id"] == seeded["wo"]["id"]
    assert "replace the condenser fan" in r["answer"]
    assert ask(people.api(url, "rep2"), "next stop")["actions"][0]["work_order_id"] is None


def test_writes_wait_for_confirmation_and_change_nothing(
    url: str, people: People, seeded: dict[str, Any]
) -> None:
    admin = people.api(url, "admin")
    before = admin.get("/accounts", params={"q": f"Zephyr {seeded['tag']}"}).json()["items"]
    r = ask(people.api(url, "rep1"), f"create account Zephyr {seeded['tag']}")
    assert r["intent"] == "create_record" and r["needs_confirmation"] is True
    assert "Shall I go ahead" in r["answer"]
    after = admin.get("/accounts", params={"q": f"Zephyr {seeded['tag']}"}).json()["items"]
    assert before == after == []


def test_out_of_scope_is_answered_honestly(url: str, people: People) -> None:
    r = ask(people.api(url, "rep1"), "delete the Bosch account")
    assert r["intent"] == "out_of_scope" and r["actions"] == [] and "can't" in r["answer"]


def test_bad_input_and_no_token(url: str, people: People) -> None:
    rep = people.api(url, "rep1")
    r = rep.post("/assistant/messages", {"text": "next stop", "tz": "Mars/Olympus"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "tz"
    r = rep.post("/assistant/messages", {"text": ""})
    assert r.status_code in (400, 422) and r.json()["error"]["field"] == "text"
    r = rep.post("/assistant/messages", {"text": "next stop", "now": "2026-03-02T09:00:00+01:00"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "now"
    r = people.api(url, None).post("/assistant/messages", {"text": "next stop"})
    assert r.status_code == 401


def test_confirmed_write_goes_through_the_store_and_its_roles(
    url: str, people: People, seeded: dict[str, Any]
) -> None:
    name = f"Zephyr Works {seeded['tag']}"
    r = ask(people.api(url, "rep1"), f"create account {name}", confirm=True)
    assert r["actions"][0]["status"] == "done"
    created = people.api(url, "admin").get("/accounts", params={"q": name}).json()["items"]
    assert [a["name"] for a in created] == [name]
    assert r["links"] == [f"/api/v1/accounts/{created[0]['id']}"]
    # A viewer may not write: the store refuses, the assistant says so and nothing is made.
    other = f"Zephyr Viewer {seeded['tag']}"
    v = ask(people.api(url, "viewer"), f"create account {other}", confirm=True)
    assert v["actions"][0]["status"] == "refused"
    assert people.api(url, "admin").get("/accounts", params={"q": other}).json()["items"] == []
