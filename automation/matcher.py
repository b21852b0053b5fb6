"""Which active definitions a change starts (pure, no I/O).

Definitions are indexed by event key (`opportunities.updated`), then by the first
condition an index can answer without trying each definition:
- `eq` / `changed_to` a constant: a hash of the constant per field (one lookup);
- `crossed_above` / `crossed_below` a number: the thresholds of a field sorted, so the
  definitions whose threshold lies between the old and the new value are a bisection;
- another change operator (`changed`, `changed_from`): filed under its field, tried only
  when that field changed;
- the rest are tried on every change of the event.
Candidates are then checked by their whole compiled condition (`automation.conditions`),
so an index only narrows, it never decides. `naive_match` is the baseline the benchmark
measures in the same run: every definition's conditions interpreted for every change.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from automation.conditions import Row, Test, compile_all, read
from automation.definition import Condition, Definition

CHANGE_OPS = frozenset({"changed", "changed_to", "changed_from", "crossed_above", "crossed_below"})
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Compiled:
    workflow_id: int
    version: int
    owner_id: int
    event: str
    test: Test
    index: tuple[str, str, Any] | None  # (kind: eq | above | below | changed, field path, key)
    definition: Definition = field(compare=False)


def _key(v: Any) -> Any:
    """Values as the hash index compares them: numbers (and numeric text) as floats."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return None  # lists, objects: not indexable


def _number(v: Any) -> float | None:
    k = _key(v)
    return k if isinstance(k, float) else None


def index_of(conds: Sequence[Condition]) -> tuple[str, str, Any] | None:
    for c in conds:
        if c.op in ("eq", "changed_to") and _key(c.value) is not None:
            return ("eq", c.field, _key(c.value))
        if c.op in ("crossed_above", "crossed_below") and _number(c.value) is not None:
            return ("above" if c.op == "crossed_above" else "below", c.field, _number(c.value))
    for c in conds:
        if c.op in CHANGE_OPS:
            return ("changed", c.field, None)
    return None


def compile_definition(workflow_id: int, version: int, owner_id: int, d: Definition) -> Compiled:
    return Compiled(
        workflow_id,
        version,
        owner_id,
        d.trigger.on,
        compile_all(d.trigger.when),
        index_of(d.trigger.when),
        d,
    )


@dataclass
class _Bucket:
    always: list[Compiled] = field(default_factory=list)
    eq: dict[str, dict[Any, list[Compiled]]] = field(default_factory=dict)
    above: dict[str, tuple[list[float], list[Compiled]]] = field(default_factory=dict)
    below: dict[str, tuple[list[float], list[Compiled]]] = field(default_factory=dict)
    changed: dict[str, list[Compiled]] = field(default_factory=dict)


def _sorted(items: list[tuple[float, Compiled]]) -> tuple[list[float], list[Compiled]]:
    items.sort(key=lambda x: x[0])
    return [t for t, _ in items], [c for _, c in items]


class Matcher:
    def __init__(self, compiled: Iterable[Compiled]) -> None:
        self.buckets: dict[str, _Bucket] = {}
        above: dict[tuple[str, str], list[tuple[float, Compiled]]] = {}
        below: dict[tuple[str, str], list[tuple[float, Compiled]]] = {}
        self.size = 0
        for c in compiled:
            self.size += 1
            b = self.buckets.setdefault(c.event, _Bucket())
            if c.index is None:
                b.always.append(c)
                continue
            kind, path, key = c.index
            if kind == "eq":
                b.eq.setdefault(path, {}).setdefault(key, []).append(c)
            elif kind == "above":
                above.setdefault((c.event, path), []).append((key, c))
            elif kind == "below":
                below.setdefault((c.event, path), []).append((key, c))
            else:
                b.changed.setdefault(path, []).append(c)
        for (event, path), items in above.items():
            self.buckets[event].above[path] = _sorted(items)
        for (event, path), items in below.items():
            self.buckets[event].below[path] = _sorted(items)

    def candidates(self, event: str, old: Row, new: Row) -> list[Compiled]:
        b = self.buckets.get(event)
        if b is None:
            return []
        out = list(b.always)
        for path, by_value in b.eq.items():
            got = by_value.get(_key(read(new, path)))
            if got:
                out += got
        for path, (limits, defs) in b.above.items():
            nv = _number(read(new, path))
            if nv is None:
                continue
            ov = _number(read(old, path))
            # old <= t < new (or no old value: every t < new)
            lo = 0 if ov is None else bisect_left(limits, ov)
            out += defs[lo : bisect_left(limits, nv)]
        for path, (limits, defs) in b.below.items():
            nv = _number(read(new, path))
            if nv is None:
                continue
            ov = _number(read(old, path))
            # new < t <= old (or no old value: every t > new)
            hi = len(limits) if ov is None else bisect_right(limits, ov)
            out += defs[bisect_right(limits, nv) : hi]
        for path, defs in b.changed.items():
            if old is None or new is None or read(old, path) != read(new, path):
                out += defs
        return out

    def match(self, event: str, old: Row, new: Row) -> list[Compiled]:
        return [c for c in self.candidates(event, old, new) if c.test(old, new)]


def naive_match(
    definitions: Sequence[tuple[int, Definition]], event: str, old: Row, new: Row
) -> list[int]:
    """Baseline: every definition, conditions interpreted each time."""
    return [
        wid
        for wid, d in definitions
        if d.trigger.on == event and all(compile_all([c])(old, new) for c in d.trigger.when)
    ]
