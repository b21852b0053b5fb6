"""`fieldmesh jobs` shows jobs per task and state and the latest failures' errors."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from fieldmesh.cli import main
from kernel.jobs import enqueue_sync


def test_jobs_lists_states_and_failures(
    db: psycopg.Connection[Any], db_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    task = f"test.cli.{uuid.uuid4().hex[:6]}"
    enqueue_sync(db, task, {"n": 1}, delay_s=3600)
    failed = enqueue_sync(db, task, {"n": 2})
    db.execute(
        "UPDATE jobs SET status = 'failed', attempts = 5, finished_at = now(),"
        " last_error = 'ConnectionError: subscriber down' WHERE id = %s",
        (failed,),
    )
    db.commit()
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["jobs"]) == 0
    out = capsys.readouterr().out
    assert task in out and "queued" in out and "failed" in out
    assert "ConnectionError: subscriber down" in out
