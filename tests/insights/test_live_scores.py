"""Scores used live: a lead model trained by a job from the CRM's own leads, a lead
created through the API scored by the jobs worker (with version and reasons), record
scoping on the score endpoint, refusal on too little data, computed account health."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pytest
import requests

from fieldmesh import services
from fieldmesh.migrate import upgrade
from kernel.settings import Settings
from tests.appserver import serve_app
from tests.eventually import eventually
from tests.world import People, make_people

pytestmark = pytest.mark.integration


@dataclass
class World:
    api: str
    dsn: str
    people: People


@pytest.fixture(scope="module")
def world(services_up: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # a database of its own: the models train on every lead in it
    name = f"fm_ins_{uuid.uuid4().hex[:8]}"
    dsn = services.create_database(services_up, name)
    try:
        upgrade(dsn)
        people = asyncio.run(make_people(dsn, uuid.uuid4().hex[:8]))
        settings = services_up.with_overrides(
            database_url=dsn, state_dir=tmp_path_factory.mktemp("state")
        )
        with serve_app(
            settings, ("identity.routes", "crm.routes", "insights.routes"), ("insights.jobs",)
        ) as base:
            yield World(base + "/api/v1", dsn, people)
    finally:
        services.drop_database(services_up, name)


def _history(dsn: str, territory: int, n: int, seed: int = 0) -> None:
    """Closed leads where referrals with an executive title and an email convert."""
    rng = np.random.default_rng(seed)
    with psycopg.connect(dsn) as conn:
        for i in range(n):
            strong = bool(rng.random() < 0.5)
            source = "referral" if strong else str(rng.choice(["cold_call", "website"]))
            title = "VP Operations" if strong else str(rng.choice(["", "Clerk"]))
            p = 0.8 if strong else 0.1
            status = "converted" if rng.random() < p else "unqualified"
            conn.execute(
                "INSERT INTO leads (first_name, last_name, source, title, email, status, "
                "territory_id, estimated_amount, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now() - make_interval(days => %s))",
                (
                    "L",
                    f"hist{i}",
                    source,
                    title,
                    f"l{i}@x.test" if strong else None,
                    status,
                    territory,
                    float(rng.integers(1000, 50000)),
                    n - i,
                ),
            )


def _job_done(api: str, job: dict[str, Any], h: dict[str, str]) -> dict[str, Any]:
    def state() -> dict[str, Any] | None:
        got: dict[str, Any] = requests.get(
            f"{api}/insights/train/{job['job_id']}", headers=h, timeout=10
        ).json()
        return got if got["status"] in ("done", "failed") else None

    return eventually(state, timeout_s=120, what="the training job to finish")


def test_too_little_data_is_refused_with_the_reason(world: World) -> None:
    h = world.people.headers("manager")
    r = requests.post(
        f"{world.api}/insights/train", json={"model": "opportunity-win"}, headers=h, timeout=10
    )
    assert r.status_code == 202, r.text
    failed = _job_done(world.api, r.json(), h)
    assert failed["status"] == "failed"
    assert "insufficient_data" in failed["error"]


def test_a_new_lead_is_scored_live_with_version_and_reasons(world: World) -> None:
    p = world.people
    _history(world.dsn, p.t1, 240)
    h = p.headers("manager")
    r = requests.post(
        f"{world.api}/insights/train", json={"model": "lead-score"}, headers=h, timeout=10
    )
    assert r.status_code == 202, r.text
    done = _job_done(world.api, r.json(), h)
    assert done["status"] == "done", done
    with psycopg.connect(world.dsn) as conn:
        row = conn.execute(
            "SELECT version, metrics FROM maintenance_model WHERE name = 'lead-score' AND active"
        ).fetchone()
    assert row is not None and "cv_auc" in row[1]
    version = row[0]

    rep = p.headers("rep1")
    ids = {}
    for kind, body in (
        ("strong", {"last_name": "Strong", "source": "referral", "title": "VP Sales",
                    "email": "s@x.test"}),
        ("weak", {"last_name": "Weak", "source": "cold_call"}),
    ):  # fmt: skip
        r = requests.post(
            f"{world.api}/leads", json={**body, "territory_id": p.t1}, headers=rep, timeout=10
        )
        assert r.status_code == 201, r.text
        ids[kind] = r.json()["id"]

    def scored(lead_id: int) -> dict[str, Any] | None:
        got = requests.get(f"{world.api}/insights/leads/{lead_id}/score", headers=rep, timeout=10)
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body["score"]

    strong = eventually(lambda: scored(ids["strong"]), timeout_s=60, what="the strong lead's score")
    weak = eventually(lambda: scored(ids["weak"]), timeout_s=60, what="the weak lead's score")
    assert strong["model_version"] == version == weak["model_version"]
    assert strong["score"] > weak["score"]
    assert 0 < strong["probability"] <= 1 and strong["score"] == round(strong["probability"] * 100)
    assert len(strong["reasons"]) == 3
    # the signals the history rewards are among its reasons, pulling the score up
    assert any(
        r["feature"] in ("source", "title_level", "has_email") and r["contribution"] > 0
        for r in strong["reasons"]
    ), strong["reasons"]

    # an update re-scores: the weak lead gets the strong signals
    r = requests.patch(
        f"{world.api}/leads/{ids['weak']}",
        json={"source": "referral", "title": "Chief Executive", "email": "w@x.test"},
        headers={**rep, "If-Match": "*"},
        timeout=10,
    )
    assert r.status_code in (200, 428), r.text
    if r.status_code == 200:
        eventually(
            lambda: ((s := scored(ids["weak"])) and s["score"] >= strong["score"] - 5) or None,
            timeout_s=60,
            what="the updated lead's new score",
        )

    # scoped: a rep of the other territory cannot read the score (nor learn the lead exists)
    other = requests.get(
        f"{world.api}/insights/leads/{ids['strong']}/score", headers=p.headers("rep2"), timeout=10
    )
    assert other.status_code == 404


def test_account_health_is_computed_from_service_history(world: World) -> None:
    p = world.people
    rep = p.headers("rep1")
    r = requests.post(
        f"{world.api}/accounts", json={"name": "Healthy Co", "territory_id": p.t1},
        headers=rep, timeout=10,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    account = r.json()["id"]

    def health() -> dict[str, Any] | None:
        got = requests.get(
            f"{world.api}/insights/accounts/{account}/health", headers=rep, timeout=10
        )
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body if body["health"] is not None else None

    first = eventually(health, timeout_s=60, what="the account's health")
    assert first["manual_override"] is None
    # a late work order (SLA passed, still open) lowers it, and the owner gets a task
    with psycopg.connect(world.dsn) as conn:
        conn.execute("UPDATE accounts SET owner_id = %s WHERE id = %s", (p.users["rep1"], account))
        for i in range(2):
            conn.execute(
                "INSERT INTO work_orders (account_id, title, sla_due_at, territory_id) "
                "VALUES (%s, %s, now() - interval '1 day', %s)",
                (account, f"late {i}", p.t1),
            )
    r = requests.post(
        f"{world.api}/activities",
        json={"type": "note", "subject": "called", "account_id": account},
        headers=rep,
        timeout=10,
    )  # an account's activity queues its health
    assert r.status_code == 201, r.text
    lower = eventually(
        lambda: ((b := health()) and b["health"]["score"] < first["health"]["score"] and b) or None,
        timeout_s=60,
        what="the lower health",
    )
    assert lower["health"]["reasons"][0]["feature"] == "sla_breaches"
    with psycopg.connect(world.dsn) as conn:
        tasks = conn.execute(
            "SELECT count(*) FROM activities WHERE account_id = %s AND source = 'insights'",
            (account,),
        ).fetchone()
    assert tasks is not None and tasks[0] == 1
