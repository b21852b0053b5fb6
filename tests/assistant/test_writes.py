"""Confirmed writes end to end on the real app: carried out through the CRM store as the
caller (names resolved among what they may see, a question when several match), audited in
assistant_actions, and undone through the store again; refusals change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from kernel.settings import Settings
from tests.appserver import serve_app
from tests.world import Api, People

pytestmark = pytest.mark.integration

NOW = "2026-03-02T09:00:00"  # a Monday


@pytest.fixture(scope="module")
def url(test_settings: Settings) -> Iterator[str]:
    with serve_app(test_settings, ("crm.routes", "assistant.routes")) as u:
        yield u


@pytest.fixture(scope="module")
def world(url: str, people: People) -> dict[str, Any]:
    """Letters-only names (the tag) so they read as names; two Anna Webers for rep1."""
    tag = "".join(chr(97 + int(c, 16)) for c in people.suffix)
    admin = people.api(url, "admin")

    def make(path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = admin.post(path, body)
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    acme = make("/accounts", {"name": f"Acme{tag}", "territory_id": people.t1})
    brandt = make("/accounts", {"name": f"Brandt{tag}", "territory_id": people.t1})
    south = make("/accounts", {"name": f"Southco{tag}", "territory_id": people.t2})
    w1 = make(
        "/contacts",
        {"first_name": "Anna", "last_name": f"Weber{tag}", "company_name": acme["name"],
         "territory_id": people.t1, "phone": "0111 1111"},
    )  # fmt: skip
    w2 = make(
        "/contacts",
        {"first_name": "Anna", "last_name": f"Weber{tag}", "company_name": brandt["name"],
         "territory_id": people.t1},
    )  # fmt: skip
    lisa = make(
        "/contacts",
        {"first_name": "Lisa", "last_name": f"Brown{tag}", "territory_id": people.t1,
         "phone": "0301234567"},
    )  # fmt: skip
    return {
        "tag": tag,
        "acme": acme,
        "brandt": brandt,
        "south": south,
        "w1": w1,
        "w2": w2,
        "lisa": lisa,
    }


def ask(api: Api, text: str, **extra: Any) -> dict[str, Any]:
    r = api.post("/assistant/messages", {"text": text, "now": NOW, "tz": "Europe/Berlin", **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def activities(api: Api, **equal: Any) -> list[dict[str, Any]]:
    """The activities whose fields equal `equal` (the list's filter language: a bare query
    parameter is no filter, and other tests' activities are visible to the same rep)."""
    where = [{"field": k, "op": "eq", "value": v} for k, v in equal.items()]
    r = api.get("/activities", params={"limit": 100, "filter": json.dumps({"and": where})})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_log_a_call_is_audited_and_undone(url: str, people: People, world: dict[str, Any]) -> None:
    rep = people.api(url, "rep1")
    text = f"log a call with Lisa Brown{world['tag']} about the pump quote"
    first = ask(rep, text)
    assert first["intent"] == "log_activity" and first["needs_confirmation"] is True
    assert activities(rep, contact_id=world["lisa"]["id"]) == []
    r = ask(rep, text, confirm=True)
    action = r["actions"][0]
    assert action["status"] == "done" and action["entity"] == "activities"
    logged = activities(rep, contact_id=world["lisa"]["id"])
    assert [(a["type"], a["status"], a["source"]) for a in logged] == [
        ("call", "done", "assistant")
    ]
    assert "pump quote" in logged[0]["subject"]
    assert r["links"] == [f"/api/v1/activities/{logged[0]['id']}"]
    audit = rep.get("/assistant/actions").json()["items"]
    mine = next(a for a in audit if a["id"] == action["action_id"])
    assert (mine["intent"], mine["status"], mine["channel"], mine["undoable"]) == (
        "log_activity", "done", "text", True,
    )  # fmt: skip
    # someone else cannot undo it; its author can, once
    assert (
        people.api(url, "rep2").post(f"/assistant/actions/{action['action_id']}/undo").status_code
        == 404
    )
    u = rep.post(f"/assistant/actions/{action['action_id']}/undo")
    assert u.status_code == 200, u.text
    assert activities(rep, contact_id=world["lisa"]["id"]) == []
    assert rep.post(f"/assistant/actions/{action['action_id']}/undo").status_code == 409


def test_two_people_of_one_name_get_a_question_not_a_guess(
    url: str, people: People, world: dict[str, Any]
) -> None:
    rep = people.api(url, "rep1")
    r = ask(rep, f"log a call with Anna Weber{world['tag']}", confirm=True)
    assert r["actions"][0]["type"] == "disambiguate"
    assert world["acme"]["name"] in r["answer"] and world["brandt"]["name"] in r["answer"]
    assert (
        activities(rep, contact_id=world["w1"]["id"])
        == activities(rep, contact_id=world["w2"]["id"])
        == []
    )


def test_a_change_is_made_and_put_back(url: str, people: People, world: dict[str, Any]) -> None:
    rep = people.api(url, "rep1")
    r = ask(rep, f"change the phone of Lisa Brown{world['tag']} to 0170 5551234", confirm=True)
    assert r["intent"] == "update_record" and r["actions"][0]["status"] == "done", r
    after = rep.get(f"/contacts/{world['lisa']['id']}").json()
    assert after["phone"] == "01705551234"
    assert rep.post(f"/assistant/actions/{r['actions'][0]['action_id']}/undo").status_code == 200
    assert rep.get(f"/contacts/{world['lisa']['id']}").json()["phone"] == "0301234567"


def test_work_orders_and_meetings_only_where_the_caller_may(
    url: str, people: People, world: dict[str, Any]
) -> None:
    rep = people.api(url, "rep1")
    r = ask(
        rep,
        f"new work order for Acme{world['tag']} high priority replace the cooling fan",
        confirm=True,
    )
    assert r["intent"] == "create_work_order" and r["actions"][0]["status"] == "done", r
    wo = rep.get(f"/work_orders/{r['actions'][0]['id']}").json()
    assert (wo["account_id"], wo["priority"]) == (world["acme"]["id"], "high")
    # rep1 cannot see the south territory's account: no work order, nothing audited as done
    r = ask(rep, f"new work order for Southco{world['tag']} replace the fan", confirm=True)
    assert r["actions"][0]["status"] == "not_found" and r["links"] == []
    m = ask(rep, f"book 45 minutes with Lisa Brown{world['tag']} on Friday at 2pm", confirm=True)
    assert m["intent"] == "schedule_meeting" and m["actions"][0]["status"] == "done", m
    meeting = rep.get(f"/activities/{m['actions'][0]['id']}").json()
    assert meeting["type"] == "meeting" and meeting["start_at"].startswith("2026-03-06T13:00")
    assert meeting["end_at"].startswith("2026-03-06T13:45")


def test_a_viewer_is_refused_and_the_refusal_is_audited(
    url: str, people: People, world: dict[str, Any]
) -> None:
    viewer = people.api(url, "viewer")
    r = ask(viewer, f"remind me friday to call Lisa Brown{world['tag']}", confirm=True)
    assert r["intent"] == "set_reminder" and r["actions"][0]["status"] == "refused"
    audit = viewer.get("/assistant/actions").json()["items"]
    assert audit[0]["status"] == "refused" and audit[0]["undoable"] is False


def test_check_in_and_a_dictated_visit_close(
    url: str, people: People, world: dict[str, Any]
) -> None:
    admin, rep = people.api(url, "admin"), people.api(url, "rep2")
    wo = admin.post(
        "/work_orders",
        {"title": "replace the seal", "account_id": world["south"]["id"],
         "assignee_id": people.users["rep2"], "scheduled_start": "2026-03-02T10:00:00+01:00",
         "status": "scheduled"},
    )  # fmt: skip
    assert wo.status_code == 201, wo.text
    job = wo.json()
    c = ask(rep, "i'm on site now", confirm=True)
    assert c["intent"] == "check_in" and c["actions"][0]["status"] == "done", c
    assert rep.get(f"/work_orders/{job['id']}").json()["status"] == "in_progress"
    assert c["actions"][0]["undoable"] is True
    d = ask(rep, "done replaced the seal and tested the pressure", confirm=True)
    assert d["intent"] == "complete_visit" and d["actions"][0]["status"] == "done", d
    assert rep.get(f"/work_orders/{job['id']}").json()["status"] == "done"
    notes = activities(rep, work_order_id=job["id"])
    assert [n["type"] for n in notes] == ["note"] and "seal" in notes[0]["body"]
    # a closed job cannot be reopened (the CRM's transitions), so closing is not undoable
    assert d["actions"][0]["undoable"] is False
    u = rep.post(f"/assistant/actions/{d['actions'][0]['action_id']}/undo")
    assert u.status_code == 409 and "cannot be undone" in u.text
    assert rep.get(f"/work_orders/{job['id']}").json()["status"] == "done"


def test_a_yes_or_no_answers_the_pending_question(
    url: str, people: People, world: dict[str, Any]
) -> None:
    """A push-to-talk user says "yes" (or "no") after the question: the answer's context
    carries the pending write, so the yes carries out what was asked and the no nothing."""
    admin, rep = people.api(url, "admin"), people.api(url, "rep2")
    wo = admin.post(
        "/work_orders",
        {"title": "check the valve", "account_id": world["south"]["id"],
         "assignee_id": people.users["rep2"], "scheduled_start": "2026-03-02T11:00:00+01:00",
         "status": "scheduled"},
    )  # fmt: skip
    assert wo.status_code == 201, wo.text
    job = wo.json()
    q = ask(rep, "i have arrived")
    assert q["needs_confirmation"] is True and q["context"]["slots"]["pending"] == 1, q
    no = ask(rep, "no", context=q["context"])
    assert no["intent"] == "check_in" and no["actions"][0]["status"] == "cancelled", no
    assert rep.get(f"/work_orders/{job['id']}").json()["status"] == "scheduled"
    q = ask(rep, "i have arrived")
    yes = ask(rep, "yes please", context=q["context"])
    assert yes["intent"] == "check_in" and yes["actions"][0]["status"] == "done", yes
    assert rep.get(f"/work_orders/{job['id']}").json()["status"] == "in_progress"
    # without a pending question a yes is no command
    assert ask(rep, "yes")["intent"] != "check_in"
    # the job is closed again, so the other tests' "next stop" of rep2 is as before
    assert ask(rep, "done checked the valve", confirm=True)["actions"][0]["status"] == "done"


def test_alert_acknowledged_only_on_a_device_the_caller_may_see(
    url: str, people: People, test_settings: Settings
) -> None:
    import time

    import psycopg

    from alerts import store as alert_store
    from alerts.rules import Severity

    device = f"CMP-{people.suffix[:4]}"
    with psycopg.connect(test_settings.dsn) as conn:
        ev = alert_store.raise_alert(
            conn, device, "vibration_high", Severity.CRITICAL, int(time.time() * 1000)
        )
        conn.commit()
    r = ask(people.api(url, "rep1"), f"acknowledge the {device} alarm", confirm=True)
    assert r["actions"][0]["status"] == "refused"  # rep1 may not see that device
    r = ask(people.api(url, "manager"), f"acknowledge the {device} alarm", confirm=True)
    assert r["intent"] == "acknowledge_alert" and r["actions"][0]["status"] in ("done", "refused")
    r = ask(people.api(url, "admin"), f"acknowledge the {device} alarm", confirm=True)
    assert r["actions"][0]["status"] == "done", r
    with psycopg.connect(test_settings.dsn) as conn:
        row = conn.execute(
            "SELECT state, acknowledged_by FROM alerts WHERE alert_id = %s", (ev.alert.alert_id,)
        ).fetchone()
    assert row is not None and row[0] == "acknowledged" and row[1].startswith("admin-")


def test_follow_ups_use_the_context_the_client_sends_back(
    url: str, people: People, world: dict[str, Any]
) -> None:
    rep = people.api(url, "rep1")
    found = ask(rep, f"find contacts named Lisa Brown{world['tag']}")
    assert found["context"]["slots"]["name"] == f"Lisa Brown{world['tag']}"
    r = ask(rep, "call her tomorrow at 10", context=found["context"], confirm=True)
    assert r["intent"] == "schedule_meeting" and r["actions"][0]["status"] == "done", r
    meeting = rep.get(f"/activities/{r['actions'][0]['id']}").json()
    assert meeting["contact_id"] == world["lisa"]["id"]
    assert meeting["start_at"].startswith("2026-03-03T09:00")  # 10:00 in Berlin
    # without the context, the same words are not carried out
    assert ask(rep, "call her tomorrow at 10", confirm=True)["intent"] == "out_of_scope"
    figure = ask(rep, "how much pipeline do we have this quarter")
    more = ask(rep, "and last quarter?", context=figure["context"])
    assert more["intent"] == "report_query"
    assert more["slots"] == {"metric": "pipeline_value", "period": "last_quarter"}
    bad = rep.post(
        "/assistant/messages", {"text": "and?", "context": {"intent": "x" * 41, "slots": {}}}
    )
    assert bad.status_code in (400, 422) and "context" in bad.json()["error"]["field"]


def test_analytics_count_what_the_caller_may_see(
    url: str, people: People, world: dict[str, Any], test_settings: Settings
) -> None:
    import psycopg

    rep = people.api(url, "rep2")
    ask(rep, "open the map")
    ask(rep, "open the alerts")
    ask(rep, "what is the capital of peru")
    ask(rep, f"create account Zinnia{world['tag']}")
    mine = rep.get("/assistant/analytics", params={"days": 1}).json()
    by = {f["intent"]: f for f in mine["intents"]}
    assert by["navigate"]["volume"] >= 2 and by["navigate"]["success_rate"] == 1.0
    assert by["out_of_scope"]["fallback_rate"] == 1.0
    assert by["create_record"]["confirmation_rate"] == 1.0
    assert mine["conversations"] >= 1 and mine["average_turns"] >= 2
    # rep1 sees only their own figures: exactly the messages rep1 sent
    other = people.api(url, "rep1").get("/assistant/analytics", params={"days": 1}).json()
    with psycopg.connect(test_settings.dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM assistant_messages WHERE user_id = %s", (people.users["rep1"],)
        ).fetchone()
    assert row is not None and sum(f["volume"] for f in other["intents"]) == row[0]
    everyone = people.api(url, "admin").get("/assistant/analytics", params={"days": 1}).json()
    total = sum(f["volume"] for f in everyone["intents"])
    assert total >= sum(f["volume"] for f in mine["intents"]) + sum(
        f["volume"] for f in other["intents"]
    )
    assert rep.get("/assistant/analytics", params={"days": 0}).status_code in (400, 422)


ODD = [
    "create an opportunity for nobody worth 99999999999999999999 dollars",
    "change the amount of the Acme deal to lots",
    "set the close date of the Acme deal to the 31st of february",
    "schedule a meeting with Lisa on the 99th at 25:99",
    "remind me on 31/02 at 3",
    "create contact " + "x" * 900,
    "log a note",
    "new work order for",
    "acknowledge the alert",
    "i'm here",
    "done",
    "change the status of the lead Bob to qualified",
    "update the priority of work order 123456789012345678901234 to urgent",
]


@pytest.mark.parametrize("text", ODD)
def test_odd_confirmed_commands_never_fail_the_server(
    url: str, people: People, world: dict[str, Any], text: str
) -> None:
    r = people.api(url, "rep1").post(
        "/assistant/messages", {"text": text, "now": NOW, "tz": "Europe/Berlin", "confirm": True}
    )
    assert r.status_code == 200, r.text
    assert r.json()["answer"]
