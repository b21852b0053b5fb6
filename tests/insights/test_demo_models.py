"""Every CRM model trains on the demo world's history (`make demo` opens with scores in
the lists): lead score, win probability and churn risk, on a database of its own."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import psycopg
import pytest

from crm.demo_history import seed_history
from fieldmesh import services
from fieldmesh.migrate import upgrade
from insights import live
from kernel.settings import Settings

pytestmark = pytest.mark.integration


def test_the_demo_history_trains_every_crm_model(services_up: Settings, tmp_path: Path) -> None:
    name = f"fm_demo_{uuid.uuid4().hex[:8]}"
    dsn = services.create_database(services_up, name)
    try:
        upgrade(dsn)
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "INSERT INTO territories (name, region) VALUES ('demo', 'demo') RETURNING id"
            ).fetchone()
            assert row is not None
            territory = int(row[0])
            owners = [
                int(r[0])
                for r in conn.execute(
                    "INSERT INTO users (email, name, role, territory_id) VALUES "
                    "('sales@demo.test', 'Sales', 'rep', %s), ('rep@demo.test', 'Rep', 'rep', %s)"
                    " RETURNING id",
                    (territory, territory),
                )
            ]
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
    finally:
        services.drop_database(services_up, name)
