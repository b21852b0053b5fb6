"""Pure parts: conditions, the indexed matcher against the naive baseline, cron, templates,
definition errors that name the step, business hours."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from automation import definition as d
from automation.conditions import compile_all
from automation.cron import CronError, parse_cron
from automation.engine import next_open
from automation.matcher import Matcher, compile_definition, naive_match
from automation.template import render


def _c(field: str, op: str, value: object = None) -> d.Condition:
    return d.Condition(field=field, op=op, value=value)  # type: ignore[arg-type]


def test_change_operators_compare_before_and_after() -> None:
    old, new = {"stage_id": 3, "custom": {"health": 55}}, {"stage_id": 4, "custom": {"health": 35}}
    assert compile_all([_c("stage_id", "changed_to", 4)])(old, new)
    assert not compile_all([_c("stage_id", "changed_to", 4)])(new, new)
    assert compile_all([_c("custom.health", "crossed_below", 40)])(old, new)
    assert not compile_all([_c("custom.health", "crossed_below", 40)])(
        new, {"custom": {"health": 30}}
    )
    assert compile_all([_c("custom.health", "lt", "40")])(
        None, new
    )  # numeric text compares as a number
    assert not compile_all([_c("missing", "gt", 1)])(None, new)
    assert compile_all([_c("stage_id", "eq", 1), _c("stage_id", "eq", 4)], "any")(old, new)


def test_the_indexed_matcher_agrees_with_the_naive_baseline() -> None:
    rng = random.Random(3)
    ops = ["eq", "changed_to", "crossed_above", "crossed_below", "gt", "changed", "in"]
    defs = []
    for i in range(300):
        op = rng.choice(ops)
        value: object = [rng.randint(0, 9), rng.randint(0, 9)] if op == "in" else rng.randint(0, 9)
        conds = [{"field": rng.choice(["a", "b", "custom.c"]), "op": op, "value": value}]
        if rng.random() < 0.5:
            conds.append({"field": "b", "op": "gte", "value": rng.randint(0, 9)})
        raw = {"name": f"w{i}", "trigger": {"on": rng.choice(["leads.updated", "leads.created"]), "when": conds},
               "steps": [{"id": "x", "action": "load_record"}]}  # fmt: skip
        defs.append((i, d.decode(raw)))
    matcher = Matcher(compile_definition(i, 1, 1, x) for i, x in defs)
    for _ in range(2000):
        old = (
            None
            if rng.random() < 0.2
            else {
                "a": rng.randint(0, 9),
                "b": str(rng.randint(0, 9)),
                "custom": {"c": rng.randint(0, 9)},
            }
        )
        new = {"a": rng.randint(0, 9), "b": rng.randint(0, 9), "custom": {"c": rng.randint(0, 9)}}
        event = "leads.created" if old is None else "leads.updated"
        assert sorted(c.workflow_id for c in matcher.match(event, old, new)) == naive_match(
            defs, event, old, new
        )


def test_definition_errors_name_the_step() -> None:
    raw = {"name": "x", "trigger": {"on": "leads.created"}, "steps": [
        {"id": "a", "action": "branch", "when": [], "then": [{"id": "b", "action": "notify", "to": [], "title": ""}]}]}  # fmt: skip
    with pytest.raises(d.DefinitionError) as e:
        d.decode(raw)
    assert e.value.where.startswith("step 'b'")
    dup = {"name": "x", "trigger": {"on": "leads.created"}, "steps": [
        {"id": "a", "action": "load_record"}, {"id": "a", "action": "load_record"}]}  # fmt: skip
    with pytest.raises(d.DefinitionError, match="step 'a': step ids must be unique"):
        d.decode(dup)
    with pytest.raises(d.DefinitionError, match=r"trigger\.cron"):
        d.decode(
            {
                "name": "x",
                "trigger": {"on": "schedule", "cron": "61 * * * *"},
                "steps": [{"id": "a", "action": "load_record"}],
            }
        )
    assert "Definition" in str(d.json_schema())


def test_cron_and_templates_and_business_hours() -> None:
    cron = parse_cron("*/15 8-9 * * 1-5")
    assert cron.matches(datetime(2026, 12, 7, 8, 30, tzinfo=UTC))  # a Monday
    assert not cron.matches(datetime(2026, 12, 6, 8, 30, tzinfo=UTC))  # a Sunday
    assert cron.next_after(datetime(2026, 12, 7, 9, 50, tzinfo=UTC)) == datetime(
        2026, 12, 8, 8, 0, tzinfo=UTC
    )
    with pytest.raises(CronError):
        parse_cron("* * *")
    ctx = {"record": {"id": 7, "name": "Acme"}, "steps": {"a": {"user_id": 3}}}
    assert render(
        {"x": "{{record.id}}", "y": "Hi {{record.name}} {{nope}}", "z": ["{{steps.a.user_id}}"]},
        ctx,
    ) == {"x": 7, "y": "Hi Acme ", "z": [3]}
    bh = d.BusinessHours()
    sunday_noon = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert next_open(sunday_noon, bh, "Europe/Berlin") == datetime(
        2026, 12, 7, 8, 0, tzinfo=UTC
    )  # 09:00 CET
    monday_ten = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert next_open(monday_ten, bh, "America/New_York") == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
    assert next_open(monday_ten, bh, "Not/AZone") == monday_ten
