"""Voice-triggered workflows end to end on the real services: "start my route" and
"escalate this alert", typed and spoken (speech made by piper in the test, recognised by
the endpoint), confirmed by "yes", refused where the caller may not; and an admin's voice
trigger starting its workflow exactly once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from alerts import store as alert_store
from alerts.rules import Severity
from assistant import voice
from automation.clock import ManualClock
from identity import auth
from kernel.settings import Settings
from tests.appserver import serve_app
from tests.automation.harness import worker_thread
from tests.eventually import eventually
from tests.world import Api, People

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()
NOW = f"{TODAY.isoformat()}T06:00:00"  # the rep's morning, in UTC


@dataclass
class Day:
    rep: Api
    rep_id: int
    accounts: list[dict[str, Any]]
    work_orders: list[dict[str, Any]]
    plan_id: int
    device: str
    alert_id: str
    contact_phone: str


@pytest.fixture(scope="module")
def url(test_settings: Settings, db_dsn: str) -> Iterator[str]:
    with (
        serve_app(test_settings, ("crm.routes", "assistant.routes", "automation.routes")) as u,
        worker_thread(db_dsn, ManualClock()),
    ):
        yield u


def _rep(db_dsn: str, people: People, name: str) -> tuple[int, str]:
    """A rep of territory 1 in the manager's team, of this module alone."""

    async def make() -> tuple[int, str]:
        async with await psycopg.AsyncConnection.connect(db_dsn) as conn:
            uid = await auth.create_user(
                conn,
                email=f"{name}-{uuid.uuid4().hex[:8]}@x.test",
                name=name.title(),
                role="rep",
                territory_id=people.t1,
                manager_id=people.users["manager"],
            )
            token = (await auth.issue_token(conn, uid, "test"))[1]
            await conn.commit()
            return uid, token

    return asyncio.run(make())


@pytest.fixture(scope="module")
def day(url: str, people: People, db_dsn: str) -> Day:
    """Rep Three's day: a ready plan with two stops (work orders at two accounts), the first
    account's primary contact with a mobile number, and a warning alert on its pump."""
    rep_id, token = _rep(db_dsn, people, "rep three")
    rep = Api(url, token)
    admin = people.api(url, "admin")
    tag = uuid.uuid4().hex[:6]
    accounts = [
        admin.post("/accounts", {"name": f"{n} {tag}", "territory_id": people.t1}).json()
        for n in ("Harbour Bakery", "Linden Dairy")
    ]
    wos = [
        admin.post(
            "/work_orders",
            {"title": t, "account_id": a["id"], "assignee_id": rep_id, "status": "scheduled"},
        ).json()
        for t, a in zip(("Oven service", "Chiller check"), accounts, strict=True)
    ]
    phone = f"+49151{uuid.uuid4().int % 10**8:08d}"
    device = f"PMP-{tag}"
    with psycopg.connect(db_dsn) as conn:
        contact = conn.execute(
            "INSERT INTO contacts (first_name, last_name, phone, territory_id)"
            " VALUES ('Eve', 'Baker', %s, %s) RETURNING id",
            (phone, people.t1),
        ).fetchone()
        assert contact is not None
        conn.execute(
            "INSERT INTO account_contacts (account_id, contact_id, role) VALUES (%s, %s, 'primary')",
            (accounts[0]["id"], contact[0]),
        )
        plan = conn.execute(
            "INSERT INTO routing_plans (territory_id, plan_date, status, request)"
            " VALUES (%s, %s, 'ready', '{}') RETURNING id",
            (people.t1, TODAY),
        ).fetchone()
        assert plan is not None
        for seq, (a, w) in enumerate(zip(accounts, wos, strict=True), start=1):
            at = datetime.combine(TODAY, datetime.min.time(), UTC) + timedelta(hours=6 + 2 * seq)
            conn.execute(
                "INSERT INTO routing_stops (plan_id, visit_key, rep_id, seq, account_id,"
                " work_order_id, eta, service_start, service_end, wait_s, slack_s, travel_s,"
                " distance_m) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0, 0, 900, 9000)",
                (plan[0], f"wo-{w['id']}", rep_id, seq, a["id"], w["id"], at, at,
                 at + timedelta(hours=1)),
            )  # fmt: skip
        conn.execute(
            "INSERT INTO assets (account_id, device_id, equipment_model) VALUES (%s, %s, 'pump-x')",
            (accounts[0]["id"], device),
        )
        ev = alert_store.raise_alert(
            conn, device, "vibration_high", Severity.WARNING, int(time.time() * 1000)
        )
        conn.commit()
    return Day(rep, rep_id, accounts, wos, int(plan[0]), device, ev.alert.alert_id, phone)


def ask(api: Api, text: str, **extra: Any) -> dict[str, Any]:
    r = api.post("/assistant/messages", {"text": text, "now": NOW, "tz": "UTC", **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def say(api: Api, text: str, **params: Any) -> dict[str, Any]:
    r = api.post(
        "/assistant/voice",
        data=voice.speak(text, steady=True),
        headers={"Content-Type": "audio/wav"},
        params={"now": NOW, "tz": "UTC", **params},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _rows(dsn: str, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return list(conn.execute(query, params).fetchall())


def test_start_my_route_typed_asks_then_starts_once(day: Day, db_dsn: str) -> None:
    q = ask(day.rep, "Could you start my route please")
    assert q["intent"] == "workflow" and q["slots"]["command"] == "start_route"
    assert q["needs_confirmation"] and "2 stops" in q["answer"], q
    assert day.accounts[0]["name"] in q["answer"] and "08:00" in q["answer"]
    assert not _rows(
        db_dsn, "SELECT 1 FROM assistant_route_starts WHERE user_id = %s", (day.rep_id,)
    )
    # "no" cancels; nothing happens
    no = ask(day.rep, "no", context=q["context"])
    assert no["answer"].startswith("Cancelled") and not no["needs_confirmation"]
    done = ask(day.rep, "start my route", confirm=True)
    assert done["actions"][0]["status"] == "done", done
    assert "Route started: 2 stops" in done["answer"] and "text message" in done["answer"]
    assert f"/console/#/r/work_orders/{day.work_orders[0]['id']}" in done["links"]
    # the plan's stops are accepted by the rep (routing keeps them on re-plans)
    accepted = _rows(
        db_dsn, "SELECT accepted_at IS NOT NULL FROM routing_stops WHERE plan_id = %s",
        (day.plan_id,),
    )  # fmt: skip
    assert [a for (a,) in accepted] == [True, True]
    # the first customer was told the ETA by SMS, once
    sms = _rows(
        db_dsn,
        "SELECT m.body_text FROM engage_messages m WHERE m.to_addr = %s AND m.channel = 'sms'",
        (day.contact_phone,),
    )
    assert len(sms) == 1 and "arrives at about 08:00" in sms[0][0], sms
    notes = day.rep.get("/activities", params={"work_order_id": day.work_orders[0]["id"]}).json()
    assert any(n["subject"].startswith("On the way to") for n in notes["items"])
    again = ask(day.rep, "start my route", confirm=True)
    assert "already started" in again["answer"]
    assert (
        len(_rows(db_dsn, "SELECT 1 FROM assistant_route_starts WHERE user_id = %s", (day.rep_id,)))
        == 1
    )
    audit = day.rep.get("/assistant/actions").json()["items"]
    assert audit[0]["intent"] == "workflow" and audit[0]["slots"]["command"] == "start_route"


def test_a_viewer_and_a_rep_of_another_territory_are_refused(
    url: str, day: Day, people: People, db_dsn: str
) -> None:
    viewer = ask(people.api(url, "viewer"), "start my route", confirm=True)
    assert viewer["actions"][0]["status"] == "refused" and "read-only" in viewer["answer"]
    other = people.api(url, "rep2")
    pinned = {"intent": "alert", "slots": {"alert_id": day.alert_id}}
    r = ask(other, "escalate this alert", context=pinned, confirm=True)
    assert r["intent"] == "workflow" and r["actions"][0]["status"] == "refused", r
    assert "not one you can see" in r["answer"]
    # the device on the other rep's screen: the same refusal, by the same rule
    r = ask(other, "escalate this alert", device_id=day.device, confirm=True)
    assert (
        r["actions"][0]["status"] == "refused" and "no open alert that you can see" in r["answer"]
    )
    # the alert's own rep, looking at the device: asked about that alert
    q = ask(day.rep, "escalate this alert", device_id=day.device)
    assert q["needs_confirmation"] and day.device in q["answer"]
    assert q["context"]["slots"]["alert_id"] == day.alert_id
    sev = _rows(db_dsn, "SELECT severity FROM alerts WHERE alert_id = %s", (day.alert_id,))
    assert sev == [("warning",)]


def test_escalate_this_alert_spoken_and_confirmed_by_a_spoken_yes(
    day: Day, people: People, db_dsn: str
) -> None:
    q = say(day.rep, "escalate this alert")
    assert q["transcript"] == "escalate this alert", q
    assert q["intent"] == "workflow" and q["needs_confirmation"], q
    assert day.device in q["answer"] and "Manager" in q["answer"]
    context = {"intent": "workflow", "slots": q["slots"]}
    yes = say(day.rep, "yes", context=json.dumps(context))
    assert yes["transcript"] == "yes", yes
    assert "Escalated" in yes["answer"] and "now critical" in yes["answer"], yes
    wo_id = yes["actions"][0]["work_order_id"]
    wo = day.rep.get(f"/work_orders/{wo_id}").json()
    assert wo["priority"] == "urgent" and wo["account_id"] == day.accounts[0]["id"]
    row = _rows(db_dsn, "SELECT severity, state FROM alerts WHERE alert_id = %s", (day.alert_id,))
    assert row == [("critical", "raised")]
    told = _rows(
        db_dsn,
        "SELECT title, urgent, link FROM notifications WHERE user_id = %s AND kind = 'alert.escalated'"
        " AND title LIKE %s",
        (people.users["manager"], f"%{day.device}%"),
    )
    assert (
        len(told) == 1 and told[0][1] is True and told[0][2] == f"/console/#/r/work_orders/{wo_id}"
    )


def test_an_admins_voice_command_starts_its_workflow_exactly_once(
    url: str, day: Day, people: People, db_dsn: str
) -> None:
    admin = people.api(url, "admin")
    wf = admin.post("/automation/workflows", json={"definition": {
        "name": "Call for backup",
        "trigger": {"on": "voice", "phrases": ["call for backup", "(send|need) [some] backup"],
                    "roles": ["rep"], "object": "work_orders"},
        "steps": [{"id": "tell", "action": "notify", "to": ["triggered_by_manager"],
                   "title": "Backup needed: {{record.title}}", "urgent": True}],
    }})  # fmt: skip
    assert wf.status_code == 201, wf.text
    wid = wf.json()["id"]
    try:
        # a manager is not among the roles: the words are no command for them
        assert ask(people.api(url, "manager"), "call for backup")["intent"] != "workflow"
        q = say(day.rep, "call for backup")
        assert q["transcript"] == "call for backup", q
        assert q["intent"] == "workflow" and q["needs_confirmation"], q
        assert q["slots"]["command"] == f"automation:{wid}"
        first = ask(day.rep, "call for backup", confirm=True)
        assert first["actions"][0]["status"] == "done" and first["actions"][0]["started"], first
        repeat = ask(day.rep, "call for backup", confirm=True)  # a retried confirmation
        assert repeat["actions"][0]["run_id"] == first["actions"][0]["run_id"]
        assert repeat["actions"][0]["started"] is False
        runs = eventually(
            lambda: admin.get(
                f"/automation/workflows/{wid}/runs", params={"status": "completed"}
            ).json()["items"],
            what="the voice run completed",
        )
        all_runs = admin.get(f"/automation/workflows/{wid}/runs").json()["items"]
        assert len(runs) == len(all_runs) == 1
        detail = admin.get(f"/automation/runs/{runs[0]['id']}").json()
        assert detail["trigger"]["event"] == "voice" and detail["trigger"]["by_user"] == day.rep_id
        told = _rows(
            db_dsn,
            "SELECT title FROM notifications WHERE user_id = %s AND title LIKE 'Backup needed:%%'",
            (people.users["manager"],),
        )
        assert told == [(f"Backup needed: {day.work_orders[0]['title']}",)]
    finally:
        admin.post(f"/automation/workflows/{wid}/pause")


def test_commands_appear_in_the_analytics_per_command(url: str, day: Day, people: People) -> None:
    figures = people.api(url, "admin").get("/assistant/analytics", params={"days": 1}).json()
    rows = [r for r in figures["intents"] if r["intent"] == "workflow"]
    names = {r["command_name"] for r in rows}
    assert {"Start my route", "Escalate this alert", "Call for backup"} <= names, rows
    route = [r for r in rows if r["command"] == "start_route" and r["channel"] == "text"]
    assert route and route[0]["volume"] >= 3 and 0 < route[0]["confirmation_rate"] < 1
