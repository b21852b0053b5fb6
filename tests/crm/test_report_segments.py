"""The customer segment as a report dimension: accounts and the records of an account
(opportunities, activities, work orders) grouped by their account's segment, in one
statement under the caller's record-level access; segment names, never ids; an entity with
no account is refused naming the grouping (real database)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import psycopg
import pytest
from psycopg import AsyncConnection

from crm.errors import CrmError
from crm.reports import ReportDefinition, ReportResult, run_report
from kernel.principal import Principal
from tests.world import People

pytestmark = pytest.mark.integration


def _run(dsn: str, who: Principal, definition: dict[str, Any]) -> ReportResult:
    async def go() -> ReportResult:
        async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
            return await run_report(conn, who, msgspec.convert(definition, ReportDefinition))

    return asyncio.run(go())


@pytest.fixture
def segmented(db_dsn: str, people: People) -> Iterator[dict[str, Any]]:
    """Five accounts of this test: three in segment A (two in territory 1, one in 2), one
    in B, one with no segment; an opportunity per account, a work order on two."""
    tag = uuid.uuid4().hex[:8]
    seg_a, seg_b = f"high-revenue {tag}", f"at risk {tag}"
    plan: list[tuple[int, str | None]] = [
        (people.t1, seg_a), (people.t1, seg_a), (people.t2, seg_a), (people.t1, seg_b),
        (people.t1, None),
    ]  # fmt: skip
    ids: list[int] = []
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for i, (territory, seg) in enumerate(plan):
            row = conn.execute(
                "INSERT INTO accounts (name, type, territory_id) VALUES (%s, 'customer', %s)"
                " RETURNING id",
                (f"Seg {tag} {i}", territory),
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
            conn.execute(
                "INSERT INTO opportunities (name, account_id, pipeline_id, stage_id, amount,"
                " currency, probability, territory_id)"
                " SELECT %s, %s, s.pipeline_id, s.id, %s, 'EUR', 10, %s"
                " FROM pipeline_stages s ORDER BY s.id LIMIT 1",
                (f"Deal {tag}", row[0], 1000 * (i + 1), territory),
            )
            if seg is not None:
                conn.execute(
                    "INSERT INTO insights_account_value"
                    " (account_id, yearly_revenue, retention, clv, segment)"
                    " VALUES (%s, 0, 0.5, 0, %s)",
                    (row[0], seg),
                )
        for acct in ids[:2]:
            conn.execute(
                "INSERT INTO work_orders (title, account_id, territory_id) VALUES (%s, %s, %s)",
                (f"WO {tag}", acct, people.t1),
            )
    yield {"tag": tag, "a": seg_a, "b": seg_b, "ids": ids}
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM insights_account_value WHERE account_id = ANY(%s)", (ids,))


def _admin(people: People) -> Principal:
    return Principal(people.users["admin"], "admin@x.test", "admin", None, (), ())


def _rep(people: People) -> Principal:
    uid = people.users["rep1"]
    return Principal(uid, "rep1@x.test", "rep", people.t1, (uid,), (people.t1,))


def test_accounts_group_by_segment_name_under_the_callers_access(
    db_dsn: str, people: People, segmented: dict[str, Any]
) -> None:
    definition = {
        "entity": "accounts",
        "filter": {"field": "name", "op": "contains", "value": segmented["tag"]},
        "group_by": [{"field": "segment"}],
    }
    everyone = _run(db_dsn, _admin(people), definition)
    assert [c.label for c in everyone.columns] == ["Segment", "Count"]
    assert everyone.rows[0] == [segmented["a"], 3]  # the biggest group first
    assert sorted(everyone.rows, key=str) == sorted(
        [[segmented["a"], 3], [segmented["b"], 1], [None, 1]], key=str
    )  # not segmented: a group of its own (the console shows "(none)")
    # a rep of territory 1 counts only the accounts they may see (territory 2's is not)
    mine = _run(db_dsn, _rep(people), definition)
    assert sorted(mine.rows, key=str) == sorted(
        [[segmented["a"], 2], [segmented["b"], 1], [None, 1]], key=str
    )


def test_opportunities_and_work_orders_group_by_their_accounts_segment(
    db_dsn: str, people: People, segmented: dict[str, Any]
) -> None:
    tag = segmented["tag"]
    deals = _run(
        db_dsn,
        _admin(people),
        {
            "entity": "opportunities",
            "filter": {"field": "name", "op": "eq", "value": f"Deal {tag}"},
            "group_by": [{"field": "segment"}, {"field": "status"}],
            "measures": [{"agg": "count"}, {"agg": "sum", "field": "amount"}],
        },
    )
    assert [c.key for c in deals.columns] == ["g0", "g1", "currency", "m0", "m1"]
    got = {(r[0], r[1]): (r[2], r[3], r[4]) for r in deals.rows}
    # amounts 1000, 2000, 3000 in A; 4000 in B; 5000 with no segment
    assert got == {
        (segmented["a"], "open"): ("EUR", 3, 6000.0),
        (segmented["b"], "open"): ("EUR", 1, 4000.0),
        (None, "open"): ("EUR", 1, 5000.0),
    }
    orders = _run(
        db_dsn,
        _rep(people),
        {
            "entity": "work_orders",
            "filter": {"field": "title", "op": "eq", "value": f"WO {tag}"},
            "group_by": [{"field": "segment"}],
        },
    )
    assert orders.rows == [[segmented["a"], 2]]
    # listed (not grouped): the segment is a column with its name
    listed = _run(
        db_dsn,
        _admin(people),
        {
            "entity": "accounts",
            "filter": {"field": "name", "op": "contains", "value": tag},
            "columns": ["name", "segment"],
        },
    )
    assert listed.rows == [
        [f"Seg {tag} 0", segmented["a"]],
        [f"Seg {tag} 1", segmented["a"]],
        [f"Seg {tag} 2", segmented["a"]],
        [f"Seg {tag} 3", segmented["b"]],
        [f"Seg {tag} 4", None],
    ]


def test_an_entity_with_no_account_cannot_group_by_segment(db_dsn: str, people: People) -> None:
    with pytest.raises(CrmError) as err:
        _run(db_dsn, _admin(people), {"entity": "leads", "group_by": [{"field": "segment"}]})
    assert err.value.status == 422
    assert "group_by[0]" in str(err.value) and "segment" in str(err.value)
    with pytest.raises(CrmError):
        _run(
            db_dsn,
            _admin(people),
            {"entity": "accounts", "group_by": [{"field": "segment", "bucket": "month"}]},
        )
