"""Text clean-up before understanding: fillers, short forms, common typos, number words.

The original words are kept (slot values are written as the user said them); only fillers,
short forms and misspelt keywords are replaced, so that rules and the classifier see one form.
"""

from __future__ import annotations

import re

FILLERS = ("uh", "um", "er", "erm", "uhm", "hmm")
# Short forms and typos of keywords (never of names): whole words, case-insensitive.
SHORT = {
    "tmrw": "tomorrow",
    "tmr": "tomorrow",
    "tomorow": "tomorrow",
    "pls": "please",
    "plz": "please",
    "w/": "with",
    "w": "with",
    "opp": "opportunity",
    "opps": "opportunities",
    "oppty": "opportunity",
    "wo": "work order",
    "wos": "work orders",
    "serch": "search",
    "seach": "search",
    "leed": "lead",
    "chek": "check",
    "acknowlege": "acknowledge",
    "aknowledge": "acknowledge",
    "acknowledgde": "acknowledge",
    "nxt": "next",
    "remaind": "remind",
    "remnd": "remind",
    "remidner": "reminder",
    "meting": "meeting",
    "metting": "meeting",
    "shedule": "schedule",
    "schedul": "schedule",
    "oportunity": "opportunity",
    "opportunty": "opportunity",
    "contcat": "contact",
    "acount": "account",
    "accout": "account",
    "whats": "what's",
    "wheres": "where's",
    "im": "I'm",
    "ive": "I've",
    "thx": "thanks",
    "mins": "minutes",
    "min": "minutes",
    "hrs": "hours",
    "hr": "hour",
    "asap": "asap",
    "chk": "check",
    "prio": "priority",
    "abt": "about",
    "mtg": "meeting",
    "appt": "appointment",
    "acct": "account",
    "cust": "customer",
    "2morrow": "tomorrow",
    "u": "you",
    "ur": "your",
    "msg": "message",
}

_FILLER_RE = re.compile(r"\b(?:{})\b[,.]?\s*".format("|".join(FILLERS)), re.IGNORECASE)
_SHORT_RE = re.compile(
    r"(?<![\w-])({})(?![\w-])".format(
        "|".join(re.escape(k) for k in sorted(SHORT, key=len, reverse=True))
    ),
    re.IGNORECASE,
)


# Command words a typo of which is put right (one letter wrong, missing, extra or swapped),
# so that a misspelling nobody listed above still reads as the word ("calender", "shedul").
KEYWORDS: tuple[str, ...] = (
    "account",
    "accounts",
    "acknowledge",
    "acknowledged",
    "activities",
    "activity",
    "address",
    "alarm",
    "alarms",
    "alert",
    "alerts",
    "appointment",
    "arrival",
    "arrived",
    "assign",
    "calendar",
    "cancel",
    "change",
    "check",
    "checked",
    "close",
    "closed",
    "complete",
    "completed",
    "contact",
    "contacts",
    "create",
    "customer",
    "customers",
    "dashboard",
    "directions",
    "dismiss",
    "disqualify",
    "finish",
    "finished",
    "forecast",
    "location",
    "meeting",
    "meetings",
    "minutes",
    "navigate",
    "opportunities",
    "opportunity",
    "pipeline",
    "preferences",
    "pressure",
    "priority",
    "prospect",
    "prospects",
    "qualified",
    "qualify",
    "quarter",
    "record",
    "remind",
    "reminder",
    "rename",
    "report",
    "reports",
    "revenue",
    "schedule",
    "search",
    "settings",
    "silence",
    "status",
    "technician",
    "ticket",
    "tickets",
    "today",
    "tomorrow",
    "update",
    "visit",
    "visits",
    "workshop",
    "yesterday",
)  # fmt: skip
_ENDINGS = ("s", "d", "ed", "es", "r", "er", "ing", "n")


_VOWELS = set("aeiouy")
# Real words one letter short of a command word, which stay as they are.
_REAL = frozenset({"crate", "stats", "chuck", "chick"})


def _typo_of(word: str, kw: str) -> bool:
    """True when `word` is `kw` typed with one slip: two letters swapped, a letter left
    out, or (in words of six letters or more) one vowel for another. A longer word or a
    consonant for another is no slip: those are other words ("contract", "charge")."""
    if len(word) == len(kw):
        diff = [i for i in range(len(word)) if word[i] != kw[i]]
        if len(diff) == 2 and diff[1] == diff[0] + 1:
            return word[diff[0]] == kw[diff[1]] and word[diff[1]] == kw[diff[0]]
        return (
            len(diff) == 1
            and len(word) >= 6
            and word[diff[0]] in _VOWELS
            and kw[diff[0]] in _VOWELS
        )
    if len(word) + 1 == len(kw):
        i = 0
        while i < len(word) and word[i] == kw[i]:
            i += 1
        return word[i:] == kw[i + 1 :]
    return False


def _keyword(word: str) -> str:
    """The command word a lower-case word of five letters or more misspells, else the word."""
    if len(word) < 5 or word in KEYWORDS or word in _REAL or not word.isalpha():
        return word
    # an inflection of a command word is no typo of it ("closes", "checks")
    if any(word == kw + e or kw == word + e for kw in KEYWORDS for e in _ENDINGS):
        return word
    for kw in KEYWORDS:
        if _typo_of(word, kw):
            return kw
    return word


def clean(text: str) -> str:
    """Fillers out, short forms expanded, whitespace collapsed; names and casing kept."""
    t = text.replace("\u2019", "'").strip()
    t = _FILLER_RE.sub("", t)
    # Capitalised words inside the sentence are left alone: they are names ("Leed", "Wo").
    t = _SHORT_RE.sub(
        lambda m: (
            m.group(1)
            if m.start() > 0 and m.group(1)[:1].isupper() and m.group(1) not in ("WO", "Im", "Ive")
            else SHORT[m.group(1).casefold()]
        ),
        t,
    )
    t = re.sub(r"\b[a-z]{5,}\b", lambda m: _keyword(m.group(0)), t)
    t = re.sub(r"\s+", " ", t).strip()
    return t.strip(" .!?")


UNITS = {
    "zero": 0, "oh": 0, "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "k": 1000, "m": 1_000_000}
NUM_WORD = r"(?:{})".format(
    "|".join(
        sorted([*(k for k in UNITS if k not in ("a", "an", "oh")), *TENS], key=len, reverse=True)
    )
)


def words_to_number(words: str) -> float | None:
    """'seventy five thousand' -> 75000, 'one point five million' -> 1.5e6, '1.2m' -> 1.2e6."""
    s = words.casefold().replace(",", "").replace("-", " ").strip()
    s = re.sub(r"(\d)\s*(k|m)\b", r"\1 \2", s)
    s = s.replace(" and ", " ")
    # "half a million", "a quarter of a million"
    s = re.sub(r"\b(?:a |one )?half (?:a |an |of a )?(?=million|thousand)", "0.5 ", s)
    s = re.sub(r"\b(?:a |one )?quarter (?:of )?(?:a )?(?=million)", "0.25 ", s)
    total = 0.0
    current = 0.0
    seen = False
    toks = s.split()
    i = 0
    while i < len(toks):
        w = toks[i]
        if re.fullmatch(r"\d+(?:\.\d+)?", w):
            current += float(w)
            seen = True
        elif w in UNITS and w not in ("a", "an", "oh"):
            current += UNITS[w]
            seen = True
        elif w in ("a", "an") and i + 1 < len(toks) and toks[i + 1] in SCALES:
            current += 1
            seen = True
        elif w in TENS:
            current += TENS[w]
            seen = True
        elif w == "point" and i + 1 < len(toks):
            frac = ""
            j = i + 1
            while j < len(toks) and (toks[j] in UNITS or toks[j].isdigit()):
                frac += str(UNITS[toks[j]]) if toks[j] in UNITS else toks[j]
                j += 1
            current += float("0." + frac) if frac else 0
            i = j
            continue
        elif w in SCALES:
            scale = SCALES[w]
            if scale == 100:
                current = (current or 1) * 100
            else:
                total += (current or 1) * scale
                current = 0
            seen = True
        else:
            return None
        i += 1
    return total + current if seen else None


def digits_for_words(text: str) -> str:
    """Small number words to digits ('pump four' -> 'pump 4', 'twenty five' -> '25')."""

    def repl(m: re.Match[str]) -> str:
        n = words_to_number(m.group(0))
        return m.group(0) if n is None else str(int(n))

    pattern = rf"\b{NUM_WORD}(?:[ -]{NUM_WORD})?\b"
    return re.sub(pattern, repl, text, flags=re.IGNORECASE)
