from __future__ import annotations

from collections.abc import Sequence

import pytest

from alerts.rules import (
    Direction,
    Rule,
    RuleEngine,
    RuleError,
    RuleKind,
    Severity,
    TransitionKind,
    validate_rules,
)

MODEL = "pump-p200"


def hot(**kw: object) -> Rule:
    base: dict[str, object] = dict(
        rule_id="hot",
        equipment_model=MODEL,
        metric="temperature_c",
        kind=RuleKind.THRESHOLD,
        direction=Direction.ABOVE,
        limit=80.0,
        clear_at=75.0,
        min_duration_s=60.0,
        severity=Severity.WARNING,
    )
    base.update(kw)
    return Rule(**base)  # type: ignore[arg-type]


def feed(
    engine: RuleEngine, values: Sequence[float], step_s: float = 10.0
) -> list[tuple[int, str]]:
    out = []
    for i, v in enumerate(values):
        for t in engine.observe("a1", MODEL, int(i * step_s * 1000), "temperature_c", v):
            out.append((i, t.kind.value))
    return out


def test_threshold_raises_only_after_the_minimum_duration() -> None:
    engine = RuleEngine([hot()])
    # over the limit at i=1..; 60 s at 10 s per sample -> raised at i=7
    assert feed(engine, [70, 85, 85, 85, 85, 85, 85, 85, 85]) == [(7, "raise")]


def test_a_short_spike_does_not_raise() -> None:
    engine = RuleEngine([hot()])
    assert feed(engine, [70, 90, 90, 70, 90, 90, 70, 70]) == []


def test_hysteresis_keeps_the_alert_while_the_value_hovers_at_the_limit() -> None:
    engine = RuleEngine([hot(min_duration_s=0.0)])
    values = [85, 79, 81, 78, 82, 79, 74, 74]
    # raised at once; 79-82 is above clear_at 75 so it stays active; clears at 74
    assert feed(engine, values) == [(0, "raise"), (6, "clear")]


def test_clearing_also_needs_the_minimum_duration() -> None:
    engine = RuleEngine([hot(min_duration_s=20.0)])
    values = [85, 85, 85, 70, 85, 70, 70, 70]
    assert feed(engine, values) == [(2, "raise"), (7, "clear")]


def test_rate_of_change_rule_uses_units_per_hour_over_its_window() -> None:
    rule = hot(
        rule_id="heating",
        kind=RuleKind.RATE,
        limit=30.0,  # degrees per hour
        clear_at=10.0,
        min_duration_s=0.0,
        rate_window_s=600.0,
    )
    engine = RuleEngine([rule])
    steady = [50.0] * 10
    ramp = [50.0 + 0.1 * i for i in range(1, 60)]  # 0.1 per 10 s = 36 per hour
    events = feed(engine, steady + ramp)
    assert events and events[0][1] == "raise"
    assert events[0][0] >= 10


def test_late_and_duplicate_samples_do_not_move_the_state_back() -> None:
    engine = RuleEngine([hot(min_duration_s=0.0)])
    assert engine.observe("a1", MODEL, 1000, "temperature_c", 90.0)[0].kind is TransitionKind.RAISE
    assert engine.observe("a1", MODEL, 500, "temperature_c", 10.0) == []
    assert engine.observe("a1", MODEL, 1000, "temperature_c", 10.0) == []
    assert engine.active("a1", "hot")


def test_rules_are_per_asset() -> None:
    engine = RuleEngine([hot(min_duration_s=0.0)])
    engine.observe("a1", MODEL, 1000, "temperature_c", 90.0)
    assert engine.active("a1", "hot")
    assert not engine.active("a2", "hot")
    assert engine.observe("a1", "other-model", 2000, "temperature_c", 90.0) == []


def test_rule_on_a_metric_the_model_does_not_report_is_refused() -> None:
    reported = {MODEL: ["temperature_c", "vibration_mm_s"]}
    validate_rules([hot()], reported)
    with pytest.raises(RuleError, match="does not report metric 'flow_m3_h'"):
        validate_rules([hot(metric="flow_m3_h")], reported)
    with pytest.raises(RuleError, match="unknown equipment model 'x'"):
        validate_rules([hot(equipment_model="x")], reported)


def test_inconsistent_hysteresis_is_refused() -> None:
    with pytest.raises(RuleError, match="clear_at"):
        hot(clear_at=90.0)
    with pytest.raises(RuleError, match="duplicate rule_id"):
        RuleEngine([hot(), hot()])


def test_an_alert_reads_with_names_and_units_not_rule_ids() -> None:
    from alerts.wording import alert_title, metric_label, raised_message

    assert alert_title("vibration_mm_s:threshold:above") == "Vibration too high"
    assert alert_title("bearing_temp_c:rate_of_change:above") == "Bearing temp rising too fast"
    assert alert_title("predicted_failure") == "Predicted failure"

    assert metric_label("bearing_temp_c") == ("Bearing temp", "°C")
    assert metric_label("load") == ("Load", "")
    assert raised_message("vibration_mm_s", 10.1, "above", 6, rate=False) == (
        "Vibration 10.1 mm/s, above the limit of 6 mm/s"
    )
    assert raised_message("humidity_pct", 12.5, "below", 20, rate=False) == (
        "Humidity 12.5%, below the limit of 20%"
    )
    assert raised_message("bearing_temp_c", 3.2, "above", 2, rate=True) == (
        "Bearing temp rising 3.2 °C/h, beyond the limit of 2 °C/h"
    )
