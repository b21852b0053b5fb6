"""Which active definitions a change starts (pure, no I/O).

Definitions are indexed by event key (`opportunities.updated`); within a key, a definition
whose conditions include a change operator (`changed`, `changed_to`, `crossed_below`, ...)
on a field is filed under that field and tried only when the field changed, the others
are tried on every change of the key. Conditions are compiled once to closures
(`automation.conditions`). `naive_match` is the baseline the benchmark compares with:
every definition's conditions interpreted for every change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from automation.conditions import Row, Test, compile_all
from automation.definition import Condition, Definition

CHANGE_OPS = frozenset({"changed", "changed_to", "changed_from", "crossed_above", "crossed_below"})


@dataclass(frozen=True, slots=True)
class Compiled:
    workflow_id: int
    version: int
    owner_id: int
    event: str
    test: Test
    guard: str | None  # a top-level field that must have changed, or None
    definition: Definition = field(compare=False)


def guard_field(conds: Sequence[Condition]) -> str | None:
    for c in conds:
        if c.op in CHANGE_OPS:
            return c.field.split(".")[0]
    return None


def compile_definition(workflow_id: int, version: int, owner_id: int, d: Definition) -> Compiled:
    return Compiled(
        workflow_id,
        version,
        owner_id,
        d.trigger.on,
        compile_all(d.trigger.when),
        guard_field(d.trigger.when),
        d,
    )


def changed_fields(old: Row, new: Row) -> set[str] | None:
    """Top-level fields that differ; None when the change is a create or delete."""
    if old is None or new is None:
        return None
    return {k for k, v in new.items() if old.get(k, v) != v or k not in old}


class Matcher:
    def __init__(self, compiled: Iterable[Compiled]) -> None:
        self.always: dict[str, list[Compiled]] = {}
        self.guarded: dict[str, dict[str, list[Compiled]]] = {}
        self.size = 0
        for c in compiled:
            self.size += 1
            if c.guard is None:
                self.always.setdefault(c.event, []).append(c)
            else:
                self.guarded.setdefault(c.event, {}).setdefault(c.guard, []).append(c)

    def match(self, event: str, old: Row, new: Row) -> list[Compiled]:
        out = [c for c in self.always.get(event, ()) if c.test(old, new)]
        by_field = self.guarded.get(event)
        if by_field:
            changed = changed_fields(old, new)
            if changed is None:  # a create or delete: every guarded one is a candidate
                candidates: Iterable[str] = by_field
            elif len(changed) < len(by_field):
                candidates = (f for f in changed if f in by_field)
            else:
                candidates = (f for f in by_field if f in changed)
            for f in candidates:
                out += [c for c in by_field[f] if c.test(old, new)]
        return out


def naive_match(definitions: Sequence[tuple[int, Definition]], event: str, old: Row, new: Row) -> list[int]:
    """Baseline: every definition, conditions interpreted each time."""
    return [
        wid
        for wid, d in definitions
        if d.trigger.on == event and _interpret(d.trigger.when, old, new)
    ]


def _interpret(conds: Sequence[Condition], old: Row, new: Row) -> bool:
    return all(compile_all([c])(old, new) for c in conds)

