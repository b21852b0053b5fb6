"""The models' life cycle through the API and the CLI: versions with their cards and open
drift alerts, activation and rollback by an admin (logged with who and when) re-scoring the
open records with the activated version through the jobs role, the refusals (roles, unknown
model or version, malformed input), and the batch scores of the records the caller may see."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from insights import jobs as jobs_module
from insights import live
from insights.maintenance.cli import cmd_models
from kernel.settings import Settings
from tests.appserver import serve_app
from tests.eventually import eventually
from tests.insights.test_live_scores import World, _history, _job_done
from tests.world import own_world

pytestmark = pytest.mark.integration


@dataclass
class ModelsWorld(World):
    state_dir: Path


@pytest.fixture(scope="module")
def world(services_up: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelsWorld]:
    with own_world(services_up, "fm_models") as (dsn, people):
        settings = services_up.with_overrides(
            database_url=dsn, state_dir=tmp_path_factory.mktemp("state")
        )
        with serve_app(
            settings, ("identity.routes", "crm.routes", "insights.routes"), ("insights.jobs",)
        ) as base:
            yield ModelsWorld(base + "/api/v1", dsn, people, settings.state_dir)


def _train(world: World) -> str:
    h = world.people.headers("manager")
    r = requests.post(
        f"{world.api}/insights/train", json={"model": "lead-score"}, headers=h, timeout=10
    )
    assert r.status_code == 202, r.text
    done = _job_done(world.api, r.json(), h)
    assert done["status"] == "done", done
    with psycopg.connect(world.dsn) as conn:
        row = conn.execute(
            "SELECT version FROM maintenance_model WHERE name = 'lead-score' AND active"
        ).fetchone()
    assert row is not None
    return str(row[0])


def _lead(world: World, who: str, territory: int, last_name: str) -> int:
    r = requests.post(
        f"{world.api}/leads",
        json={"last_name": last_name, "source": "referral", "territory_id": territory},
        headers=world.people.headers(who),
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _scores(world: World, who: str, entity: str, ids: list[int]) -> dict[int, Any]:
    r = requests.get(
        f"{world.api}/insights/scores",
        params={"entity": entity, "ids": ",".join(map(str, ids))},
        headers=world.people.headers(who),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return {int(i["id"]): i["scores"] for i in r.json()["items"]}


def _lead_version(world: World, lead_id: int) -> str | None:
    got = _scores(world, "admin", "leads", [lead_id]).get(lead_id, {}).get("lead-score")
    return None if got is None else str(got["model_version"])


def _activate(world: World, who: str, name: str, body: Any) -> requests.Response:
    return requests.post(
        f"{world.api}/insights/models/{name}/activate",
        json=body,
        headers=world.people.headers(who),
        timeout=10,
    )


def test_versions_activation_rollback_and_rescoring(
    world: ModelsWorld, services_up: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    p = world.people
    _history(world.dsn, p.t1, 240)
    first = _train(world)
    _history(world.dsn, p.t1, 60, seed=5)  # more decided leads: a second version
    second = _train(world)
    assert first != second
    lead = _lead(world, "rep1", p.t1, "Open one")
    eventually(lambda: _lead_version(world, lead) == second, what="the new lead scored")
    with psycopg.connect(world.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO insights_drift (model, model_version, feature, psi, live_rows) "
            "VALUES ('lead-score', %s, 'source', 0.41, 120)",
            (second,),
        )

    # the cards, newest first; managers read them, reps and viewers do not
    for who in ("rep1", "viewer"):
        r = requests.get(f"{world.api}/insights/models", headers=p.headers(who), timeout=10)
        assert r.status_code == 403, r.text
    r = requests.get(f"{world.api}/insights/models", headers=p.headers("manager"), timeout=10)
    assert r.status_code == 200, r.text
    model = next(m for m in r.json()["items"] if m["name"] == "lead-score")
    assert model["active_version"] == second and model["entity"] == "leads"
    assert model["trainable"] is True and model["versions_total"] == 2
    assert [v["version"] for v in model["versions"]] == [second, first]
    newest = model["versions"][0]
    assert newest["active"] is True and "cv_auc" in newest["metrics"]
    assert {"cv_precision", "cv_recall", "cv_f1", "cv_brier", "cv_ece"} <= set(newest["metrics"])
    assert newest["data"]["rows"] == 300 and newest["data"]["window"]
    assert "source" in newest["params"]["categorical"]
    # activated by the training run: a date, no person
    assert newest["last_activated_at"] and newest["last_activated_via"] == "training"
    assert newest["last_activated_by"] is None
    assert [(d["feature"], d["model_version"]) for d in model["drift"]] == [("source", second)]

    # only admins activate
    for who in ("manager", "rep1", "viewer"):
        assert _activate(world, who, "lead-score", {"version": first}).status_code == 403

    # rollback: the older version becomes active, the open lead is re-scored with it
    r = _activate(world, "admin", "lead-score", {"version": first})
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["previous_version"] == second and done["changed"] is True
    job = done["rescore_job"]
    assert job and done["rescore_poll"].endswith(f"/insights/rescore/{job}")

    def finished() -> dict[str, Any] | None:
        got: dict[str, Any] = requests.get(
            f"{world.api}/insights/rescore/{job}", headers=p.headers("admin"), timeout=10
        ).json()
        return got if got["status"] in ("done", "failed") else None

    assert eventually(finished, timeout_s=120, what="the re-scoring")["status"] == "done"
    assert _lead_version(world, lead) == first
    r = requests.get(f"{world.api}/insights/models", headers=p.headers("admin"), timeout=10)
    model = next(m for m in r.json()["items"] if m["name"] == "lead-score")
    assert model["active_version"] == first
    older = model["versions"][1]
    assert older["active"] is True and older["last_activated_by"] == "Admin"
    assert older["last_activated_via"] == "api"
    with psycopg.connect(world.dsn) as conn:
        log = conn.execute(
            "SELECT version, previous_version, activated_via, activated_by "
            "FROM insights_model_activation WHERE model = 'lead-score' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        assert log == (first, second, "api", p.users["admin"])
        # the nightly retraining records a new version but keeps the one a person chose
        assert live.chosen_by_person(conn, "lead-score")
        kept = jobs_module._train_sync(world.dsn, "lead-score", world.state_dir, nightly=True)
        assert kept.activated is False
        active = conn.execute(
            "SELECT version FROM maintenance_model WHERE name = 'lead-score' AND active"
        ).fetchone()
        assert active == (first,)
    eventually(lambda: _lead_version(world, lead) == first, what="still scored by the choice")

    # the CLI rolls forward again: the same activation, the same re-scoring
    settings = services_up.with_overrides(database_url=world.dsn)
    assert cmd_models(argparse.Namespace(name="lead-score", activate=second), settings) == 0
    out = capsys.readouterr().out
    assert f"lead-score {second} active (was {first}; re-scoring job" in out
    assert f"* {second}" in out
    eventually(lambda: _lead_version(world, lead) == second, what="re-scored by the CLI's job")
    assert cmd_models(argparse.Namespace(name="lead-score", activate="nope"), settings) == 1
    assert "no recorded model 'lead-score' version 'nope'" in capsys.readouterr().out

    # activating the active version again changes nothing (and logs nothing)
    r = _activate(world, "admin", "lead-score", {"version": second})
    assert r.status_code == 200 and r.json()["changed"] is False


def test_activation_refuses_unknown_and_malformed_input(world: World) -> None:
    r = _activate(world, "admin", "no-such-model", {"version": "v1"})
    assert r.status_code == 404 and r.json()["error"]["field"] == "name", r.text
    # (run alone, this world has no lead model yet: then the name is the unknown part)
    r = _activate(world, "admin", "lead-score", {"version": "20990101T000000000000Z-none"})
    assert r.status_code == 404 and r.json()["error"]["field"] in ("version", "name"), r.text
    r = _activate(world, "admin", "bad%20name!", {"version": "v1"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "name", r.text
    for body in ({"version": ""}, {"version": "a b"}, {"version": 3}, {"v": "x"}):
        r = _activate(world, "admin", "lead-score", body)
        assert r.status_code == 422, (body, r.text)
    r = requests.get(
        f"{world.api}/insights/rescore/999999999", headers=world.people.headers("admin"), timeout=10
    )
    assert r.status_code == 404


def test_batch_scores_answer_only_visible_records(world: World) -> None:
    p = world.people
    mine = _lead(world, "rep1", p.t1, "Mine")
    theirs = _lead(world, "rep2", p.t2, "Theirs")
    with psycopg.connect(world.dsn, autocommit=True) as conn:
        for rid, score in ((mine, 71), (theirs, 33)):
            conn.execute(
                "INSERT INTO insights_score (entity, record_id, model, model_version, "
                "probability, score, reasons) VALUES ('leads', %s, 'lead-score', 'v-test', "
                "%s, %s, '[]') ON CONFLICT (entity, record_id, model) DO UPDATE SET "
                "model_version = 'v-test', probability = excluded.probability, "
                "score = excluded.score",
                (rid, score / 100, score),
            )
    # another territory's lead is left out, as is one that does not exist
    got = _scores(world, "rep1", "leads", [theirs, mine, 2**40])
    assert list(got) == [mine]
    assert got[mine]["lead-score"]["score"] == 71
    assert got[mine]["lead-score"]["probability"] == pytest.approx(0.71)
    assert got[mine]["lead-score"]["model_version"] == "v-test"
    assert set(_scores(world, "admin", "leads", [mine, theirs])) == {mine, theirs}
    # an account with no score yet answers an empty set of scores, not an error
    r = requests.post(
        f"{world.api}/accounts",
        json={"name": "Unscored", "territory_id": p.t1},
        headers=p.headers("rep1"),
        timeout=10,
    )
    assert r.status_code == 201, r.text
    acct = r.json()["id"]
    got = _scores(world, "rep1", "accounts", [acct])
    assert acct in got and "account-churn" not in got[acct]

    def bad(params: dict[str, str]) -> requests.Response:
        return requests.get(
            f"{world.api}/insights/scores", params=params, headers=p.headers("rep1"), timeout=10
        )

    for params in (
        {"entity": "leads", "ids": "1,abc"},
        {"entity": "leads", "ids": "0"},
        {"entity": "leads", "ids": ",".join(str(i) for i in range(1, 202))},
        {"entity": "users", "ids": "1"},
        {"entity": "leads"},
        {"ids": "1"},
    ):
        r = bad(params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["error"]["message"]
    assert len(_scores(world, "rep1", "leads", list(range(1, 201)))) <= 200


def test_account_health_says_whether_the_override_or_the_computed_value_counts(
    world: World,
) -> None:
    p = world.people
    h = p.headers("rep1")
    r = requests.post(
        f"{world.api}/accounts", json={"name": "Override SA", "territory_id": p.t1}, headers=h,
        timeout=10,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    acct = r.json()["id"]

    def health() -> dict[str, Any] | None:
        got: dict[str, Any] = requests.get(
            f"{world.api}/insights/accounts/{acct}/health", headers=h, timeout=10
        ).json()
        return got if got["health"] is not None else None

    assert eventually(health, what="the computed health")["in_force"] == "computed"

    def patch(value: int | None) -> requests.Response:
        etag = requests.get(f"{world.api}/accounts/{acct}", headers=h, timeout=10).headers["ETag"]
        return requests.patch(
            f"{world.api}/accounts/{acct}",
            json={"health_score": value},
            headers={**h, "If-Match": etag},
            timeout=10,
        )

    assert patch(40).status_code == 200
    got = health()
    assert got is not None and got["in_force"] == "override" and got["manual_override"] == 40
    assert patch(101).status_code == 422
    stale = requests.patch(
        f"{world.api}/accounts/{acct}",
        json={"health_score": 10},
        headers={**h, "If-Match": f'"{acct}.0"'},
        timeout=10,
    )
    assert stale.status_code == 412, stale.text
    assert patch(None).status_code == 200
    got = health()
    assert got is not None and got["in_force"] == "computed" and got["manual_override"] is None
