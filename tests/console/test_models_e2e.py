"""The models' life cycle in the console: the Models page (the active version's card in
words, open drift, "Train now" refused for too little data and then done, a rollback after
a confirmation that re-scores the open records), the score columns of the lead, opportunity
and account lists, and an account's computed health beside its manual override."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import requests

from fieldmesh.app import ROUTE_MODULES
from kernel.settings import Settings
from tests.appserver import DEFAULT_JOB_MODULES, serve_app
from tests.console.conftest import make_user
from tests.eventually import eventually
from tests.insights.test_live_scores import _history, _job_done
from tests.world import People, own_world


@pytest.fixture(scope="module")
def models_world(
    services_up: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, People]]:
    """A database of its own (models train on every lead in it), the whole app and the
    insights jobs (training, re-scoring)."""
    with own_world(services_up, "fm_models_ui") as (dsn, people):
        settings = services_up.with_overrides(
            database_url=dsn, state_dir=tmp_path_factory.mktemp("state")
        )
        with serve_app(settings, ROUTE_MODULES, (*DEFAULT_JOB_MODULES, "insights.jobs")) as url:
            yield url, dsn, people


def test_models_page_lists_and_account_health(
    models_world: tuple[str, str, People],
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    url, dsn, people = models_world
    api = url + "/api/v1"
    admin = make_user(dsn, "admin")
    manager = make_user(dsn, "manager")
    h = people.headers("admin")
    _history(dsn, people.t1, 240)
    job = requests.post(
        f"{api}/insights/train", json={"model": "lead-score"}, headers=h, timeout=10
    )
    assert job.status_code == 202, job.text
    assert _job_done(api, job.json(), h)["status"] == "done"
    _history(dsn, people.t1, 60, seed=3)
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT version FROM maintenance_model WHERE name = 'lead-score' AND active"
        ).fetchone()
    assert row is not None
    first = str(row[0])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO insights_drift (model, model_version, feature, psi, live_rows) "
            "VALUES ('lead-score', %s, 'region', 0.37, 90)",
            (first,),
        )

    def post(path: str, body: dict[str, Any]) -> int:
        got = requests.post(f"{api}{path}", json=body, headers=h, timeout=10)
        assert got.status_code == 201, got.text
        return int(got.json()["id"])

    lead = post(
        "/leads", {"last_name": "Open lead", "source": "referral", "territory_id": people.t1}
    )
    acct = post("/accounts", {"name": "Health SA", "type": "customer", "territory_id": people.t1})
    opp = post("/opportunities", {"name": "Unscored deal", "account_id": acct, "amount": 900})

    def health() -> bool:
        got = requests.get(f"{api}/insights/accounts/{acct}/health", headers=h, timeout=10)
        return got.status_code == 200 and got.json()["health"] is not None

    eventually(health, timeout_s=60, what="the account's computed health")

    r = run_scenario(
        "models",
        url,
        {
            "admin": admin,
            "manager": manager,
            "accountId": acct,
            "accountName": "Health SA",
            "leadName": "Open lead",
        },
        timeout_s=600,
    )
    # the card: the active version, its figures in words, the open drift alert
    assert r["before"]["active"] == first
    assert "Ranking (AUC)" in r["before"]["text"] and "Brier score" in r["before"]["text"]
    assert "Trained on 240 records" in r["before"]["text"]
    assert len(r["before"]["drift"]) == 1 and r["before"]["drift"][0].startswith("Region moved")
    # training refused for too little data, with the reason; then a new version
    assert "too little data" in r["refused"] and "active version stays" in r["refused"]
    second = r["after"]
    assert second and second != first and f"version {second} is active" in r["trained"]
    assert r["buttons"] == [
        {"version": second, "active": "true", "button": None},
        {"version": first, "active": "false", "button": "Roll back"},
    ]
    # the rollback, confirmed: the first version again, the open lead re-scored with it
    assert first in r["question"] and r["question"].startswith("Roll back Lead score")
    assert r["rolledBack"]["active"] == first
    assert "re-scored" in r["rolledBack"]["status"]
    got = requests.get(
        f"{api}/insights/scores",
        params={"entity": "leads", "ids": str(lead)},
        headers=h,
        timeout=10,
    ).json()
    assert got["items"][0]["scores"]["lead-score"]["model_version"] == first
    assert not re.search(r"\bnull\b|undefined|NaN", r["mainText"])
    assert r["overflow"] <= 0

    # the lists: the lead's score with the model version, dashes where nothing scored
    assert "Score" in r["leads"]["heads"]
    cell = r["leads"]["cells"][str(lead)]
    assert re.fullmatch(r"\d{1,3}", cell["text"]) and cell["version"] == first
    assert r["opps"]["cells"][str(opp)]["text"] == "—"
    assert r["churn"]["cells"][str(acct)]["text"] == "—"
    assert re.fullmatch(r"\d{1,3}", r["health"]["cells"][str(acct)]["text"])
    assert r["health"]["cells"][str(acct)]["version"] == "health-rules-1"
    for lst in ("leads", "opps", "churn"):
        assert not re.search(r"\bnull\b|undefined|NaN", r[lst]["text"])

    # the account's health: computed, then the typed override in force, then computed again
    assert r["computed"]["inForce"] == "computed" and "Computed:" in r["computed"]["text"]
    assert "from 0 to 100" in r["invalid"]
    assert (
        r["overridden"]["inForce"] == "override" and "35 / 100 in force" in r["overridden"]["text"]
    )
    assert r["overridden"]["field"].strip() == "35"
    assert r["cleared"]["inForce"] == "computed" and "Manual override: none" in r["cleared"]["text"]
    with psycopg.connect(dsn) as conn:
        saved = conn.execute(
            "SELECT health_score, name FROM accounts WHERE id = %s", (acct,)
        ).fetchone()
    assert saved == (None, "Health SA renamed")

    # a manager: the cards and "Train now", no activation
    assert r["managerView"]["train"] == 1
    assert not {"Roll back", "Activate"} & set(r["managerView"]["buttons"])
    # no console error and no refused request (a refused training is a job's state, not a 4xx;
    # the invalid override is caught before it is sent)
    assert r["errors"] == [] and r["bad"] == []
