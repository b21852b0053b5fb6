"""Workflow commands, pure: templates, recognition, the choice beside the fourteen intents,
yes and no, and the automation voice trigger's validation."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from assistant import commands
from assistant.understand import Understanding
from automation import definition as d
from automation.phrases import PhraseError, expand

DEV = Path("/work/shared/data/assistant/dev.jsonl")
DATA = Path(__file__).resolve().parents[2] / "assistant" / "data"


def _labelled() -> list[dict[str, str]]:
    rows = []
    for p in [*sorted(DATA.glob("*.jsonl")), *([DEV] if DEV.exists() else [])]:
        rows += [json.loads(line) for line in p.open(encoding="utf-8") if line.strip()]
    return rows


def test_templates_expand_and_bad_ones_are_named() -> None:
    assert expand("(start|begin) [my] route") == [
        "start my route", "start route", "begin my route", "begin route",
    ]  # fmt: skip
    assert expand("I'm heading out") == ["im heading out"]  # as a transcript writes it
    for bad, why in (
        ("(start", "not a valid template"),
        ("call {name}", "slot lists"),
        ("  ", "empty"),
        ("(a|b|c) (d|e|f) (g|h|i) (j|k|l) (m|n|o) (p|q)", "more than 200"),
    ):
        with pytest.raises(PhraseError, match=why):
            expand(bad)


def test_commands_are_recognised_typed_with_politeness_and_typos() -> None:
    known = commands.built_in()
    for text, key in (
        ("start my route", commands.START_ROUTE),
        ("Hey, could you start my route please", commands.START_ROUTE),
        ("um begin the route now", commands.START_ROUTE),
        ("I'm heading out", commands.START_ROUTE),
        ("escalate this alert", commands.ESCALATE_ALERT),
        ("Escalate the alarm to my manager.", commands.ESCALATE_ALERT),
    ):
        m = commands.recognise(text, known)
        assert m is not None and m.exact and m.command.key == key, text
    near = commands.recognise("strat my rout", known)
    assert near is not None and not near.exact and near.command.key == commands.START_ROUTE
    assert near.confidence >= commands.FUZZY_MIN
    far = commands.recognise("order pizza for the team", known)
    assert far is None or far.confidence < commands.FUZZY_MIN


def test_no_labelled_command_of_the_fourteen_intents_is_taken() -> None:
    """The templates never claim a sentence the schema gives one of the fourteen intents."""
    known = commands.built_in()
    taken = []
    for r in _labelled():
        if r["intent"] == "out_of_scope":
            continue
        m = commands.recognise(r["text"], known)
        if m is not None and (m.exact or m.confidence >= commands.FUZZY_MIN):
            taken.append((r["text"], m.sentence))
    assert taken == []


def test_the_understanding_keeps_what_its_rules_decided() -> None:
    known = commands.built_in()
    exact = commands.recognise("escalate this alert", known)
    near = commands.recognise("strat my rout", known)
    model_ack = Understanding("acknowledge_alert", {}, 0.66, "model")
    rule_ack = Understanding("acknowledge_alert", {}, 1.0, "rule")
    oos = Understanding("out_of_scope", {}, 0.6, "model")
    assert commands.choose(model_ack, exact) is exact
    assert commands.choose(rule_ack, exact) is None
    assert commands.choose(oos, near) is near
    assert commands.choose(Understanding("check_in", {}, 0.5, "model"), near) is None
    assert commands.choose(oos, None) is None


def test_yes_and_no() -> None:
    assert commands.reply_to_question("Yes please") is True
    assert commands.reply_to_question("uh yeah") is True
    assert commands.reply_to_question("no") is False
    assert commands.reply_to_question("cancel.") is False
    assert commands.reply_to_question("yes acknowledge that alert") is None


def test_the_speech_model_learns_the_command_phrases() -> None:
    from assistant import voice

    phrases = voice.command_phrases()
    assert "start my route" in phrases and "escalate this alert" in phrases and "yes" in phrases


def _voice_definition(**trigger: object) -> dict[str, object]:
    return {
        "name": "Call for backup",
        "trigger": {"on": "voice", **trigger},
        "steps": [{"id": "tell", "action": "notify", "to": ["triggered_by_manager"], "title": "x"}],
    }


def test_a_voice_trigger_needs_valid_phrases_and_only_it_has_them() -> None:
    ok = d.decode(
        _voice_definition(phrases=["call for backup"], roles=["rep"], object="work_orders")
    )
    assert ok.trigger.phrases == ["call for backup"] and "voice" in d.STANDALONE
    with pytest.raises(d.DefinitionError, match="at least one phrase"):
        d.decode(_voice_definition())
    with pytest.raises(d.DefinitionError) as exc:
        d.decode(_voice_definition(phrases=["ok", "call {who}"]))
    assert exc.value.where == "trigger.phrases[1]"
    with pytest.raises(d.DefinitionError, match="current stop"):
        d.decode(_voice_definition(phrases=["x"], object="leads"))
    manual = _voice_definition(phrases=["x"])
    manual["trigger"] = {"on": "manual", "phrases": ["x"]}
    with pytest.raises(d.DefinitionError, match="only a voice trigger"):
        d.decode(manual)


def test_the_bench_understanding_is_untouched_by_commands() -> None:
    """The commands live beside `understand`, never in it: the labels it predicts stay."""
    from assistant.understand import understand

    u = understand("start my route", datetime(2026, 3, 2, 9))
    assert u.intent != commands.WORKFLOW_INTENT
