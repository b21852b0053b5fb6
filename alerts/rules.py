"""Threshold and rate-of-change rules per equipment model and metric (pure, no I/O).

A rule's condition must hold continuously for `min_duration_s` before it raises, and the
value must come back past `clear_at` (hysteresis) and stay there for `min_duration_s`
before it clears, so a sensor hovering at a limit does not flap. Rate-of-change rules
compare the value with the oldest one within `rate_window_s` (units per hour).

`RuleEngine.observe` costs O(rules on that equipment model and metric) per sample, plus
amortised O(1) for the bounded rate window: it is safe on the live stream.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

_MAX_RATE_POINTS = 512  # per (asset, rate rule): bounds memory whatever the sample rate


class RuleError(ValueError):
    """A rule is invalid or names something that does not exist; the message says which."""


class RuleKind(StrEnum):
    THRESHOLD = "threshold"
    RATE = "rate_of_change"


class Direction(StrEnum):
    ABOVE = "above"
    BELOW = "below"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: str
    equipment_model: str
    metric: str
    kind: RuleKind
    direction: Direction
    limit: float  # a value, or units per hour for rate rules
    clear_at: float  # back past this (towards normal) to clear
    min_duration_s: float = 0.0
    rate_window_s: float = 3600.0
    severity: Severity = Severity.WARNING

    def __post_init__(self) -> None:
        if not self.rule_id:
            raise RuleError("rule_id: must not be empty")
        if not (math.isfinite(self.limit) and math.isfinite(self.clear_at)):
            raise RuleError(f"rule {self.rule_id}: limit and clear_at must be finite numbers")
        if self.direction is Direction.ABOVE and self.clear_at > self.limit:
            raise RuleError(
                f"rule {self.rule_id}: clear_at ({self.clear_at}) must not exceed the limit "
                f"({self.limit}) for an 'above' rule"
            )
        if self.direction is Direction.BELOW and self.clear_at < self.limit:
            raise RuleError(
                f"rule {self.rule_id}: clear_at ({self.clear_at}) must not be below the limit "
                f"({self.limit}) for a 'below' rule"
            )
        if self.min_duration_s < 0:
            raise RuleError(f"rule {self.rule_id}: min_duration_s must be >= 0")
        if self.kind is RuleKind.RATE and self.rate_window_s <= 0:
            raise RuleError(f"rule {self.rule_id}: rate_window_s must be > 0")

    @property
    def alert_type(self) -> str:
        return f"{self.metric}:{self.kind.value}:{self.direction.value}"

    def breached(self, x: float) -> bool:
        return x > self.limit if self.direction is Direction.ABOVE else x < self.limit

    def recovered(self, x: float) -> bool:
        return x <= self.clear_at if self.direction is Direction.ABOVE else x >= self.clear_at


def validate_rules(rules: Iterable[Rule], reported: Mapping[str, Iterable[str]]) -> None:
    """Refuse rules on an unknown equipment model or on a metric the model does not report."""
    for r in rules:
        if r.equipment_model not in reported:
            raise RuleError(f"rule {r.rule_id}: unknown equipment model {r.equipment_model!r}")
        metrics = set(reported[r.equipment_model])
        if r.metric not in metrics:
            raise RuleError(
                f"rule {r.rule_id}: equipment model {r.equipment_model!r} does not report "
                f"metric {r.metric!r} (it reports {', '.join(sorted(metrics))})"
            )


class TransitionKind(StrEnum):
    RAISE = "raise"
    CLEAR = "clear"


@dataclass(frozen=True, slots=True)
class Transition:
    """A rule started or stopped holding for an asset; the window is the evidence."""

    kind: TransitionKind
    rule: Rule
    asset_id: str
    t_ms: int
    value: float  # the sample value, or the rate per hour for rate rules
    window_start_ms: int  # when the condition (or its recovery) began


@dataclass(slots=True)
class _State:
    active: bool = False
    since_ms: int | None = None  # when the pending change (raise or clear) began
    last_t_ms: int = -(2**62)
    points: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=_MAX_RATE_POINTS))


class RuleEngine:
    """Evaluates rules sample by sample with per-(asset, rule) state."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._by_key: dict[tuple[str, str], list[Rule]] = {}
        ids: set[str] = set()
        for r in rules:
            if r.rule_id in ids:
                raise RuleError(f"rule {r.rule_id}: duplicate rule_id")
            ids.add(r.rule_id)
            self._by_key.setdefault((r.equipment_model, r.metric), []).append(r)
        self._state: dict[tuple[str, str], _State] = {}

    @property
    def rules(self) -> list[Rule]:
        return [r for rs in self._by_key.values() for r in rs]

    def restore_active(self, asset_id: str, rule_id: str) -> None:
        """Mark a rule as holding for an asset (its alert is active in storage)."""
        self._state.setdefault((asset_id, rule_id), _State()).active = True

    def active(self, asset_id: str, rule_id: str) -> bool:
        st = self._state.get((asset_id, rule_id))
        return st is not None and st.active

    def observe(
        self, asset_id: str, equipment_model: str, t_ms: int, metric: str, value: float
    ) -> list[Transition]:
        """Feed one sample; the transitions it causes (usually none)."""
        out: list[Transition] = []
        for rule in self._by_key.get((equipment_model, metric), ()):
            st = self._state.get((asset_id, rule.rule_id))
            if st is None:
                st = self._state[(asset_id, rule.rule_id)] = _State()
            if t_ms <= st.last_t_ms:
                continue  # late or duplicate sample: state only moves forward in time
            st.last_t_ms = t_ms
            x = value
            if rule.kind is RuleKind.RATE:
                rate = self._rate(st, rule, t_ms, value)
                if rate is None:
                    continue
                x = rate
            t = self._step(st, rule, asset_id, t_ms, x)
            if t is not None:
                out.append(t)
        return out

    @staticmethod
    def _rate(st: _State, rule: Rule, t_ms: int, value: float) -> float | None:
        st.points.append((t_ms, value))
        horizon = t_ms - int(rule.rate_window_s * 1000)
        while len(st.points) > 2 and st.points[1][0] <= horizon:
            st.points.popleft()
        t0, v0 = st.points[0]
        if t0 >= t_ms:
            return None
        return (value - v0) / ((t_ms - t0) / 3_600_000.0)

    @staticmethod
    def _step(st: _State, rule: Rule, asset_id: str, t_ms: int, x: float) -> Transition | None:
        moving = rule.recovered(x) if st.active else rule.breached(x)
        if not moving:
            st.since_ms = None
            return None
        if st.since_ms is None:
            st.since_ms = t_ms
        if (t_ms - st.since_ms) / 1000.0 < rule.min_duration_s:
            return None
        since = st.since_ms
        st.active = not st.active
        st.since_ms = None
        kind = TransitionKind.RAISE if st.active else TransitionKind.CLEAR
        return Transition(kind, rule, asset_id, t_ms, x, since)
