"""The filter language, sorting, cursors, parsing and assignment rules (pure, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg import sql

from crm.assignment import next_assignee, rule_matches
from crm.entities import ACCOUNTS, CONTACTS, normalize_phone
from crm.errors import CrmError
from crm.filters import compile_filter, decode_cursor, encode_cursor, keyset, parse_sort
from crm.schema import parse_body
from kernel.errors import ApiError


def _text(c: sql.Composable) -> str:
    # Composed SQL rendered without a connection: identifiers quoted, placeholders kept.
    def render(x: sql.Composable) -> str:
        if isinstance(x, sql.Composed):
            return "".join(render(p) for p in x)
        if isinstance(x, sql.Identifier):
            return ".".join(f'"{s}"' for s in x._obj)
        if isinstance(x, sql.SQL):
            return str(x._obj)
        raise AssertionError(type(x))

    return render(c)


def test_nested_filter_compiles_to_bound_parameters_only() -> None:
    node = {
        "and": [
            {"field": "type", "op": "eq", "value": "customer"},
            {
                "or": [
                    {"field": "health_score", "op": "lt", "value": 40},
                    {
                        "not": {
                            "field": "name",
                            "op": "contains",
                            "value": "x'; DROP TABLE accounts; --",
                        }
                    },
                ]
            },
            {"field": "custom.tier", "op": "in", "value": ["gold", "silver"]},
        ]
    }
    cond, params = compile_filter(ACCOUNTS, node)
    text = _text(cond)
    assert "DROP" not in text and "gold" not in text
    assert text.count("%s") == len(params)
    assert params[0] == "customer" and params[1] == 40
    assert params[2] == "%x'; DROP TABLE accounts; --%"


@pytest.mark.parametrize(
    "node",
    [
        {"field": "password_hash", "op": "eq", "value": "x"},
        {"field": "name", "op": "regex", "value": "x"},
        {"field": "health_score", "op": "eq", "value": "high"},
        {"field": "type", "op": "eq", "value": "friend"},
        {"field": "name", "op": "eq", "value": None},
        {"and": []},
        {"and": [{"field": "name", "op": "eq", "value": "a"}], "or": []},
        {"field": "custom.bad key", "op": "eq", "value": 1},
        {"field": "custom.tier", "op": "eq", "value": {"nested": 1}},
        {"field": "name", "op": "in", "value": []},
        {"field": "location", "op": "eq", "value": 1},
        [1, 2],
    ],
)
def test_bad_filters_are_refused_naming_the_filter_parameter(node: object) -> None:
    with pytest.raises(CrmError) as err:
        compile_filter(ACCOUNTS, node)
    assert err.value.status == 400 and err.value.field == "filter"


def test_filters_nested_too_deep_are_refused() -> None:
    node: dict[str, Any] = {"field": "name", "op": "eq", "value": "a"}
    for _ in range(12):
        node = {"not": node}
    with pytest.raises(CrmError):
        compile_filter(ACCOUNTS, node)


def test_cursor_round_trips_and_continues_after_the_last_row() -> None:
    sort = parse_sort(ACCOUNTS, "-last_visit_at")
    cur = encode_cursor(None, 17)
    assert decode_cursor(sort, cur) == (None, 17)
    cond, order, params = keyset(sort, "t", cur)
    assert "IS NULL" in _text(cond) and params == [17]
    assert "DESC NULLS LAST" in _text(order)
    with pytest.raises(CrmError):
        decode_cursor(sort, "garbage!")
    with pytest.raises(CrmError):
        parse_sort(CONTACTS, "phone")


def test_body_parsing_refuses_unknown_read_only_and_bad_values() -> None:
    with pytest.raises(ApiError) as err:
        parse_body(ACCOUNTS, {"name": "a", "version": 3}, partial=False)
    assert err.value.field == "version"
    with pytest.raises(ApiError) as err:
        parse_body(
            ACCOUNTS,
            {"name": "a", "location": {"type": "Point", "coordinates": [200, 0]}},
            partial=False,
        )
    assert err.value.field == "location.coordinates.0"
    with pytest.raises(ApiError) as err:
        parse_body(ACCOUNTS, {"name": "a", "currency": "euro"}, partial=False)
    assert err.value.field == "currency"
    assert parse_body(ACCOUNTS, {"health_score": 5}, partial=True) == {"health_score": 5}
    # CSV cells are text: numbers and times are read from it
    assert parse_body(ACCOUNTS, {"health_score": "5"}, partial=True, strict=False) == {
        "health_score": 5
    }
    with pytest.raises(ApiError) as err:
        parse_body(ACCOUNTS, {"health_score": "5"}, partial=True)
    assert err.value.field == "health_score"


def test_phone_numbers_are_normalised_to_digits_with_plus() -> None:
    assert normalize_phone("+49 (30) 1234-56") == "+4930123456"
    assert normalize_phone("0049 30 1234") == "+49301234"
    assert normalize_phone("030 1234") == "0301234"
    assert normalize_phone(" - ") is None


def test_assignment_rule_matching_and_round_robin_order() -> None:
    rule = {"match_source": "event", "match_region": "North", "match_territory_id": None}
    assert rule_matches(rule, {"source": "event", "region": " north "})
    assert not rule_matches(rule, {"source": "website", "region": "north"})
    assert not rule_matches(rule, {"source": "event"})
    assert next_assignee("round_robin", [5, 3, 9], None) == 3
    assert next_assignee("round_robin", [5, 3, 9], 3) == 5
    assert next_assignee("round_robin", [5, 3, 9], 9) == 3
    assert next_assignee("round_robin", [5, 3, 9], 4) == 5  # the last assignee left the list
    assert next_assignee("fixed", [5, 3], 3) == 3
    assert next_assignee("round_robin", [], None) is None
