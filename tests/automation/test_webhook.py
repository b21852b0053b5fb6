"""The webhook step: a signed POST with an idempotency key per (run, step), through
crm_sync's SSRF guard (loopback only when the deployment's allow-list names it)."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from automation.clock import ManualClock
from crm_sync.signing import HEADER, verify
from kernel.settings import Settings
from tests.automation.harness import create, deactivate_all, query, save_workflow, worker_thread
from tests.eventually import eventually
from tests.world import People

pytestmark = pytest.mark.integration
SECRET = "a-long-enough-webhook-secret"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            verify(SECRET.encode(), self.headers[HEADER], body, time.time())
            got.append({"key": self.headers["Idempotency-Key"], "body": json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()


def test_a_record_change_is_posted_signed_once(
    db_dsn: str, test_settings: Settings, people: People, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, got = receiver
    deactivate_all(db_dsn)
    allow = test_settings.with_overrides(webhook_allow=(ipaddress.ip_network("127.0.0.0/8"),))
    with worker_thread(db_dsn, ManualClock(), settings=allow):
        wid = save_workflow(
            db_dsn,
            people.users["rep1"],
            {
                "name": "Leads to the ERP",
                "trigger": {"on": "leads.created"},
                "steps": [
                    {
                        "id": "post",
                        "action": "webhook",
                        "url": url,
                        "secret": SECRET,
                        "payload": {"company": "{{record.company}}"},
                    }
                ],
            },
        )
        lead = create(db_dsn, people.users["rep1"], "leads", company="Omega")
        eventually(
            lambda: query(
                db_dsn,
                "SELECT 1 FROM automation_runs WHERE workflow_id = %s AND status = 'completed'",
                (wid,),
            ),
            what="run",
        )
    assert len(got) == 1
    assert got[0]["body"]["record_id"] == str(lead["id"]) and got[0]["body"]["data"] == {
        "company": "Omega"
    }
    run_id = query(db_dsn, "SELECT id FROM automation_runs WHERE workflow_id = %s", (wid,))[0][0]
    assert got[0]["key"] == f"automation:{run_id}:0"


def test_a_private_target_fails_the_run_without_the_allow_list(
    db_dsn: str, people: People, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, got = receiver
    deactivate_all(db_dsn)
    with worker_thread(db_dsn, ManualClock()):
        wid = save_workflow(
            db_dsn,
            people.users["rep1"],
            {
                "name": "Private",
                "trigger": {"on": "leads.created"},
                "steps": [{"id": "post", "action": "webhook", "url": url, "secret": SECRET}],
            },
        )
        create(db_dsn, people.users["rep1"], "leads", company="Sigma")
        failed = eventually(
            lambda: query(
                db_dsn,
                "SELECT error FROM automation_runs WHERE workflow_id = %s AND status = 'failed'",
                (wid,),
            ),
            what="failed",
        )
    assert "refused target" in failed[0][0]
    assert got == []
