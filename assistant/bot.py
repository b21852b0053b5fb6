"""The customer-facing chat bot's dialogue, pure: a session's state and a visitor's message
in; what the bot says, its new state and what to do out. No I/O and no clock (the service,
assistant.bot_service, searches the knowledge base, finds slots, makes the lead, books and
hands over; it feeds the results back through `after_*`).

What a visitor's message does, first match wins:

1. asking for a person ("can I talk to someone", "agent", "human") -> handover (`asked`);
2. negative sentiment (a small lexicon with negation and intensifiers, `sentiment`) ->
   handover (`negative`);
3. in the middle of qualification -> the answer to the question asked (checked: an
   e-mail must look like one; "skip" skips the optional ones), then the next question; after
   the last one the lead is made and slots are offered;
4. when slots were offered -> the one picked ("2", "the first", "Tuesday 10:00"), or none
   ("no thanks"), or anything else is read as a new question;
5. a greeting or thanks -> answered as such;
6. wanting an appointment, a quote or a visit -> qualification (a known visitor, one who
   already became a lead, goes straight to the slots);
7. anything else is a question for the knowledge base: the best public article answers,
   with its title and a link, when its score reaches the bot's threshold; else handover
   (`low_confidence`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

MAX_TEXT = 500  # what of a visitor's message the bot reads (the inbox keeps all of it)
MAX_ANSWER = 600

QUESTIONS: tuple[tuple[str, str, bool], ...] = (
    # (key, question, required)
    ("name", "Happy to help with that. May I have your name?", True),
    ("email", "Thanks{name}! What e-mail address can we reach you at?", True),
    ("company", "Which company are you with? (Say 'skip' if none.)", False),
    (
        "need",
        "What do you need: a new installation, a service contract, a repair, or something "
        "else? A few words about the equipment help.",
        True,
    ),
    ("timeline", "When would you like this done (for example: this month, next quarter)?", False),
)

_HUMAN = re.compile(
    r"\b(?:human|real person|a person|someone|somebody|agent|operator|representative|"
    r"sales ?(?:rep|person|team)|customer service|support team|staff|talk to (?:you|a|an|the)|"
    r"speak (?:to|with)|call me)\b",
    re.I,
)
_GREETING = re.compile(
    r"^(?:hi|hello|hey|hallo|good (?:morning|afternoon|evening)|greetings)[\s!.,]*(?:there)?[\s!.]*$",
    re.I,
)
_THANKS = re.compile(
    r"^(?:(?:ok(?:ay)?|great|perfect|cool|fine)[\s,!.]*)?(?:thanks?(?: you)?|thx|cheers|"
    r"that helped|that helps|bye|goodbye)\b.*$",
    re.I,
)
_WANTS = re.compile(
    r"\b(?:appointment|book(?:ing)?|schedule|meeting|demo|visit|consultation|quote|"
    r"pricing|price|prices|cost|offer|proposal|buy|purchase|install(?:ation)?|interested in|"
    r"new (?:system|unit|pump|installation)|service contract|maintenance contract)\b",
    re.I,
)
_EMAIL = re.compile(r"[^@\s<>,;:]{1,64}@[^@\s<>,;:]{1,190}\.[A-Za-z]{2,24}")
_SKIP = re.compile(r"^(?:skip|none|no|n/?a|-|nothing|not sure|no company|private)\.?$", re.I)
_NO = re.compile(
    r"^(?:no|nope|none|not now|no thanks?|no thank you|neither|none of (?:them|these))\b", re.I
)
_ORDINAL = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "last": -1}

# Negative sentiment: a small lexicon (AFINN-like weights), negation flips the next words,
# intensifiers double them; "not working" and friends are complaints by themselves.
_NEGATIVE = {
    "angry": 3, "annoyed": 2, "annoying": 2, "awful": 3, "bad": 2, "broken": 1,
    "complain": 2, "complaint": 2, "disappointed": 3, "disappointing": 3, "disgusting": 3,
    "frustrated": 3, "frustrating": 3, "furious": 4, "garbage": 3, "hate": 3, "horrible": 3,
    "incompetent": 4, "joke": 2, "lousy": 3, "mad": 2, "outraged": 4, "pathetic": 4,
    "poor": 2, "rip-off": 4, "ripoff": 4, "ridiculous": 3, "rubbish": 3, "scam": 4,
    "shame": 2, "stupid": 3, "terrible": 3, "unacceptable": 4, "upset": 2, "useless": 3,
    "waste": 2, "worst": 4, "wtf": 3, "sucks": 3, "crap": 3, "damn": 2, "fed up": 3,
    "lawyer": 3, "refund": 2, "cancel": 1, "never again": 4, "sick of": 3,
}  # fmt: skip
_POSITIVE = {
    "good": 2, "great": 3, "thanks": 2, "thank": 2, "helpful": 2, "love": 3, "excellent": 3,
    "happy": 2, "perfect": 3, "nice": 2, "awesome": 3, "fine": 1, "ok": 1, "okay": 1,
}  # fmt: skip
_NEGATORS = frozenset({"not", "no", "never", "isn't", "wasn't", "don't", "doesn't", "didn't"})
_INTENSIFIERS = frozenset({"very", "really", "so", "extremely", "totally", "absolutely"})
_COMPLAINT = re.compile(
    r"\b(?:still (?:not|broken|waiting)|again\?!|nobody (?:came|called|answered)|"
    r"no one (?:came|called|answered)|(?:waited|waiting) for (?:days|weeks|hours))\b",
    re.I,
)
NEGATIVE_AT = -3


def sentiment(text: str) -> int:
    """A sum of word weights (negative: unhappy). Pure and cheap; phrases count once."""
    low = text.casefold()
    total = 0
    for phrase in ("fed up", "never again", "sick of", "rip-off"):
        if phrase in low:
            total -= _NEGATIVE[phrase]
    words = re.findall(r"[a-z][a-z'-]*", low)
    flip, boost = 0, 1
    for w in words:
        if w in _NEGATORS:
            flip = 3
            continue
        if w in _INTENSIFIERS:
            boost = 2
            continue
        v = -_NEGATIVE.get(w, 0) or _POSITIVE.get(w, 0)
        if v and flip:
            v = -v // 2 if v < 0 else -v
        total += v * boost
        if v:
            boost = 1
        flip = max(flip - 1, 0)
    if _COMPLAINT.search(text):
        total -= 3
    if text.count("!") >= 3 or (len(text) > 12 and text.upper() == text and text.lower() != text):
        total -= 1
    return total


@dataclass(frozen=True)
class State:
    stage: str = "idle"  # idle | qualify | offer | handed_over
    answers: dict[str, str] = field(default_factory=dict)
    offered: tuple[str, ...] = ()  # ISO starts of the slots offered, in order
    misses: int = 0
    lead_id: int | None = None
    meeting_id: int | None = None


@dataclass(frozen=True)
class Article:
    id: int
    title: str
    snippet: str
    score: float
    url: str


@dataclass(frozen=True)
class Step:
    """One turn's outcome. `do` says what the service must do next: `search` (the
    knowledge base, then `after_search`), `lead` (make it, then `after_lead`), `slots`
    (find them, then `after_slots`), `book` (the slot `pick`, then `after_booking`),
    `handoff` (with `reason`), or nothing."""

    intent: str
    replies: tuple[str, ...]
    state: State
    do: str = ""
    reason: str = ""
    pick: str = ""
    confidence: float = 1.0
    citation: Article | None = None


def _ask(state: State, known_email: str | None) -> tuple[str, str] | None:
    """The next question to ask (key, text), or None when qualification is complete."""
    for key, question, _required in QUESTIONS:
        if key in state.answers:
            continue
        if key == "email" and known_email:
            continue
        name = state.answers.get("name", "").split(" ")[0]
        return key, question.format(name=f", {name}" if name else "")
    return None


def start(text: str, state: State, known_email: str | None) -> Step:
    """A visitor's message, before any knowledge base search."""
    text = " ".join(text[:MAX_TEXT].split())
    if state.stage == "handed_over":
        return Step("silent", (), state)
    if _HUMAN.search(text):
        return Step("handoff", (), state, do="handoff", reason="asked")
    if sentiment(text) <= NEGATIVE_AT:
        return Step("handoff", (), state, do="handoff", reason="negative")
    if state.stage == "qualify":
        return _qualify(text, state, known_email)
    if state.stage == "offer":
        chosen = choose(text, state.offered)
        if chosen is not None:
            return Step("book", (), state, do="book", pick=chosen)
        if _NO.match(text):
            return Step(
                "no_booking",
                ("No problem. Our team has your details and will be in touch.",),
                replace(state, stage="idle", offered=()),
            )
    if _GREETING.match(text):
        return Step(
            "greeting",
            (
                "Hello! I'm the virtual assistant. Ask me about our equipment and services, "
                "or say 'appointment' to book a visit. Type 'agent' any time to reach a person.",
            ),
            state,
        )
    if _THANKS.match(text):
        return Step("thanks", ("You're welcome! Anything else I can help with?",), state)
    if _WANTS.search(text) and "?" not in text[:-1] and not text.lower().startswith("how"):
        if state.lead_id is not None:
            return Step("offer_slots", (), state, do="slots")
        nxt = _ask(State(stage="qualify"), known_email)
        assert nxt is not None
        return Step("qualify", (nxt[1],), State(stage="qualify", answers={"_ask": nxt[0]}))
    return Step("question", (), state, do="search")


def _qualify(text: str, state: State, known_email: str | None) -> Step:
    key = state.answers.get("_ask", "")
    answers = dict(state.answers)
    required = next((r for k, _q, r in QUESTIONS if k == key), True)
    if key == "email":
        m = _EMAIL.search(text)
        if m is None:
            return Step(
                "qualify",
                ("That does not look like an e-mail address; could you type it again?",),
                state,
                confidence=0.5,
            )
        answers["email"] = m.group(0).lower()
    elif not required and _SKIP.match(text):
        answers[key] = ""
    elif key:
        answers[key] = text[:300]
    nxt = _ask(State(answers=answers), known_email)
    if nxt is None:
        answers.pop("_ask", None)
        return Step("lead", (), replace(state, answers=answers), do="lead")
    answers["_ask"] = nxt[0]
    return Step("qualify", (nxt[1],), replace(state, answers=answers))


def after_search(text: str, state: State, best: Article | None, min_score: float) -> Step:
    if best is None or best.score < min_score:
        return Step(
            "fallback", (), replace(state, misses=state.misses + 1), do="handoff",
            reason="low_confidence", confidence=best.score if best else 0.0,
        )  # fmt: skip
    snippet = best.snippet if len(best.snippet) <= MAX_ANSWER else best.snippet[:MAX_ANSWER] + "…"
    return Step(
        "kb_answer",
        (f"{snippet}\n\nFrom our article \u201c{best.title}\u201d: {best.url}",),
        replace(state, misses=0),
        confidence=best.score,
        citation=best,
    )


def after_lead(state: State, lead_id: int | None) -> Step:
    """Qualification done: the lead made (or the CRM refused it); offer slots next."""
    return Step(
        "lead_created" if lead_id is not None else "lead_refused",
        ("Thank you, I have noted your request.",),
        replace(state, stage="idle", lead_id=lead_id),
        do="slots",
    )


def after_slots(
    state: State, slots: list[tuple[str, str]], zone: str = "UTC", visitors: bool = False
) -> Step:
    """`slots`: (ISO start, how to say it) of the next free times, said in `zone` (the
    visitor's own when `visitors`, else the team's)."""
    if not slots:
        return Step(
            "no_slots",
            ("Our team will contact you to find a time.",),
            replace(state, stage="idle", offered=()),
        )
    lines = "\n".join(f"{i}. {label}" for i, (_iso, label) in enumerate(slots, 1))
    whose = "your time zone" if visitors else "our team's time zone"
    return Step(
        "offer_slots",
        (
            f"Would you like to book a call with our team? The next free times are "
            f"({whose}, {zone}):\n{lines}\nReply with the number, or 'no'.",
        ),
        replace(state, stage="offer", offered=tuple(iso for iso, _ in slots)),
    )


def after_booking(state: State, label: str | None, meeting_id: int | None) -> Step:
    if meeting_id is None or label is None:
        return Step(
            "slot_taken",
            ("Sorry, that time was just taken.",),
            replace(state, stage="idle", offered=()),
            do="slots",
        )
    return Step(
        "booked",
        (f"You're booked for {label}. You will hear from us before then.",),
        replace(state, stage="idle", offered=(), meeting_id=meeting_id),
    )


def choose(text: str, offered: tuple[str, ...]) -> str | None:
    """The offered slot `text` picks: its number, an ordinal, or its time of day."""
    if not offered:
        return None
    low = text.casefold().strip(" .!")
    m = re.fullmatch(r"(?:(?:number|option|slot|#)\s*)?(\d{1,2})", low)
    if m is not None:
        i = int(m.group(1)) - 1
        return offered[i] if 0 <= i < len(offered) else None
    for word, i in _ORDINAL.items():
        if re.search(rf"\b{word}\b", low):
            return offered[i]
    m = re.search(r"\b(\d{1,2})[:.](\d{2})\b", low)
    if m is not None:
        hhmm = f"{int(m.group(1)):02d}:{m.group(2)}"
        same = [iso for iso in offered if datetime.fromisoformat(iso).strftime("%H:%M") == hhmm]
        if len(same) == 1:
            return same[0]
    return None


def handoff_reply(reason: str) -> str:
    if reason == "negative":
        return "I'm sorry about this. I'm passing you to a member of our team right away."
    if reason == "low_confidence":
        return "I'm not sure I can answer that well, so I'm passing you to a member of our team."
    if reason == "limit":
        return "A member of our team will continue this conversation with you."
    return "Of course. I'm passing you to a member of our team; they can see our conversation."


def summary(state: State, reason: str, transcript: list[tuple[str, str]]) -> str:
    """The handover note for the agents: why, what was gathered, and the transcript."""
    why = {
        "asked": "the visitor asked for a person",
        "negative": "the visitor sounds unhappy",
        "low_confidence": "the bot could not answer confidently",
        "limit": "the bot's limit for this visitor was reached",
    }.get(reason, reason)
    lines = [f"Handed over by the assistant bot: {why}."]
    facts = {k: v for k, v in state.answers.items() if not k.startswith("_") and v}
    if facts:
        lines.append("Collected: " + "; ".join(f"{k}: {v}" for k, v in facts.items()))
    if state.lead_id is not None:
        lines.append(f"Lead: /console/#/r/leads/{state.lead_id}")
    if state.meeting_id is not None:
        lines.append(f"Meeting booked: /console/#/r/activities/{state.meeting_id}")
    lines.append("Transcript:")
    lines.extend(f"{who}: {text[:500]}" for who, text in transcript[-30:])
    return "\n".join(lines)


def to_json(state: State) -> dict[str, Any]:
    return {
        "answers": state.answers,
        "offered": list(state.offered),
        "misses": state.misses,
    }
