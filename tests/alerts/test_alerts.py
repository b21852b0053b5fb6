from __future__ import annotations

import itertools

import pytest

from alerts.model import AlertBook, AlertError, AlertState, Change
from alerts.rules import Direction, Rule, RuleEngine, RuleKind, Severity, TransitionKind


def book(**kw: float) -> AlertBook:
    ids = (f"al{i}" for i in itertools.count(1))
    return AlertBook(new_id=lambda: next(ids), **kw)


def test_life_cycle_raised_acknowledged_cleared() -> None:
    b = book()
    ev = b.raise_alert("a1", "vib", Severity.WARNING, 1000, window_start_ms=400, message="high")
    assert ev.change is Change.CREATED
    assert ev.alert.window_start_ms == 400
    ack = b.acknowledge(ev.alert.alert_id, "rep-7", 2000)
    assert ack.alert.state is AlertState.ACKNOWLEDGED
    assert ack.alert.acknowledged_by == "rep-7"
    cleared = b.clear("a1", "vib", 3000)
    assert cleared is not None
    assert cleared.alert.state is AlertState.CLEARED
    assert cleared.alert.window_end_ms == 3000
    assert b.active() == []


def test_active_alert_is_deduplicated_per_asset_and_type() -> None:
    b = book()
    first = b.raise_alert("a1", "vib", Severity.WARNING, 1000)
    again = b.raise_alert("a1", "vib", Severity.WARNING, 2000)
    other_type = b.raise_alert("a1", "temp", Severity.WARNING, 2000)
    other_asset = b.raise_alert("a2", "vib", Severity.WARNING, 2000)
    assert again.change is Change.REPEATED
    assert again.alert.alert_id == first.alert.alert_id
    assert again.alert.occurrences == 2
    assert {other_type.change, other_asset.change} == {Change.CREATED}
    assert len(b.active()) == 3


def test_escalation_raises_severity_and_needs_a_new_acknowledgement() -> None:
    b = book()
    ev = b.raise_alert("a1", "vib", Severity.WARNING, 1000)
    b.acknowledge(ev.alert.alert_id, "rep-7", 1500)
    up = b.raise_alert("a1", "vib", Severity.CRITICAL, 2000)
    assert up.escalated
    assert up.alert.severity is Severity.CRITICAL
    assert up.alert.state is AlertState.RAISED
    down = b.raise_alert("a1", "vib", Severity.INFO, 3000)
    assert not down.escalated
    assert down.alert.severity is Severity.CRITICAL


def test_flapping_sensor_reopens_one_alert_instead_of_a_storm() -> None:
    b = book(reopen_within_s=600)
    ids = set()
    for k in range(20):  # raise and clear every minute for 20 minutes
        t = k * 60_000
        ids.add(b.raise_alert("a1", "vib", Severity.WARNING, t).alert.alert_id)
        b.clear("a1", "vib", t + 30_000)
    assert len(ids) == 1
    (alert_id,) = ids
    assert b.get(alert_id).occurrences == 20
    # long after the last clear, a new raise is a new alert
    late = b.raise_alert("a1", "vib", Severity.WARNING, 20 * 60_000 + 3_600_000)
    assert late.change is Change.CREATED
    assert late.alert.alert_id != alert_id


def test_bad_operations_are_clear_errors() -> None:
    b = book()
    with pytest.raises(AlertError, match="unknown alert 'nope'"):
        b.acknowledge("nope", "rep", 1)
    ev = b.raise_alert("a1", "vib", Severity.WARNING, 1000)
    b.clear("a1", "vib", 2000)
    with pytest.raises(AlertError, match="is cleared"):
        b.acknowledge(ev.alert.alert_id, "rep", 3000)
    assert b.clear("a1", "vib", 4000) is None


def test_rule_transitions_drive_the_alert_book_without_a_storm() -> None:
    rule = Rule(
        rule_id="vib",
        equipment_model="pump",
        metric="vibration_mm_s",
        kind=RuleKind.THRESHOLD,
        direction=Direction.ABOVE,
        limit=7.0,
        clear_at=6.0,
        min_duration_s=30.0,
        severity=Severity.CRITICAL,
    )
    engine, b = RuleEngine([rule]), book()
    # a noisy sensor around the limit for 10 minutes, then a real excursion
    values = [6.9, 7.1] * 30 + [9.0] * 12 + [5.0] * 12
    for i, v in enumerate(values):
        t = i * 5000
        for tr in engine.observe("a1", "pump", t, "vibration_mm_s", v):
            if tr.kind is TransitionKind.RAISE:
                b.raise_alert(
                    "a1", rule.alert_type, rule.severity, t, window_start_ms=tr.window_start_ms
                )
            else:
                b.clear("a1", rule.alert_type, t)
    alerts = list(b._by_id.values())
    assert len(alerts) == 1
    assert alerts[0].state is AlertState.CLEARED
    # the evidence starts at the last 7.1 reading, which ran straight into the excursion
    assert alerts[0].window_start_ms == 59 * 5000
