"""Multi-turn context, stateless: the client sends back the `context` of the previous answer
(its intent and slots), so any chat or voice platform can hold a conversation without the
server keeping sessions.

- Pronouns ("call her tomorrow at 10", "log a call with him") name the previous record.
- Follow-ups of a figure or a search ("and last quarter?", "what about the north territory",
  "and in Munich") keep the previous intent and slots and take what the new words change.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from assistant.text import clean
from assistant.understand import Fallback, Understanding, slots_for, understand
from assistant.when import find_date

PRONOUN = re.compile(r"\b(?:her|him|them|she|he|they)\b", re.I)
FOLLOW = re.compile(r"^(?:and|what about|how about|same for|same thing for|now|also|then)\b", re.I)
CONTINUES = ("report_query", "search_records")


def understand_in_context(
    text: str,
    now: datetime,
    context: dict[str, Any] | None,
    fallback: Fallback | None = None,
) -> Understanding:
    u = understand(text, now, fallback=fallback)
    if not context:
        return u
    prev_intent = str(context.get("intent") or "")
    prev: dict[str, Any] = dict(context.get("slots") or {})
    name = prev.get("name")
    if isinstance(name, str) and name and PRONOUN.search(text):
        named = PRONOUN.sub(lambda _m: name, text)
        u2 = understand(named, now, fallback=fallback)
        low = clean(named).casefold()
        if (
            u2.intent == "out_of_scope"
            and re.match(r"^(?:call|phone|ring)\b", low)
            and find_date(low, now)
        ):
            rest = re.sub(r"^(?:call|phone|ring)\s+", "", clean(named), flags=re.I)
            rest = rest[len(name) :] if rest.casefold().startswith(name.casefold()) else rest
            u2 = understand(f"schedule a call with {name} {rest}", now, fallback=fallback)
        if u2.intent != "out_of_scope":
            return Understanding(u2.intent, u2.slots, u2.confidence, f"{u2.by}+context")
    cleaned = clean(text).strip(" ?!.")
    if prev_intent in CONTINUES and (
        FOLLOW.match(cleaned) or (u.intent == "out_of_scope" and len(cleaned.split()) <= 4)
    ):
        new = {k: v for k, v in slots_for(prev_intent, cleaned, now).items() if v not in (None, "")}
        if not new and prev_intent == "report_query":
            where = slots_for("search_records", cleaned, now)
            place = where.get("territory") or where.get("city")
            new = {"territory": place} if place else {}
        if new:
            if prev_intent == "report_query" and "territory" in new:
                prev.pop("city", None)
            merged = {**prev, **new}
            return Understanding(prev_intent, merged, 0.9, "context")
    return u
