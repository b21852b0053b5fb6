"""The automation API: definitions validated on save (errors name the step), versions,
export/import, dry runs, run history, the per-record log, signed inbound webhooks,
sequence analytics, and who may see what."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from automation.clock import ManualClock
from crm_sync.signing import HEADER, sign
from kernel.settings import Settings
from tests.automation.harness import deactivate_all, stage_id, worker_thread
from tests.crm_sync.appserver import serve_app
from tests.eventually import eventually
from tests.world import People

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base(test_settings: Settings, db_dsn: str) -> Iterator[str]:
    deactivate_all(db_dsn)
    with (
        serve_app(test_settings, ("crm.routes", "automation.routes")) as url,
        worker_thread(db_dsn, ManualClock()),
    ):
        yield url


def test_definitions_are_checked_versioned_exported_and_dry_run(
    base: str, people: People, db_dsn: str
) -> None:
    mgr = people.api(base.removesuffix("/api/v1"), "manager")
    bad = {"name": "Bad", "trigger": {"on": "leads.created"}, "steps": [
        {"id": "ok", "action": "notify", "to": ["record_owner"], "title": "x"},
        {"id": "late", "action": "create_task", "subject": "s", "due_in_s": -5},
    ]}  # fmt: skip
    r = mgr.post("/automation/workflows", json={"definition": bad})
    assert r.status_code == 422, r.text
    assert "step 'late'" in r.json()["error"]["message"]

    schema = mgr.get("/automation/schema").json()
    assert "Definition" in json.dumps(schema)

    good = {
        "name": "Hot lead",
        "trigger": {"on": "leads.updated", "when": [{"field": "custom.score", "op": "crossed_above", "value": 80}]},
        "steps": [
            {"id": "hot", "action": "branch", "when": [{"field": "estimated_amount", "op": "gte", "value": 1000}],
             "then": [{"id": "call", "action": "create_task", "type": "call", "subject": "Call {{record.company}}"}],
             "otherwise": [{"id": "note", "action": "notify", "to": ["record_owner"], "title": "Small hot lead"}]},
        ],
    }  # fmt: skip
    r = mgr.post("/automation/workflows", json={"definition": good})
    assert r.status_code == 201, r.text
    wf = r.json()
    assert wf["version"] == 1 and wf["owner_id"] == people.users["manager"]
    good2 = {**good, "name": "Hot lead v2"}
    r = mgr.put(f"/automation/workflows/{wf['id']}", json={"definition": good2})
    assert r.json()["version"] == 2
    assert (
        mgr.get(f"/automation/workflows/{wf['id']}/versions/1").json()["definition"]["name"]
        == "Hot lead"
    )
    exported = mgr.get(f"/automation/workflows/{wf['id']}/export").json()
    r = mgr.post("/automation/workflows/import", json=exported)
    assert r.status_code == 201 and r.json()["name"] == "Hot lead v2" and r.json()["id"] != wf["id"]

    # another rep does not see the manager's workflow
    rep2 = people.api(base.removesuffix("/api/v1"), "rep2")
    assert rep2.get(f"/automation/workflows/{wf['id']}").status_code == 404

    lead = mgr.post(
        "/leads", json={"company": "Zeta", "estimated_amount": 5000, "custom": {"score": 90}}
    ).json()
    dry = mgr.post("/automation/dry-run", json={
        "definition": good, "record_object": "leads", "record_id": lead["id"], "old": {"custom": {"score": 50}},
    }).json()  # fmt: skip
    assert dry["trigger_matches"] is True
    assert [(s["step"], s.get("took")) for s in dry["steps"]] == [("hot", "then"), ("call", None)]
    assert dry["steps"][1]["input"]["subject"] == "Call Zeta"
    assert (
        rep2.post(
            "/automation/dry-run",
            json={"definition": good, "record_object": "leads", "record_id": lead["id"]},
        ).status_code
        == 404
    )
    for wid in (wf["id"], r.json()["id"]):
        mgr.post(f"/automation/workflows/{wid}/pause")


def test_a_run_has_a_visible_history_and_the_record_its_log(
    base: str, people: People, db_dsn: str
) -> None:
    rep = people.api(base.removesuffix("/api/v1"), "rep1")
    proposal = stage_id(db_dsn, "Proposal")
    wf = rep.post("/automation/workflows", json={"definition": {
        "name": "Proposal sent", "trigger": {"on": "opportunities.updated", "when": [{"field": "stage_id", "op": "changed_to", "value": proposal}]},
        "steps": [{"id": "remind", "action": "create_task", "subject": "Chase the proposal", "due_in_s": 3 * 86400},
                  {"id": "tell", "action": "notify", "to": ["workflow_owner"], "title": "Proposal out: {{record.name}}"}],
    }}).json()  # fmt: skip
    account = rep.post(
        "/accounts", json={"name": f"Beta {uuid.uuid4().hex[:6]}", "territory_id": people.t1}
    ).json()
    opp = rep.post("/opportunities", json={"name": "Beta deal", "account_id": account["id"]}).json()
    got = rep.get(f"/opportunities/{opp['id']}")
    r = rep.patch(
        f"/opportunities/{opp['id']}",
        json={"stage_id": proposal},
        headers={"If-Match": got.headers["ETag"]},
    )
    assert r.status_code == 200, r.text
    runs = eventually(
        lambda: rep.get(
            f"/automation/workflows/{wf['id']}/runs", params={"status": "completed"}
        ).json()["items"],
        what="completed",
    )
    detail = rep.get(f"/automation/runs/{runs[0]['id']}").json()
    assert detail["trigger"]["event"] == "opportunities.updated"
    assert [(s["step_id"], s["status"]) for s in detail["steps"]] == [
        ("remind", "done"),
        ("tell", "done"),
    ]
    assert detail["steps"][0]["output"]["owner_id"] == people.users["rep1"]
    assert [e["kind"] for e in detail["history"]] == ["trigger", "completed"]
    log = rep.get(f"/automation/records/opportunities/{opp['id']}/log").json()["items"]
    assert [e["step_id"] for e in log] == ["tell", "remind"]
    rep2 = people.api(base.removesuffix("/api/v1"), "rep2")
    assert rep2.get(f"/automation/runs/{runs[0]['id']}").status_code == 404
    assert rep2.get(f"/automation/records/opportunities/{opp['id']}/log").status_code == 404
    rep.post(f"/automation/workflows/{wf['id']}/pause")


def test_inbound_webhooks_start_only_when_signed(base: str, people: People) -> None:
    rep = people.api(base.removesuffix("/api/v1"), "rep1")
    wf = rep.post("/automation/workflows", json={"definition": {
        "name": "Form in", "trigger": {"on": "webhook"},
        "steps": [{"id": "tell", "action": "notify", "to": ["workflow_owner"], "title": "Form from {{trigger.data.email}}"}],
    }}).json()  # fmt: skip
    secret = wf["inbound_secret"]
    assert secret
    body = json.dumps({"email": "x@example.test"}).encode()
    url = f"{base}/automation/hooks/{wf['id']}"
    r = requests.post(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            HEADER: sign(b"wrong", int(time.time()), body),
        },
        timeout=10,
    )
    assert r.status_code == 401
    r = requests.post(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            HEADER: sign(secret.encode(), int(time.time()), body),
        },
        timeout=10,
    )
    assert r.status_code == 202, r.text
    eventually(
        lambda: rep.get(
            f"/automation/workflows/{wf['id']}/runs", params={"status": "completed"}
        ).json()["items"],
        what="run",
    )
    rep.post(f"/automation/workflows/{wf['id']}/pause")


def test_sequence_analytics_count_enrolments_and_replies(base: str, people: People) -> None:
    rep = people.api(base.removesuffix("/api/v1"), "rep1")
    admin = people.api(base.removesuffix("/api/v1"), "admin")
    seq = rep.post("/automation/workflows", json={"kind": "sequence", "definition": {
        "name": "Nurture", "trigger": {"on": "manual", "object": "leads"},
        "exit_on": [{"on": "email.replied"}, {"on": "lead.converted"}],
        "steps": [{"id": "intro", "action": "send_message", "channel": "email", "subject": "Hi", "body": "Hello", "business_hours": False},
                  {"id": "later", "action": "wait", "duration_s": 86400}],
    }}).json()  # fmt: skip
    leads = [
        rep.post(
            "/leads",
            json={"company": f"L{i}", "email": f"l{i}-{uuid.uuid4().hex[:4]}@example.test"},
        ).json()["id"]
        for i in range(3)
    ]
    r = rep.post(
        f"/automation/sequences/{seq['id']}/enrolments",
        json={"record_object": "leads", "ids": leads},
    )
    assert r.status_code == 201 and len(r.json()["run_ids"]) == 3
    eventually(
        lambda: (
            rep.get(f"/automation/sequences/{seq['id']}/analytics").json()["steps"][0]["reached"]
            == 3
        ),
        what="step 1 sent",
    )
    assert (
        admin.post(
            "/automation/events",
            json={"event": "email.opened", "record_object": "leads", "record_id": leads[0]},
        ).status_code
        == 202
    )
    assert (
        admin.post(
            "/automation/events",
            json={"event": "email.replied", "record_object": "leads", "record_id": leads[0]},
        ).status_code
        == 202
    )
    assert (
        rep.post(
            "/automation/events",
            json={"event": "email.replied", "record_object": "leads", "record_id": leads[1]},
        ).status_code
        == 403
    )
    stats = eventually(
        lambda: (
            (s := rep.get(f"/automation/sequences/{seq['id']}/analytics").json())["replied"] == 1
            and s
        ),
        what="reply counted",
    )
    assert stats["enrolled"] == 3 and stats["active"] == 2
    assert stats["steps"][0] == {"step_id": "intro", "reached": 3, "opened": 1, "replied": 1}
    rep.post(f"/automation/workflows/{seq['id']}/pause")
