"""The knowledge base on the real app: who reads and writes which articles, search ranks the
article that answers the question, and the assistant answers how-to questions from it with
a link to the article."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from kernel.settings import Settings
from tests.appserver import serve_app
from tests.world import People

pytestmark = pytest.mark.integration

ARTICLES = [
    (
        "reset",
        "howto",
        "Resetting the PX-200 pump controller",
        "When the pump controller shows error E4 or stops responding, switch off the mains "
        "isolator, wait 30 seconds, then hold the RESET button while switching it back on. "
        "Release the button when the display shows 000. The controller keeps its settings.",
        ["pump", "controller", "reset"],
    ),
    (
        "seal",
        "manual",
        "Replacing the mechanical seal of a PX-200 pump",
        "A pump that drips or leaks water under the motor needs a new mechanical seal. "
        "Isolate the pump, drain the housing, remove the impeller and press in the new seal. "
        "The controller need not be touched.",
        ["pump", "seal", "leak"],
    ),
    (
        "firmware",
        "howto",
        "Updating the controller firmware",
        "Copy the firmware file to a USB stick, plug it into the controller's service port "
        "and choose Update in the maintenance menu. The update takes five minutes; do not "
        "switch the pump off meanwhile.",
        ["controller", "firmware", "update"],
    ),
    (
        "boiler",
        "faq",
        "Why does my boiler lose pressure?",
        "A boiler that loses pressure usually has a leak in the heating circuit or a faulty "
        "expansion vessel. Top the pressure up to 1.5 bar and call us if it drops again "
        "within a week; a reset does not help.",
        ["boiler", "pressure"],
    ),
]


@pytest.fixture(scope="module")
def url(test_settings: Settings) -> Iterator[str]:
    with serve_app(test_settings, ("crm.routes", "assistant.routes")) as u:
        yield u


@pytest.fixture(scope="module")
def arts(url: str, people: People) -> dict[str, dict[str, Any]]:
    admin = people.api(url, "admin")
    out: dict[str, dict[str, Any]] = {}
    for key, kind, title, body, tags in ARTICLES:
        r = admin.post(
            "/assistant/articles",
            {"title": title, "body": body, "kind": kind, "tags": tags, "audience": "public"},
        )
        assert r.status_code == 201, r.text
        out[key] = r.json()
    # one article for the second territory only
    r = people.api(url, "admin").post(
        "/assistant/articles",
        {
            "title": f"South depot opening hours {people.suffix}",
            "body": "The south depot opens at 7:00 on weekdays.",
            "territory_id": people.t2,
        },
    )
    assert r.status_code == 201, r.text
    out["south"] = r.json()
    return out


def search(api: Any, q: str) -> list[dict[str, Any]]:
    r = api.get("/assistant/articles", params={"q": q})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


@pytest.mark.parametrize(
    ("question", "want"),
    [
        ("how do I reset the pump controller", "reset"),
        ("the pump is leaking water under the motor", "seal"),
        ("how to install new firmware on the controller", "firmware"),
        ("my boiler keeps losing pressure, what should I do", "boiler"),
    ],
)
def test_search_ranks_the_article_that_answers_first(
    url: str, people: People, arts: dict[str, dict[str, Any]], question: str, want: str
) -> None:
    items = search(people.api(url, "rep1"), question)
    assert items, question
    assert items[0]["id"] == arts[want]["id"], [i["title"] for i in items]
    assert items[0]["score"] > (items[1]["score"] if len(items) > 1 else 0)


def test_a_question_about_something_the_base_does_not_cover_scores_low(
    url: str, people: People, arts: dict[str, dict[str, Any]]
) -> None:
    items = search(people.api(url, "rep1"), "how do I descale the espresso machine")
    assert all(i["score"] < 0.45 for i in items)


def test_readers_see_their_territories_and_managers_write(
    url: str, people: People, arts: dict[str, dict[str, Any]]
) -> None:
    south = arts["south"]["id"]
    rep1, rep2 = people.api(url, "rep1"), people.api(url, "rep2")
    assert rep1.get(f"/assistant/articles/{south}").status_code == 404
    assert rep2.get(f"/assistant/articles/{south}").status_code == 200
    q = f"south depot opening hours {people.suffix}"
    assert south not in [i["id"] for i in search(rep1, q)]
    assert search(rep2, q)[0]["id"] == south
    new = {"title": "Tip", "body": "Wear gloves."}
    assert rep1.post("/assistant/articles", new).status_code == 403
    assert people.api(url, "viewer").post("/assistant/articles", new).status_code == 403
    mgr = people.api(url, "manager")
    # the manager's team works in the first territory only
    assert mgr.post("/assistant/articles", {**new, "territory_id": people.t2}).status_code == 403
    made = mgr.post("/assistant/articles", {**new, "territory_id": people.t1})
    assert made.status_code == 201, made.text
    aid = made.json()["id"]
    r = mgr.patch(f"/assistant/articles/{aid}", {"body": "Wear gloves and goggles."})
    assert r.status_code == 200 and r.json()["body"] == "Wear gloves and goggles."
    assert mgr.patch(f"/assistant/articles/{south}", {"body": "x"}).status_code == 404
    assert rep2.get(f"/assistant/articles/{aid}").status_code == 404
    assert mgr.delete(f"/assistant/articles/{aid}").status_code == 204
    assert mgr.get(f"/assistant/articles/{aid}").status_code == 404


def test_bad_articles_are_refused_naming_the_field(url: str, people: People) -> None:
    admin = people.api(url, "admin")
    for body, field in (
        ({"title": "", "body": "x"}, "title"),
        ({"title": "   ", "body": "x"}, "title"),
        ({"title": "x", "body": " \n\n "}, "body"),
        ({"title": "x", "body": "x", "tags": [" "]}, "tags"),
        ({"title": "x", "body": "x", "kind": "poem"}, "kind"),
        ({"title": "x", "body": "x", "territory_id": 2**40}, "territory_id"),
        ({"title": "x", "body": "x", "tags": ["t" * 41]}, "tags"),
    ):
        r = admin.post("/assistant/articles", body)
        assert r.status_code == 422, r.text
        assert field in r.json()["error"]["field"]
    r = admin.get("/assistant/articles", params={"q": "x" * 501})
    assert r.status_code == 422 and r.json()["error"]["field"] == "q"


def test_the_assistant_answers_how_to_questions_from_the_base_with_a_link(
    url: str, people: People, arts: dict[str, dict[str, Any]]
) -> None:
    r = people.api(url, "rep1").post(
        "/assistant/messages", {"text": "how do I reset the pump controller", "tz": "UTC"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["intent"] == "knowledge_question"
    rid = arts["reset"]["id"]
    assert body["links"][0] == f"/console/#/kb/{rid}"
    assert "Resetting the PX-200 pump controller" in body["answer"]
    assert "RESET button" in body["answer"]
    assert body["actions"][0] == {**body["actions"][0], "type": "knowledge", "article_id": rid}
    # a command is still a command
    r = people.api(url, "rep1").post("/assistant/messages", {"text": "open the map"})
    assert r.json()["intent"] == "navigate"


def test_a_public_article_has_a_page_and_an_internal_one_has_none(
    url: str, people: People, arts: dict[str, dict[str, Any]]
) -> None:
    page = requests.get(f"{url}/help/articles/{arts['seal']['id']}", timeout=10)
    assert page.status_code == 200
    assert "Replacing the mechanical seal" in page.text
    # the article in a main landmark (axe: landmark-one-main), readable on a phone
    assert "<main><h1>" in page.text and "overflow-wrap:anywhere" in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert requests.get(f"{url}/help/articles/{arts['south']['id']}", timeout=10).status_code == 404
