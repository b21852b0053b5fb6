"""The workflow builder in headless Chromium against the real app: a workflow built as a
list of steps is saved, a bad value gets the API's error naming the step, a branch holding
its own step is saved as version 2; the trigger offers the event keys, and a segment trigger
the current segments by name, the choice saved as the trigger's condition."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from identity.auth import hash_password
from kernel.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.integration
DRIVER = Path(__file__).with_name("e2e_builder.cjs")
PASSWORD = "correct-horse-9"


def test_a_workflow_is_built_step_by_step_and_saved(app_url: str, test_settings: Settings) -> None:
    email = f"builder-{uuid.uuid4().hex[:8]}@example.test"
    name = f"Built {uuid.uuid4().hex[:6]}"
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO users (email, name, role, password_hash) VALUES (%s, 'Builder', 'manager', %s)"
            " RETURNING id",
            (email, hash_password(PASSWORD)),
        ).fetchone()
        assert row is not None
        # a customer of the builder's in a segment (the segment trigger offers it by name)
        segment = f"loyal {uuid.uuid4().hex[:6]}"
        acct = conn.execute(
            "INSERT INTO accounts (name, type, owner_id) VALUES ('Seg Co', 'customer', %s)"
            " RETURNING id",
            (row[0],),
        ).fetchone()
        assert acct is not None
        conn.execute(
            "INSERT INTO insights_account_value (account_id, yearly_revenue, retention, clv,"
            " segment) VALUES (%s, 0, 0.5, 0, %s)",
            (acct[0], segment),
        )
    params = {"email": email, "password": PASSWORD, "name": name, "segment": segment}
    proc = subprocess.run(
        ["node", str(DRIVER), app_url, json.dumps(params)],
        capture_output=True, text=True, timeout=180, cwd=PROJECT_ROOT, check=False,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    out = json.loads(lines[-1])
    assert out["errors"] == []
    assert "steps[0]" in out["error"] and "due_in_s" in out["error"]
    assert out["first"] == "saved: version 1"
    assert name in out["listed"]
    with psycopg.connect(test_settings.dsn) as conn:
        got = conn.execute(
            "SELECT w.version, v.definition FROM automation_workflows w JOIN automation_versions v"
            " ON v.workflow_id = w.id AND v.version = w.version WHERE w.name = %s",
            (name,),
        ).fetchone()
    assert got is not None
    version, definition = got
    assert version == 2
    task, branch = definition["steps"]
    assert task["action"] == "create_task" and task["subject"] == "Call {{record.name}}"
    assert task["due_in_s"] == 3600
    assert branch["action"] == "branch"
    assert [(s["action"], s["title"], s["to"]) for s in branch["then"]] == [
        ("notify", "Big deal", ["workflow_owner"])
    ]
    assert {"segment.entered", "segment.left", "alert.raised", "schedule"} <= set(out["events"])
    with psycopg.connect(test_settings.dsn) as conn:
        seg = conn.execute(
            "SELECT v.definition FROM automation_workflows w JOIN automation_versions v"
            " ON v.workflow_id = w.id AND v.version = w.version WHERE w.name = %s",
            (f"{name} segment",),
        ).fetchone()
    assert seg is not None
    trigger = seg[0]["trigger"]
    assert trigger["on"] == "segment.entered"
    assert trigger["when"] == [{"field": "segment", "op": "eq", "value": segment}]
