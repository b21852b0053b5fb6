"""Spoken command phrases as sentence templates, the way Home Assistant writes them (hassil).

A template says one command in many ways: `(start|begin) [my|the] route` is "start my
route", "begin the route", "start route" ... Alternatives `(a|b)`, optional parts `[a|b]`
and permutations `(a;b)` are allowed; slot lists `{name}` and rule references `<rule>` are
not (a command here carries no slot: its context is the speaker's day and screen).

Every template is expanded to its sentences: the assistant matches what was said or typed
against them, and the speech recogniser's language model learns them. Limits keep both
small: at most MAX_SENTENCES per template and MAX_WORDS per sentence.

This is the only module that imports hassil.
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

MAX_TEMPLATE_CHARS = 200
MAX_SENTENCES = 200
MAX_WORDS = 12


class PhraseError(ValueError):
    """A template that cannot be used; the message says why."""


def normalise(text: str) -> str:
    """Lower case words, no apostrophes ("i'm" is "im", as a transcript writes it), single
    spaces: the form sentences are kept in."""
    t = text.casefold().replace("\u2019", "").replace("'", "")
    return " ".join(re.findall(r"[a-z0-9]+", t))


def expand(template: str) -> list[str]:
    """The sentences of one template (normalised, without repeats, in template order)."""
    return list(_expand(template))


@lru_cache(maxsize=1024)  # every message checks the active voice workflows' phrases
def _expand(template: str) -> tuple[str, ...]:
    from hassil import parse_sentence
    from hassil.errors import HassilError
    from hassil.parser import ParseError
    from hassil.sample import sample_expression

    text = template.strip()
    if not text:
        raise PhraseError("a phrase must not be empty")
    if len(text) > MAX_TEMPLATE_CHARS:
        raise PhraseError(f"a phrase has at most {MAX_TEMPLATE_CHARS} characters")
    if re.search(r"[{}<>]", text):
        raise PhraseError(f"{template!r}: slot lists {{...}} and rules <...> are not supported")
    try:
        sentence = parse_sentence(text)
        sampled = itertools.islice(sample_expression(sentence.expression), MAX_SENTENCES + 1)
        out = list(dict.fromkeys(s for s in (normalise(x) for x in sampled) if s))
    except (HassilError, ParseError, ValueError, IndexError) as exc:
        raise PhraseError(f"{template!r} is not a valid template: {exc}") from None
    if len(out) > MAX_SENTENCES:
        raise PhraseError(f"{template!r} says more than {MAX_SENTENCES} sentences; split it")
    if not out:
        raise PhraseError(f"{template!r} says nothing")
    long = next((s for s in out if len(s.split()) > MAX_WORDS), None)
    if long is not None:
        raise PhraseError(f"{template!r}: {long!r} has more than {MAX_WORDS} words")
    return tuple(out)
