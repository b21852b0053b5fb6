"""Workflow commands: phrases that start a workflow ("start my route", "escalate this
alert", or an admin's "call for backup"), recognised beside the 14-intent understanding.

The schema's fourteen intents have no workflow: "start my route" is `out_of_scope` there
(the trained model leans to check_in; "escalate this alert" to acknowledge_alert). So
these are a layer of their own, after the understanding and without changing it:

- Each command has sentence templates (automation.phrases: hassil's syntax), expanded to
  sentences. What was said or typed, cleaned of fillers and polite openings, is matched
  against them: the same sentence (confidence 1), else the closest one by rapidfuzz's
  ratio (its score over 100).
- `choose` decides between the understanding and a match. A built-in command takes an
  exact sentence whatever the understanding says, unless a rule of the understanding
  decided (its own commands keep their meaning); an admin's command takes an exact
  sentence the understanding did not decide by rule; a near sentence (typos, a word
  misheard) only a text the understanding found out of scope.
- `reply_to_question`: "yes" / "no" after a command's confirmation question (the answer's
  context says which command asked), so a spoken confirmation needs no screen.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from rapidfuzz import fuzz, process

from assistant.understand import Understanding
from automation.phrases import expand, normalise

START_ROUTE = "start_route"
ESCALATE_ALERT = "escalate_alert"
AUTOMATION = "automation:"  # + workflow id: an admin's voice-triggered workflow
WORKFLOW_INTENT = "workflow"  # the intent answers and analytics report for a command

BUILT_IN: dict[str, tuple[str, ...]] = {
    START_ROUTE: (
        "(start|begin) [my|the] (route|round|rounds|day|tour)",
        "(start|begin) [my|the] route for today",
        "(start|begin) today's route",
        "[i'm|i am] (starting|beginning) my (route|day)",
        "let's (start|begin|go) [on] [my|the] route",
        "(i'm|i am) (heading|setting) out",
        "[start|begin] (driving|navigating) [my|the] route",
        "(start|begin) the route now",
    ),
    ESCALATE_ALERT: (
        "escalate [this|the|that|my] (alert|alarm|warning)",
        "escalate it",
        "escalate [this|the|that] (alert|alarm) to [my|the] [service] manager",
        "(raise|bump) [the] priority of [this|the|that] (alert|alarm)",
        "(send|pass|hand) [this|the|that] (alert|alarm) to [my|the] [service] manager",
        "this (alert|alarm) needs (escalating|escalation|a manager)",
        "(alert|tell|notify) [my|the] [service] manager about [this|the|that] (alert|alarm)",
    ),
}
BUILT_IN_NAMES = {START_ROUTE: "Start my route", ESCALATE_ALERT: "Escalate this alert"}

FUZZY_MIN = 0.86  # a near sentence counts only this close, and only for out-of-scope text
MIN_FUZZY_CHARS = 8  # too short to judge by closeness ("yes", "ok")

_OPENING = re.compile(
    r"^(?:(?:ok(?:ay)?|so|hey|hi|hello|yes|yeah|please|assistant|alright|right|now|and|uh|um|er|"
    r"erm|hmm)\s+|(?:can|could|would|will) you (?:please )?|i(?:d| would)? (?:want|need|like) "
    r"(?:you )?to |let me |please )+"
)
_CLOSING = re.compile(r"(?:\s+(?:please|now|thanks|thank you|right now|for me))+$")
_FILLER = re.compile(r"\b(?:uh|um|er|erm|uhm|hmm)\b")


@dataclass(frozen=True, slots=True)
class Command:
    key: str  # START_ROUTE, ESCALATE_ALERT or AUTOMATION + workflow id
    name: str
    templates: tuple[str, ...]
    built_in: bool = True


@dataclass(frozen=True, slots=True)
class Match:
    command: Command
    sentence: str  # the command's sentence that matched
    confidence: float
    exact: bool


def said(text: str) -> str:
    """`text` in the form sentences are kept: lower case words, no fillers, no polite
    opening ("hey, could you please ...") or closing ("... now please")."""
    t = _FILLER.sub(" ", normalise(text))
    t = " ".join(t.split())
    t = _OPENING.sub("", t)
    return _CLOSING.sub("", t).strip()


@cache
def _sentences(templates: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for t in templates for s in expand(t)))


def built_in() -> list[Command]:
    return [Command(k, BUILT_IN_NAMES[k], t) for k, t in BUILT_IN.items()]


def sentences(commands: Iterable[Command]) -> list[str]:
    """Every sentence of these commands (for the speech recogniser's language model)."""
    return list(dict.fromkeys(s for c in commands for s in _sentences(c.templates)))


def recognise(text: str, commands: Sequence[Command]) -> Match | None:
    """The command `text` says, if any: the same sentence, else the closest one."""
    t = said(text)
    if not t:
        return None
    table = [(s, c) for c in commands for s in _sentences(c.templates)]
    for s, c in table:
        if s == t:
            return Match(c, s, 1.0, True)
    if len(t) < MIN_FUZZY_CHARS or not table:
        return None
    sentence, score, index = process.extractOne(t, [s for s, _ in table], scorer=fuzz.ratio)
    return Match(table[index][1], sentence, round(score / 100, 3), False)


def choose(u: Understanding, m: Match | None) -> Match | None:
    """The command to carry out instead of the understanding `u`, or None (see the module)."""
    if m is None:
        return None
    by_rule = u.by.startswith("rule") or u.by.endswith("context")
    if m.exact:
        if u.intent == "out_of_scope" or not by_rule:
            return m
        return None
    if u.intent == "out_of_scope" and m.confidence >= FUZZY_MIN:
        return m
    return None


YES = frozenset(
    normalise(s)
    for s in (
        "yes", "yeah", "yep", "yes please", "sure", "ok", "okay", "do it", "go ahead", "confirm",
        "confirmed", "yes do it", "yes go ahead", "please do", "correct", "affirmative", "start it",
    )
)  # fmt: skip
NO = frozenset(
    normalise(s)
    for s in ("no", "nope", "cancel", "no thanks", "stop", "don't", "do not", "never mind", "abort")
)
YES_NO_SENTENCES = sorted(YES | NO)


def reply_to_question(text: str) -> bool | None:
    """True for a yes, False for a no, None for anything else."""
    t = " ".join(_FILLER.sub(" ", normalise(text)).split())
    if t in YES:
        return True
    if t in NO:
        return False
    return None
