"""Training through the API is a job the jobs worker runs (never the API worker), and it
records the version."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests

from identity import auth
from insights import jobs as insights_jobs
from insights.maintenance import jobs as maintenance_jobs
from kernel.jobs import Registry
from kernel.settings import Settings
from tests.appserver import serve_app
from tests.eventually import eventually

pytestmark = pytest.mark.integration


async def _token(dsn: str, role: str) -> str:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        tag = uuid.uuid4().hex[:8]
        uid = await auth.create_user(conn, email=f"{role}-{tag}@x.test", name=role, role=role)
        _, token = await auth.issue_token(conn, uid, "test")
        await conn.commit()
        return token


@pytest.fixture(scope="module")
def api(
    test_settings: Settings, db_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    settings = test_settings.with_overrides(state_dir=tmp_path_factory.mktemp("state"))
    with serve_app(
        settings, ("insights.maintenance.routes",), ("insights.maintenance.jobs",)
    ) as base:
        yield base + "/api/v1"


def _finished(api: str, job: dict[str, Any], h: dict[str, str]) -> dict[str, Any]:
    def state() -> dict[str, Any] | None:
        got: dict[str, Any] = requests.get(
            f"{api}/maintenance/train/{job['job_id']}", headers=h
        ).json()
        return got if got["status"] in ("done", "failed") else None

    return eventually(state, timeout_s=300, what="the training job to finish")


def test_training_through_the_api_records_a_version_with_metrics(api: str, db_dsn: str) -> None:
    h = {"Authorization": f"Bearer {asyncio.run(_token(db_dsn, 'admin'))}"}
    r = requests.post(
        f"{api}/maintenance/train",
        json={"target": "failure", "assets": 80, "days": 40, "seed": 3},
        headers=h,
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and job["model_name"] == "failure-7d"
    done = _finished(api, job, h)
    assert done["status"] == "done", done
    listed = requests.get(f"{api}/maintenance/models/failure-7d", headers=h).json()["items"]
    assert set(listed[0]["metrics"]) == {"precision", "recall", "f1"}
    assert listed[0]["active"] is True


def test_too_little_data_is_refused_with_the_reason(api: str, db_dsn: str) -> None:
    h = {"Authorization": f"Bearer {asyncio.run(_token(db_dsn, 'admin'))}"}
    r = requests.post(
        f"{api}/maintenance/train",
        json={"target": "anomaly", "equipment_model": "chiller-x5", "assets": 20, "days": 10},
        headers=h,
    )
    assert r.status_code == 202, r.text
    failed = _finished(api, r.json(), h)
    assert failed["status"] == "failed"
    assert "insufficient_data" in failed["error"] and "healthy samples" in failed["error"]


def test_bad_requests_and_roles_are_refused(api: str, db_dsn: str) -> None:
    rep = {"Authorization": f"Bearer {asyncio.run(_token(db_dsn, 'rep'))}"}
    assert requests.post(f"{api}/maintenance/train", json={"target": "failure"}).status_code == 401
    assert (
        requests.post(
            f"{api}/maintenance/train", json={"target": "failure"}, headers=rep
        ).status_code
        == 403
    )
    admin = {"Authorization": f"Bearer {asyncio.run(_token(db_dsn, 'admin'))}"}
    r = requests.post(f"{api}/maintenance/train", json={"target": "magic"}, headers=admin)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "target")
    r = requests.post(
        f"{api}/maintenance/train", json={"target": "rul", "dataset": "../etc"}, headers=admin
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "dataset")
    r = requests.post(
        f"{api}/maintenance/train", json={"target": "failure", "days": "x"}, headers=admin
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "days")
    # managers train too (past the role check, the bad target is what is refused)
    manager = {"Authorization": f"Bearer {asyncio.run(_token(db_dsn, 'manager'))}"}
    r = requests.post(f"{api}/maintenance/train", json={"target": "magic"}, headers=manager)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "target")
    # everyone signed in reads the versions
    r = requests.get(f"{api}/maintenance/models/failure-7d", headers=rep)
    assert r.status_code == 200 and isinstance(r.json()["items"], list)
    r = requests.get(f"{api}/maintenance/models/..%2Fetc", headers=rep)
    assert r.status_code == 404
    # a training job is a manager's concern; an unknown one is a 404
    assert requests.get(f"{api}/maintenance/train/1", headers=rep).status_code == 403
    r = requests.get(f"{api}/maintenance/train/999999999", headers=admin)
    assert r.status_code == 404
    r = requests.post(f"{api}/maintenance/train", json={"target": "anomaly"}, headers=admin)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "equipment_model")


def test_trainings_queued_at_will_run_one_at_a_time_per_worker() -> None:
    """Managers may queue any number of trainings (maintenance and CRM models, CPU-bound,
    up to an hour each): each training task runs one job at a time in a worker, so the
    worker's other slots stay free for everyone's imports, exports and plans
    (tests/kernel/test_jobs.py shows what the cap does)."""
    registry = Registry()
    maintenance_jobs.register(registry)
    insights_jobs.register(registry)
    assert registry.tasks[maintenance_jobs.TRAIN_TASK].concurrency == 1
    assert registry.tasks[insights_jobs.TRAIN_TASK].concurrency == 1
