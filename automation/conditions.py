"""Conditions compiled to closures (pure): a change is the record before (`old`, None on
create) and after (`new`, None on delete); `field` reads a column, or a dotted path into a
JSON column (`custom.score`). A number and a numeric string compare as numbers (a value
typed into a definition may be text); values that cannot be ordered never match.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

Row = dict[str, Any] | None
Test = Callable[[Row, Row], bool]
_MISSING = object()


class ConditionLike(Protocol):
    @property
    def field(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def value(self) -> Any: ...


def read(row: Row, path: str) -> Any:
    if row is None:
        return _MISSING
    node: Any = row
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def _num(v: Any) -> Any:
    t = type(v)
    if t is float:
        return v
    if t is int:
        return float(v)
    if t is str:
        try:
            return float(v)
        except ValueError:
            return v
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return float(v)
    return v


def _cmp(a: Any, b: Any, op: str) -> bool:
    if a is _MISSING or a is None or b is None:
        return False
    x, y = _num(a), _num(b)
    try:
        if op == "gt":
            return bool(x > y)
        if op == "gte":
            return bool(x >= y)
        if op == "lt":
            return bool(x < y)
        return bool(x <= y)
    except TypeError:
        return False


def _eq(a: Any, b: Any) -> bool:
    if a is _MISSING:
        return False
    if a == b:
        return True
    na, nb = _num(a), _num(b)
    return isinstance(na, float) and isinstance(nb, float) and na == nb


def compile_one(c: ConditionLike) -> Test:
    path, op, value = c.field, c.op, c.value
    if op == "eq":
        return lambda old, new: _eq(read(new, path), value)
    if op == "ne":
        return lambda old, new: not _eq(read(new, path), value)
    if op in ("gt", "gte", "lt", "lte"):
        return lambda old, new: _cmp(read(new, path), value, op)
    if op in ("in", "not_in"):
        values = list(value or [])

        def member(old: Row, new: Row) -> bool:
            return any(_eq(read(new, path), v) for v in values)

        return member if op == "in" else (lambda old, new: not member(old, new))
    if op == "contains":
        return lambda old, new: _contains(read(new, path), value)
    if op == "is_null":
        return lambda old, new: read(new, path) in (None, _MISSING)
    if op == "not_null":
        return lambda old, new: read(new, path) not in (None, _MISSING)
    if op == "changed":
        return lambda old, new: old is not None and read(old, path) != read(new, path)
    if op == "changed_to":
        return lambda old, new: (
            _eq(read(new, path), value) and (old is None or not _eq(read(old, path), value))
        )
    if op == "changed_from":
        return lambda old, new: (
            old is not None and _eq(read(old, path), value) and not _eq(read(new, path), value)
        )
    if op == "crossed_above":
        return lambda old, new: (
            _cmp(read(new, path), value, "gt")
            and (old is None or not _cmp(read(old, path), value, "gt"))
        )
    if op == "crossed_below":
        return lambda old, new: (
            _cmp(read(new, path), value, "lt")
            and (old is None or not _cmp(read(old, path), value, "lt"))
        )
    raise ValueError(f"unknown op {op!r}")


OPS = frozenset(
    [
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "not_in",
        "contains",
        "is_null",
        "not_null",
        "changed",
        "changed_to",
        "changed_from",
        "crossed_above",
        "crossed_below",
    ]
)


def _contains(a: Any, v: Any) -> bool:
    if isinstance(a, list):
        return v in a
    if isinstance(a, str) and isinstance(v, str):
        return v.lower() in a.lower()
    return False


def compile_all(conds: Sequence[ConditionLike], match: str = "all") -> Test:
    tests = [compile_one(c) for c in conds]
    if not tests:
        return lambda old, new: True
    if len(tests) == 1:
        return tests[0]
    if match == "any":
        return lambda old, new: any(t(old, new) for t in tests)
    return lambda old, new: all(t(old, new) for t in tests)


def fields_of(conds: Sequence[ConditionLike]) -> set[str]:
    return {c.field.split(".")[0] for c in conds}
