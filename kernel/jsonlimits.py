"""Limits on untrusted JSON, checked before the parser runs.

msgspec parses recursively in C: a payload nested a few thousand levels deep raises
RecursionError, which is not one of its input errors and would escape any `except
msgspec.MsgspecError`. `json_depth` measures the nesting of a document with a handful of
vectorised passes (numpy), so the limit is enforced before parsing, at C speed, whatever
the size. Strings are told apart from structure exactly as a JSON tokenizer does: a quote
is escaped when an odd run of backslashes precedes it.

`text_problem` names what is wrong with a decoded string that must be plain text: NUL and
other control characters (PostgreSQL refuses NUL in text and jsonb) and lone surrogates
(they cannot be encoded to UTF-8 on the way to the database).
"""

from __future__ import annotations

import re

import numpy as np

MAX_DEPTH = 32

_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[ord("[")] = 1
_OPEN[ord("{")] = 1
_OPEN[ord("]")] = -1
_OPEN[ord("}")] = -1
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def json_depth(raw: bytes) -> int:
    """The maximum nesting depth of arrays and objects in `raw` (0 for a scalar)."""
    if not raw:
        return 0
    if b"[" not in raw and b"{" not in raw:
        return 0
    arr = np.frombuffer(raw, dtype=np.uint8)
    n = arr.size
    quotes = arr == _QUOTE
    if quotes.any():
        backslash = arr == _BACKSLASH
        if backslash.any():
            # Length of the run of backslashes ending just before each position.
            idx = np.arange(n)
            last_plain = np.maximum.accumulate(np.where(backslash, -1, idx))
            run_before = np.empty(n, dtype=np.int64)
            run_before[0] = 0
            run_before[1:] = idx[:-1] - last_plain[:-1]
            quotes &= (run_before % 2) == 0
        # Positions inside a string (the opening quote counts as inside, the closing not).
        inside = (np.cumsum(quotes) % 2).astype(bool)
        inside |= quotes  # neither quote is structure
        steps = np.where(inside, 0, _OPEN[arr])
    else:
        steps = _OPEN[arr]
    depth = np.cumsum(steps, dtype=np.int64)
    return int(depth.max(initial=0))


def check_depth(raw: bytes, limit: int = MAX_DEPTH) -> str | None:
    """A message naming the problem when `raw` nests deeper than `limit`, else None."""
    depth = json_depth(raw)
    if depth > limit:
        return f"JSON nested {depth} levels deep (at most {limit})"
    return None


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """What makes `value` unacceptable as stored text, or None when it is fine.

    Tab, CR and LF are allowed only in multi-line text (notes, details); every other C0
    control character, DEL and any lone surrogate are refused.
    """
    pattern = _CONTROL if multiline else _CONTROL_OR_NEWLINE
    m = pattern.search(value)
    if m is not None:
        return f"control character U+{ord(m.group()):04X} at position {m.start()}"
    m = _SURROGATE.search(value)
    if m is not None:
        return f"lone surrogate U+{ord(m.group()):04X} at position {m.start()}"
    return None
