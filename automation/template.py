"""`{{path}}` placeholders in step values, filled from the run's context (pure).

Only lookups, no expressions: `{{record.name}}`, `{{steps.assign.user_id}}`. A value that
is exactly one placeholder keeps its type (an id stays a number); inside text it becomes
text; a missing path becomes empty text (or None when alone).
"""

from __future__ import annotations

import re
from typing import Any

_PH = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*)\s*\}\}")


def lookup(ctx: dict[str, Any], path: str) -> Any:
    node: Any = ctx
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def render(value: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(value, str):
        m = _PH.fullmatch(value.strip())
        if m:
            return lookup(ctx, m.group(1))

        def sub(m: re.Match[str]) -> str:
            v = lookup(ctx, m.group(1))
            return "" if v is None else str(v)

        return _PH.sub(sub, value)
    if isinstance(value, dict):
        return {k: render(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, ctx) for v in value]
    return value
