"""Report definitions compile to one parameterised statement (pure: no database): the
caller's access clause is always in it, money is grouped by currency, references are named,
and a bad definition is refused naming the part that is wrong."""

from __future__ import annotations

import msgspec
import pytest
from psycopg import sql

from crm.errors import CrmError
from crm.reports import ReportDefinition, compile_report
from kernel.principal import Principal

REP = Principal(7, "rep@x.test", "rep", 3, (7,), (3,))
ADMIN = Principal(1, "admin@x.test", "admin", None, (1,), ())


def text(stmt: sql.Composable) -> str:
    return stmt.as_string(None)


def definition(**kw: object) -> ReportDefinition:
    return msgspec.convert({"entity": "opportunities", **kw}, ReportDefinition)


def test_a_reps_report_carries_their_access_clause_and_an_admins_does_not() -> None:
    d = definition(group_by=[{"field": "status"}])
    rep_sql, rep_params, _ = compile_report(d, REP)
    admin_sql, _, _ = compile_report(d, ADMIN)
    assert "territory_id" in text(rep_sql) and 3 in rep_params
    assert "territory_id" not in text(admin_sql)


def test_money_is_grouped_by_currency_and_references_by_name() -> None:
    stmt, _, cols = compile_report(
        definition(group_by=[{"field": "owner_id"}], measures=[{"agg": "sum", "field": "amount"}]),
        ADMIN,
    )
    assert [c.key for c in cols] == ["g0", "currency", "m0"] and cols[2].money
    assert 'FROM "users" r' in text(stmt) and "GROUP BY" in text(stmt)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"group_by": [{"field": "amount_x"}]}, "group_by[0]"),
        ({"group_by": [{"field": "close_date"}]}, "group_by[0]"),
        ({"group_by": [{"field": "name", "bucket": "month"}]}, "group_by[0]"),
        ({"measures": [{"agg": "avg", "field": "status"}]}, "measures[0]"),
        ({"measures": [{"agg": "max"}]}, "measures[0]"),
        ({"columns": ["nope"]}, "columns[0]"),
    ],
)
def test_bad_definitions_name_the_wrong_part(kw: dict[str, object], field: str) -> None:
    with pytest.raises(CrmError) as err:
        compile_report(definition(**kw), ADMIN)
    assert err.value.field == field and err.value.status == 422


def test_the_definition_itself_is_bounded() -> None:
    for bad in (
        {"entity": "users"},
        {"entity": "opportunities", "group_by": [{"field": "a"}] * 3},
        {"entity": "opportunities", "limit": 100_000},
        {"entity": "opportunities", "measures": []},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, ReportDefinition)
