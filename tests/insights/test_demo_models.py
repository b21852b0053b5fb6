"""Every CRM model trains on the demo world's history (`make demo` opens with scores in
the lists): lead score, win probability and churn risk, on a database of its own."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pytest

from crm.demo_history import seed_history
from insights import live
from kernel.settings import Settings
from tests.world import own_world

pytestmark = pytest.mark.integration


def test_the_demo_history_trains_every_crm_model(services_up: Settings, tmp_path: Path) -> None:
    with own_world(services_up, "fm_demo") as (dsn, people), psycopg.connect(dsn) as conn:
        # two people of one territory own the history, as the demo's sales rep and field rep do
        territory = people.t1
        owners = [people.users["rep1"], people.users["manager"]]
        accounts = []
        for i in range(50):  # as many as the demo world has
            r = conn.execute(
                "INSERT INTO accounts (name, type, territory_id, owner_id)"
                " VALUES (%s, 'customer', %s, %s) RETURNING id",
                (f"site {i}", territory, owners[0]),
            ).fetchone()
            assert r is not None
            accounts.append((int(r[0]), owners[0], territory))
        conn.commit()
        seed_history(
            conn, tenant="demo", accounts=accounts, owners=owners, now=dt.datetime.now(dt.UTC)
        )
        for model in (live.LEAD_MODEL, live.WIN_MODEL, live.CHURN_MODEL):
            result = live.train(conn, model, tmp_path)
            conn.commit()
            assert result.activated and live.active_model(conn, model) is not None
        # the churn outcome is not one-sided: customers both stayed and lapsed
        _, y, _ = live.labelled(conn, live.CHURN_MODEL)
        assert 0.15 < y.mean() < 0.85
        assert live.churn_records(conn, None) >= 25  # today's customers scored
        # a model just trained sees no drift in the customers it was trained with
        assert live.check_drift(conn, "accounts") == []
        conn.commit()
