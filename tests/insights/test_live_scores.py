"""Scores used live: a lead model trained by a job from the CRM's own leads, a lead
created through the API scored by the jobs worker (with version and reasons), record
scoping on the score endpoint, refusal on too little data, computed account health."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
import requests

from insights import live, pipeline
from kernel.settings import Settings
from tests.appserver import serve_app
from tests.clock import clear_of
from tests.eventually import eventually
from tests.world import People, own_world

pytestmark = pytest.mark.integration


@dataclass
class World:
    api: str
    dsn: str
    people: People


@pytest.fixture(scope="module")
def world(services_up: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # a database of its own: the models train on every lead in it
    with own_world(services_up, "fm_ins") as (dsn, people):
        settings = services_up.with_overrides(
            database_url=dsn, state_dir=tmp_path_factory.mktemp("state")
        )
        with serve_app(
            settings, ("identity.routes", "crm.routes", "insights.routes"), ("insights.jobs",)
        ) as base:
            yield World(base + "/api/v1", dsn, people)


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
        score: dict[str, Any] | None = got.json()["score"]
        return score

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

    # drift: a burst of open cold-call leads without e-mail is unlike the training leads
    with psycopg.connect(world.dsn) as conn:
        for i in range(80):
            conn.execute(
                "INSERT INTO leads (last_name, source, status, territory_id) "
                "VALUES (%s, 'cold_call', 'new', %s)",
                (f"burst{i}", p.t1),
            )
        conn.commit()
        raised = live.check_drift(conn, "leads")
        conn.commit()
        again = live.check_drift(conn, "leads")  # still drifting: no second alert
        conn.commit()
    assert {a.feature for a in raised} >= {"source", "__score__"} and again == []
    alerts = requests.get(f"{world.api}/insights/drift", headers=h, timeout=10).json()["items"]
    assert {a["feature"] for a in alerts if a["state"] == "raised"} >= {"source"}
    assert requests.get(f"{world.api}/insights/drift", headers=rep, timeout=10).status_code == 403

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


def test_pipeline_forecast_by_owner_with_interval_and_what_if(world: World) -> None:
    p = world.people
    # this month's deals and the history before it, read back (and by the snapshot test
    # below) within the same UTC month
    today = clear_of("month").date()
    with psycopg.connect(world.dsn) as conn:
        acct = conn.execute(
            "INSERT INTO accounts (name, territory_id, owner_id) VALUES ('Deals Co', %s, %s) "
            "RETURNING id",
            (p.t1, p.users["rep1"]),
        ).fetchone()
        stage = conn.execute(
            "SELECT s.pipeline_id, s.id FROM pipeline_stages s JOIN pipelines p "
            "ON p.id = s.pipeline_id WHERE p.is_default AND s.name = 'Proposal'"
        ).fetchone()
        assert acct is not None and stage is not None
        for i, amount in enumerate((1000.0, 3000.0, 6000.0)):
            conn.execute(
                "INSERT INTO opportunities (name, account_id, pipeline_id, stage_id, amount, "
                "close_date, probability, owner_id, territory_id) "
                "VALUES (%s, %s, %s, %s, %s, %s, 50, %s, %s)",
                (f"open {i}", acct[0], stage[0], stage[1], amount, today, p.users["rep1"], p.t1),
            )
        # 24 months of won history: a year's forecast made in January looks 12 months
        # ahead, and a forecast needs twice its horizon of history (fewer months left the
        # year's history_point empty from January to May)
        for k in range(1, 25):
            conn.execute(
                "INSERT INTO opportunities (name, account_id, pipeline_id, stage_id, amount, "
                "probability, status, closed_at, owner_id, territory_id) "
                "VALUES (%s, %s, %s, %s, %s, 100, 'won', now() - make_interval(months => %s), "
                "%s, %s)",
                (f"won {k}", acct[0], stage[0], stage[1], 2000.0 + 100 * k, k,
                 p.users["rep1"], p.t1),
            )  # fmt: skip

    def get(who: str, **params: Any) -> dict[str, Any]:
        r = requests.get(
            f"{world.api}/insights/forecast/pipeline",
            params={"group_by": "owner", "periods": 2, **params},
            headers=p.headers(who),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    mine = {g["group"]: g for g in get("manager")["items"]}[str(p.users["rep1"])]
    now_m, next_m = mine["periods"]
    assert now_m["deals"] == 3 and now_m["expected"] == 5000.0  # 50% of 10,000
    assert 0.0 <= now_m["low"] < now_m["expected"] < now_m["high"] <= 10000.0
    assert next_m["deals"] == 0 and next_m["expected"] == 0.0
    assert now_m["history_point"] is not None and mine["trend_per_month"] is not None
    assert mine["trend_per_month"] < 0  # older months were larger
    # what-if: a lower win rate halves the expectation; slipping moves the deals a month
    half = {g["group"]: g for g in get("manager", win_rate_factor=0.5)["items"]}
    assert half[str(p.users["rep1"])]["periods"][0]["expected"] == 2500.0
    slipped = {g["group"]: g for g in get("manager", slip_months=1)["items"]}
    assert [m["deals"] for m in slipped[str(p.users["rep1"])]["periods"]] == [0, 3]
    # scoped: the other territory's rep sees none of these deals
    assert str(p.users["rep1"]) not in {g["group"] for g in get("rep2")["items"]}
    bad = requests.get(
        f"{world.api}/insights/forecast/pipeline",
        params={"periods": 99},
        headers=p.headers("manager"),
        timeout=10,
    )
    assert bad.status_code == 422 and "periods" in bad.text
    # by year: this year's deals and the history's forecast summed over the months left
    year = {g["group"]: g for g in get("manager", period="year", periods=1)["items"]}
    this_year = year[str(p.users["rep1"])]["periods"][0]
    assert this_year["period"] == f"{today.year}" and this_year["deals"] == 3
    assert this_year["expected"] == 5000.0 and this_year["history_point"] is not None


def test_lead_funnel_by_source_is_scoped(world: World) -> None:
    p = world.people

    def funnel(who: str) -> dict[str, dict[str, Any]]:
        r = requests.get(
            f"{world.api}/insights/leads/funnel", params={"by": "source"},
            headers=p.headers(who), timeout=10,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        return {row["key"]: row for row in r.json()["items"]}

    rows = funnel("manager")
    # the generated history: referrals convert about 80%, cold calls about 10%
    assert rows["referral"]["conversion_rate"] > 0.6 > 0.3 > rows["cold_call"]["conversion_rate"]
    assert (
        rows["referral"]["leads"] >= rows["referral"]["qualified"] + rows["referral"]["unqualified"]
    )
    other = funnel("rep2")  # territory 2 has none of these leads
    assert sum(r["leads"] for r in other.values()) < sum(r["leads"] for r in rows.values())
    bad = requests.get(
        f"{world.api}/insights/leads/funnel", params={"by": "colour"},
        headers=p.headers("manager"), timeout=10,
    )  # fmt: skip
    assert bad.status_code == 422


def test_a_deal_longer_in_its_stage_than_past_deals_is_stalled(world: World) -> None:
    p = world.people
    with psycopg.connect(world.dsn) as conn:
        acct = conn.execute(
            "INSERT INTO accounts (name, territory_id) VALUES ('Stall Co', %s) RETURNING id",
            (p.t1,),
        ).fetchone()
        stages: dict[str, int] = dict(
            conn.execute(
                "SELECT s.name, s.id FROM pipeline_stages s JOIN pipelines p "
                "ON p.id = s.pipeline_id WHERE p.is_default"
            ).fetchall()
        )
        assert acct is not None

        def opp(name: str, stage: str, status: str) -> int:
            row = conn.execute(
                "INSERT INTO opportunities (name, account_id, pipeline_id, stage_id, "
                "probability, status, territory_id) SELECT %s, %s, pipeline_id, id, "
                "probability, %s, %s FROM pipeline_stages WHERE id = %s RETURNING id",
                (name, acct[0], status, p.t1, stages[stage]),
            ).fetchone()
            assert row is not None
            return int(row[0])

        def moved(opp_id: int, stage: str, days_ago: float) -> None:
            conn.execute(
                "INSERT INTO opportunity_stage_history (opportunity_id, to_stage_id, changed_at) "
                "VALUES (%s, %s, now() - make_interval(secs => %s))",
                (opp_id, stages[stage], days_ago * 86400),
            )

        for i in range(6):  # past deals stayed 2-4 days in Negotiation
            o = opp(f"past {i}", "Closed won", "won")
            moved(o, "Negotiation", 60 + i)
            moved(o, "Closed won", 60 + i - (2 + i * 0.4))
        slow, fresh = opp("slow", "Negotiation", "open"), opp("fresh", "Negotiation", "open")
        moved(slow, "Negotiation", 30)
        moved(fresh, "Negotiation", 1)

    def win(opp_id: int) -> dict[str, Any]:
        r = requests.get(
            f"{world.api}/insights/opportunities/{opp_id}/win",
            headers=p.headers("manager"),
            timeout=10,
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    s, f = win(slow), win(fresh)
    assert 3.0 < s["stage_p90_days"] < 5.0
    assert s["stalled"] is True and f["stalled"] is False
    assert s["stage_probability"] == 75.0 and 29.0 < s["days_in_stage"] < 31.0


def test_forecast_snapshots_are_scored_against_actuals(world: World) -> None:
    """A snapshot taken before last month began is set against last month's won revenue
    (the pipeline test's history closed 2,100 then)."""
    today = datetime.now(UTC).date()
    last = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    taken = (last - timedelta(days=1)).replace(day=15)

    async def snap() -> int:
        async with await psycopg.AsyncConnection.connect(world.dsn) as conn:
            n = await pipeline.snapshot(conn, taken, months=3)
            await conn.commit()
            return n

    # a euro deal won last month: snapshots and accuracy are per currency, never summed
    with psycopg.connect(world.dsn) as conn:
        conn.execute(
            "INSERT INTO opportunities (name, account_id, pipeline_id, stage_id, amount, "
            "currency, probability, status, closed_at, owner_id, territory_id) "
            "SELECT 'euro win', account_id, pipeline_id, stage_id, 700, 'EUR', 100, 'won', "
            "%s, owner_id, territory_id FROM opportunities WHERE name = 'won 1'",
            (datetime.combine(last + timedelta(days=3), datetime.min.time(), UTC),),
        )
        # and one still open, due last month at 50%: what the euro snapshot expected
        conn.execute(
            "INSERT INTO opportunities (name, account_id, pipeline_id, stage_id, amount, "
            "currency, probability, close_date, owner_id, territory_id) "
            "SELECT 'euro open', account_id, pipeline_id, stage_id, 400, 'EUR', 50, %s, "
            "owner_id, territory_id FROM opportunities WHERE name = 'won 1'",
            (last + timedelta(days=3),),
        )
    assert asyncio.run(snap()) >= 6

    def accuracy(**params: str) -> dict[str, Any]:
        r = requests.get(
            f"{world.api}/insights/forecast/accuracy",
            params=params,
            headers=world.people.headers("admin"),
            timeout=10,
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    body = accuracy()
    assert body["currency"] == "USD" and body["currencies"] == ["USD", "EUR"]
    month = {m["month"]: m for m in body["items"]}[f"{last:%Y-%m}"]
    assert month["taken_on"] == taken.isoformat() and month["actual"] == 2100.0
    assert month["error"] == round(month["actual"] - month["expected"], 2)
    assert body["mean_abs_error"] is not None
    euro = accuracy(currency="EUR")
    assert euro["currency"] == "EUR"
    month = {m["month"]: m for m in euro["items"]}[f"{last:%Y-%m}"]
    assert month["actual"] == 700.0 and month["expected"] == 200.0
    assert accuracy(currency="JPY")["items"] == []
    denied = requests.get(
        f"{world.api}/insights/forecast/accuracy",
        headers=world.people.headers("manager"),
        timeout=10,
    )
    assert denied.status_code == 403


def _customers(dsn: str, territory: int, owner: int, n: int, seed: int = 1) -> tuple[int, int]:
    """`n` customer accounts with a deal history where the unengaged ones lapse: engaged
    accounts (visits, repeat wins) keep winning, the others lose their deals and win
    nothing more. Then one account of each profile as of today: (lapsing, engaged)."""
    rng = np.random.default_rng(seed)
    with psycopg.connect(dsn) as conn:
        stage = conn.execute(
            "SELECT s.pipeline_id, s.id FROM pipeline_stages s JOIN pipelines p "
            "ON p.id = s.pipeline_id WHERE p.is_default AND s.name = 'Proposal'"
        ).fetchone()
        assert stage is not None

        def account(name: str, wins: list[int], losses: list[int], visits: list[int]) -> int:
            row = conn.execute(
                "INSERT INTO accounts (name, type, territory_id, owner_id) "
                "VALUES (%s, 'customer', %s, %s) RETURNING id",
                (name, territory, owner),
            ).fetchone()
            assert row is not None
            for status, days in [("won", d) for d in wins] + [("lost", d) for d in losses]:
                conn.execute(
                    "INSERT INTO opportunities (name, account_id, pipeline_id, stage_id, amount, "
                    "probability, status, closed_at, owner_id, territory_id) VALUES "
                    "(%s, %s, %s, %s, %s, 50, %s, now() - make_interval(days => %s), %s, %s)",
                    (f"{name} {status} {days}", row[0], stage[0], stage[1],
                     float(rng.integers(1000, 9000)), status, days, owner, territory),
                )  # fmt: skip
            for days in visits:
                conn.execute(
                    "INSERT INTO activities (type, subject, status, completed_at, account_id, "
                    "owner_id, territory_id) VALUES ('meeting', 'visit', 'done', "
                    "now() - make_interval(days => %s), %s, %s, %s)",
                    (days, row[0], owner, territory),
                )
            return int(row[0])

        for i in range(n):
            keeps = bool(rng.random() < 0.5)
            if bool(rng.random() < 0.1):  # some noise: not every account follows its profile
                keeps = not keeps
            if keeps:  # repeat wins and visits before the window, a win inside it
                account(f"engaged {i}", [500, 300, 200, 60], [], [190, 200, 230, 260])
            else:  # one old win, losses and silence, nothing won since
                account(f"lapsing {i}", [560], [200, 240], [])
        lapsing = account("lapsing today", [380], [20, 60], [])
        engaged = account("engaged today", [320, 120, 20], [], [10, 20, 50, 80])
    return lapsing, engaged


def test_account_churn_is_trained_from_crm_facts_and_served_with_reasons(world: World) -> None:
    p = world.people
    h = p.headers("manager")

    def train() -> dict[str, Any]:
        r = requests.post(
            f"{world.api}/insights/train", json={"model": "account-churn"}, headers=h, timeout=10
        )
        assert r.status_code == 202, r.text
        return _job_done(world.api, r.json(), h)

    refused = train()  # no customer history yet: refused with the reason
    assert refused["status"] == "failed" and "insufficient_data" in refused["error"]

    lapsing, engaged = _customers(world.dsn, p.t1, p.users["rep1"], 160)
    assert train()["status"] == "done"

    def churn(account: int, who: str = "manager") -> requests.Response:
        return requests.get(
            f"{world.api}/insights/accounts/{account}/churn",
            headers=p.headers(who),
            timeout=10,
        )

    got = {a: churn(a).json()["churn"] for a in (lapsing, engaged)}
    for s in got.values():
        assert s is not None and s["model"] == "account-churn" and s["model_version"]
        assert len(s["reasons"]) == 3 and 0.0 <= s["probability"] <= 1.0
    assert got[lapsing]["probability"] > 0.5 > got[engaged]["probability"]
    assert got[lapsing]["score"] == round(100 * got[lapsing]["probability"])
    # another territory's rep does not see the account's score
    assert churn(lapsing, "rep2").status_code in (403, 404)

    # lifetime value and segment, recomputed with the churn scores of the whole base
    def value(account: int) -> dict[str, Any]:
        r = requests.get(f"{world.api}/insights/accounts/{account}/value", headers=h, timeout=10)
        assert r.status_code == 200, r.text
        v: dict[str, Any] = r.json()["value"]
        assert v is not None
        return v

    lv, ev = value(lapsing), value(engaged)
    assert ev["retention"] > lv["retention"] and ev["clv"] > lv["clv"]
    assert ev["yearly_revenue"] > 0 and lv["yearly_revenue"] == 0  # no win in a year
    assert lv["segment"] != ev["segment"] and "at risk" in lv["segment"]
    seg = requests.get(f"{world.api}/insights/segments", headers=h, timeout=10).json()
    assert seg["members"] is None and len(seg["items"]) >= 2
    assert sum(i["accounts"] for i in seg["items"]) >= 162
    at_risk = next(i for i in seg["items"] if i["segment"] == lv["segment"])
    assert at_risk["mean_churn"] > 0.5
    members = requests.get(
        f"{world.api}/insights/segments", params={"segment": lv["segment"]}, headers=h, timeout=10
    ).json()["members"]
    assert lapsing in members and engaged not in members
    # another territory's rep sees no segment figures of territory 1's accounts
    other = requests.get(
        f"{world.api}/insights/segments", headers=p.headers("rep2"), timeout=10
    ).json()
    assert sum(i["accounts"] for i in other["items"]) == 0

    # the churn model's live inputs are watched for drift: the won amounts are where they
    # were in training, until a wave of new customers each with one huge recent win
    with psycopg.connect(world.dsn) as conn:
        before = live.check_drift(conn, "accounts")
        conn.commit()
    assert "log_won_amount_365" not in {a.feature for a in before}
    with psycopg.connect(world.dsn) as conn:
        stage = conn.execute(
            "SELECT s.pipeline_id, s.id FROM pipeline_stages s JOIN pipelines p "
            "ON p.id = s.pipeline_id WHERE p.is_default AND s.name = 'Proposal'"
        ).fetchone()
        assert stage is not None
        for i in range(400):
            acct = conn.execute(
                "INSERT INTO accounts (name, type, territory_id) VALUES (%s, 'customer', %s) "
                "RETURNING id",
                (f"wave {i}", p.t1),
            ).fetchone()
            assert acct is not None
            conn.execute(
                "INSERT INTO opportunities (name, account_id, pipeline_id, stage_id, amount, "
                "probability, status, closed_at) VALUES (%s, %s, %s, %s, 5000000, 100, 'won', "
                "now() - interval '5 days')",
                (f"wave {i}", acct[0], stage[0], stage[1]),
            )
        raised = live.check_drift(conn, "accounts")
        conn.commit()
    assert {a.model for a in raised} == {"account-churn"}
    assert "log_won_amount_365" in {a.feature for a in raised}  # newly raised
