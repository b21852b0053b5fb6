"""The revenue forecast page in headless Chromium: a manager sees the closed-won history and
the open pipeline's forecast of their territory with trend, seasonality and conversion in
words; the what-if controls change the figures against the baseline; the period and
grouping switches re-query; an admin sees the stored forecasts' accuracy."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from insights import pipeline
from kernel.settings import Settings
from tests.clock import clear_of
from tests.console.conftest import make_user
from tests.console.test_records_e2e import territory


def _seed(dsn: str, territory_id: int, rep: int) -> None:
    """Three open deals at 50% closing this month (10,000 in all), one won today (700);
    fifteen months of won deals of 2,000 each, created 61 days before they were won, and
    ten lost ones."""
    today = datetime.now(UTC).date()
    with psycopg.connect(dsn, autocommit=True) as conn:
        acct = conn.execute(
            "INSERT INTO accounts (name, territory_id, owner_id) VALUES ('Forecast Co', %s, %s) "
            "RETURNING id",
            (territory_id, rep),
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
                (f"open {i}", acct[0], stage[0], stage[1], amount, today, rep, territory_id),
            )
        conn.execute(
            "INSERT INTO opportunities (name, account_id, pipeline_id, stage_id, amount, "
            "probability, status, closed_at, owner_id, territory_id) "
            "VALUES ('won today', %s, %s, %s, 700, 100, 'won', now(), %s, %s)",
            (acct[0], stage[0], stage[1], rep, territory_id),
        )
        for k in range(25):
            conn.execute(
                "INSERT INTO opportunities (name, account_id, pipeline_id, stage_id, amount, "
                "probability, status, closed_at, created_at, owner_id, territory_id) "
                "VALUES (%s, %s, %s, %s, 2000, 100, %s, now() - make_interval(months => %s), "
                "now() - make_interval(months => %s, days => 61), %s, %s)",
                (f"closed {k}", acct[0], stage[0], stage[1], "won" if k < 15 else "lost",
                 k % 15 + 1, k % 15 + 1, rep, territory_id),
            )  # fmt: skip


def _money(s: str) -> int:
    """'$5,000' → 5000, '−$2,500' → -2500 (whatever the currency sign)."""
    n = int(re.sub(r"[^0-9]", "", s) or 0)
    return -n if s.startswith(("−", "-")) else n


def test_the_forecast_page_draws_history_forecast_and_what_ifs(
    console_url: str,
    test_settings: Settings,
    admin: dict[str, Any],
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    dsn = test_settings.dsn
    clear_of("month", margin_s=600.0)  # the walk reads 'this month' back; it may take minutes
    t = territory(dsn)
    rep = make_user(dsn, "rep", territory_id=t)
    manager = make_user(dsn, "manager", territory_id=t)
    _seed(dsn, t, rep["id"])
    # a forecast stored before last month began, for the admins' accuracy table
    today = datetime.now(UTC).date()
    last = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    taken = (last - timedelta(days=1)).replace(day=15)

    async def snap() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            await pipeline.snapshot(conn, taken, months=3)
            await conn.commit()

    asyncio.run(snap())
    r = run_scenario("forecast", console_url, {"manager": manager, "admin": admin}, timeout_s=400)
    first = r["first"]
    assert first["groups"] == ["All deals you may see"]
    assert [_money(x) for x in first["expected"]] == [5000, 0, 0, 0, 0, 0]
    assert len(first["periods"]) == 6 and first["periods"][0] == f"{today:%Y-%m}"
    # twelve months of closed-won history before six months of forecast with whiskers
    assert (first["pastBars"], first["expectedBars"], first["whiskers"]) == (12, 6, 6)
    assert first["unit"] == "USD"
    assert all("closed won: 2,000 USD" in t for t in first["hover"][:12])
    assert "expected: 5,000 USD (90% interval" in first["hover"][12]
    assert "run rate 2,000 USD" in first["hover"][12] and first["runDots"] == 6
    assert first["trend"].startswith("Trend: ")  # flat, or a small slope per month
    assert first["season"] == "Seasonality: none detected."
    assert "win rate 60%" in first["conv"] and "sales cycle 61 days" in first["conv"]
    assert f"Won so far in {today:%b %Y}: $700" in first["main"]
    assert "null" not in first["main"] and "undefined" not in first["main"]
    # 10,000 new pipeline a month at 60%, won two months after: 6,000 from the third month
    fresh = r["fresh"]
    assert [_money(x) for x in fresh["expected"]] == [5000, 0, 6000, 6000, 6000, 6000]
    assert "new pipeline a month" in fresh["scenario"]
    assert "+$24,000" in fresh["diff"] and fresh["baselineTicks"] == 4
    # half the win rate halves the open deals' expectation, shown as the difference
    halved = r["halved"]
    assert _money(halved["expected"][0]) == 2500 and "win rates ×0.5" in halved["scenario"]
    assert _money(halved["deltas"][0]) == -2500
    assert r["refused"].startswith("Win-rate factor")
    # the period switch: quarters, then years
    assert len(r["quarter"]["periods"]) == 4
    assert all(re.fullmatch(r"\d{4}-Q[1-4]", p) for p in r["quarter"]["periods"])
    assert _money(r["quarter"]["expected"][0]) == 5000
    assert r["year"]["periods"] == [str(today.year), str(today.year + 1)]
    # by owner: the rep's name, never an id
    assert r["owners"] == [f"Rep {rep['email'][:6]}"]
    # the admin's accuracy table has last month's stored forecast against its actual
    months = {row[0]: row for row in r["accuracy"]["rows"]}
    month = months[f"{last:%b %Y}"]
    assert month[1] == taken.isoformat() and month[6] in ("yes", "no")
    assert "Mean absolute error" in r["accuracy"]["summary"]
    assert r["managerHasAccuracy"] is False
    assert r["phoneOverflow"] <= 0
    assert r["errors"] == [] and r["bad"] == []
