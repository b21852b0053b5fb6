"""Segment membership starts workflows: insights' segmentation run (`insights.live.
value_records`, the K-means segments of the customer base) writes each account's segment;
an account entering or leaving a segment starts the workflows listening for that segment
once (capture trigger on insights_account_value, the matcher, a real worker), and running
the segmentation again with the same outcome starts nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # pandas 3 has no stubs package yet
import psycopg
import pytest

from automation.clock import ManualClock
from insights import live
from tests.automation.harness import deactivate_all, query, save_workflow, worker_thread
from tests.eventually import eventually
from tests.world import People

pytestmark = pytest.mark.integration

RICH = "high-revenue, engaged, loyal"
LAPSED = "low-revenue, quiet, at risk"


@pytest.fixture
def worker(db_dsn: str) -> Iterator[None]:
    deactivate_all(db_dsn)
    with worker_thread(db_dsn, ManualClock()):
        yield


def _segment(dsn: str, accounts: list[int], lapsed: set[int]) -> None:
    """One segmentation run over `accounts`: those in `lapsed` have no recent revenue,
    wins or activity and a high churn probability; the others buy and meet often."""
    rng = np.random.default_rng(3)
    n = len(accounts)
    gone = np.array([a in lapsed for a in accounts])
    raw = pd.DataFrame(
        {"id": accounts, "won_amount_365": np.where(gone, 0.0, rng.normal(20000, 500, n))}
    )
    x = pd.DataFrame(
        {
            "log_won_amount_365": np.where(gone, 0.0, rng.normal(10, 0.1, n)),
            "won_365": np.where(gone, 0, rng.integers(3, 6, n)),
            "activities_90": np.where(gone, 0, rng.integers(5, 9, n)),
            "days_since_won": np.where(gone, rng.normal(400, 10, n), rng.normal(30, 3, n)),
        }
    )
    churn = np.where(gone, rng.uniform(0.7, 0.9, n), rng.uniform(0.05, 0.2, n))
    with psycopg.connect(dsn) as conn:
        live.value_records(conn, raw, x, churn)
        conn.commit()


def _tasks(dsn: str, tag: str) -> list[tuple[str, int, int | None]]:
    return [
        (str(r[0]), int(r[1]), r[2])
        for r in query(
            dsn,
            "SELECT subject, owner_id, account_id FROM activities WHERE source = 'automation'"
            " AND subject LIKE %s ORDER BY subject",
            (f"%{tag}",),
        )
    ]


def _all_tasks(dsn: str, tag: str, n: int) -> list[tuple[str, int, int | None]] | None:
    """The tasks once at least `n` are there and the matcher and this test's runs are idle."""
    got = _tasks(dsn, tag)
    return got if len(got) >= n and _settled(dsn, tag) else None


def _settled(dsn: str, tag: str) -> bool:
    """No segment change waits for the matcher and no run of this test's workflows is
    pending (other tests' runs in the shared database may wait for hours)."""
    left = query(dsn, "SELECT count(*) FROM automation_changes WHERE event LIKE 'segment.%%'")
    busy = query(
        dsn,
        "SELECT count(*) FROM automation_runs r JOIN automation_workflows w"
        " ON w.id = r.workflow_id WHERE r.status IN ('ready', 'waiting') AND w.name LIKE %s",
        (f"% {tag}",),
    )
    return bool(left[0][0] == 0 and busy[0][0] == 0)


def test_an_account_entering_or_leaving_a_segment_starts_its_workflow_once(
    db_dsn: str, people: People, worker: None
) -> None:
    tag = uuid.uuid4().hex[:6]
    rep, manager = people.users["rep1"], people.users["manager"]
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        accounts = [
            int(r[0])
            for r in conn.execute(
                "INSERT INTO accounts (name, type, territory_id, owner_id)"
                " SELECT 'Seg ' || %s || ' ' || g, 'customer', %s, %s FROM generate_series(0, 23) g"
                " RETURNING id",
                (tag, people.t1, rep),
            ).fetchall()
        ]
    name = {a: f"Seg {tag} {i}" for i, a in enumerate(accounts)}
    for wname, trigger, subject in (
        (f"Save {tag}", {"on": "segment.entered", "when": [
            {"field": "segment", "op": "eq", "value": LAPSED}]}, "Save {{record.name}} "),
        (f"Lost {tag}", {"on": "segment.left", "when": [
            {"field": "segment", "op": "eq", "value": RICH}]},
         "{{record.name}} left for {{record.next_segment}} "),
    ):  # fmt: skip
        save_workflow(
            db_dsn,
            manager,
            {
                "name": wname,
                "trigger": trigger,
                "steps": [{"id": "task", "action": "create_task", "subject": subject + tag,
                           "owner": "record_owner", "due_in_s": 3600}],
            },
        )  # fmt: skip
    # the first run: 10 of the 24 enter the lapsed segment (each account once); the
    # segments' names compare their centres with the base's median, so the lapsed stay
    # fewer than half here
    lapsed = set(accounts[14:])
    _segment(db_dsn, accounts, lapsed)
    got = eventually(
        lambda: _all_tasks(db_dsn, tag, 10),
        timeout_s=60,
        what="the entries' workflow ran",
    )
    assert sorted(got) == sorted((f"Save {name[a]} {tag}", rep, a) for a in lapsed)
    seg = dict(query(db_dsn, "SELECT account_id, segment FROM insights_account_value"))
    assert {seg[a] for a in accounts[:14]} == {RICH} and {seg[a] for a in lapsed} == {LAPSED}
    # the second run: account 0 lapses (leaves RICH, enters LAPSED), account 1 is no
    # longer a customer (leaves RICH); the others keep their segment and start nothing
    moved, dropped = accounts[0], accounts[1]
    rest = [a for a in accounts if a != dropped]
    _segment(db_dsn, rest, lapsed | {moved})
    expected = sorted(
        [(f"Save {name[a]} {tag}", rep, a) for a in lapsed | {moved}]
        + [
            (f"{name[moved]} left for {LAPSED} {tag}", rep, moved),
            (f"{name[dropped]} left for  {tag}", rep, dropped),
        ]
    )
    got = eventually(
        lambda: _all_tasks(db_dsn, tag, 13),
        timeout_s=60,
        what="the second run's workflows ran",
    )
    assert sorted(got) == expected
    # the same outcome again: no membership changed, nothing starts
    _segment(db_dsn, rest, lapsed | {moved})
    assert query(
        db_dsn, "SELECT count(*) FROM automation_changes WHERE event LIKE 'segment.%%'"
    ) == [(0,)]
    eventually(lambda: _settled(db_dsn, tag), what="the matcher idle")
    assert sorted(_tasks(db_dsn, tag)) == expected
