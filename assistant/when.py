"""Dates and times said in a command, resolved against the user's local `now`.

A small resolver of our own rather than dateparser: SCHEMA.md fixes rules that general
parsers do not follow (a weekday is 1-7 days ahead, "next Friday" is in the next calendar
week, a bare "at 3" is a working-day hour), and it loads in microseconds, not seconds.
Each finder returns the value and the text span it used, so that callers can cut the
span out of names and notes.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from assistant.text import NUM_WORD, words_to_number

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = [m.casefold() for m in calendar.month_name if m]
MONTH_ABBR = [m.casefold() for m in calendar.month_abbr if m]
_WD = r"(?:mon|tues|tue|wednes|wed|thurs|thu|fri|satur|sat|sun)(?:day)?"
_MONTH = r"(?:{})".format("|".join(sorted(MONTHS + MONTH_ABBR, key=len, reverse=True)))
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_ORDW = r"(?:(?:twenty|thirty)[ -])?(?:{})".format(
    "|".join(sorted(_ORDINALS, key=len, reverse=True))
)
_ORD = rf"(\d{{1,2}}(?:st|nd|rd|th)?|{_ORDW})"


def _day(word: str) -> int:
    """'12', '12th', 'twelfth', 'twenty first' -> the day number."""
    w = word.casefold().replace("-", " ")
    m = re.match(r"\d+", w)
    if m:
        return int(m.group(0))
    parts = w.split()
    if len(parts) == 2:
        return {"twenty": 20, "thirty": 30}[parts[0]] + _ORDINALS[parts[1]]
    return _ORDINALS[w]


_NUM = rf"(?:\d+|{NUM_WORD}(?:[ -]{NUM_WORD})?|a|an|one)"


@dataclass(frozen=True)
class Found:
    value: str
    spans: tuple[tuple[int, int], ...]


def _weekday(word: str) -> int:
    w = word.casefold()[:3]
    return [d[:3] for d in WEEKDAYS].index(w)


def _month(word: str) -> int:
    w = word.casefold()[:3]
    return [m[:3] for m in MONTHS].index(w) + 1


def _num(word: str) -> int | None:
    n = words_to_number(word)
    return None if n is None else int(n)


def find_date(text: str, now: datetime) -> Found | None:
    """The first date the text says, as YYYY-MM-DD."""
    t = text.casefold()
    today = now.date()
    rules: list[tuple[str, object]] = [
        (r"\bthe day after tomorrow\b|\bday after tomorrow\b", lambda m: today + timedelta(2)),
        (r"\btomorrow\b", lambda m: today + timedelta(1)),
        (r"\b(?:today|tonight|this (?:morning|afternoon|evening))\b", lambda m: today),
        (rf"\bin ({_NUM}) days?\b", lambda m: _plus(today, m.group(1), 1)),
        (rf"\bin ({_NUM}) weeks?\b", lambda m: _plus(today, m.group(1), 7)),
        (
            rf"\bnext ({_WD})\b|\b({_WD}) next week\b",
            lambda m: _next_week(today, m.group(1) or m.group(2)),
        ),
        (r"\bin a week\b|\bnext week\b(?! ?(?:on )?" + _WD + ")", lambda m: today + timedelta(7)),
        (r"\b(?:the )?end of (?:the |this )?month\b", lambda m: _month_end(today)),
        (rf"\b(?:this |on |coming )?({_WD})\b", lambda m: _ahead(today, m.group(1))),
        (
            rf"\b({_MONTH})\.? (?:the )?{_ORD}\b",
            lambda m: _dated(today, _month(m.group(1)), _day(m.group(2))),
        ),
        (
            rf"\b{_ORD} (?:of )?({_MONTH})\b",
            lambda m: _dated(today, _month(m.group(2)), _day(m.group(1))),
        ),
        (
            rf"\b(?:on )?the (\d{{1,2}}(?:st|nd|rd|th)|{_ORDW})\b(?! (?:quarter|week|time|one|stop|visit|customer))",
            lambda m: _day_of_month(today, _day(m.group(1))),
        ),
    ]
    best: tuple[int, Found] | None = None
    for pattern, fn in rules:
        m = re.search(pattern, t)
        if not m:
            continue
        try:
            d = fn(m)  # type: ignore[operator]
        except (ValueError, IndexError):
            continue
        if d is None:
            continue
        found = Found(d.isoformat(), ((m.start(), m.end()),))
        if best is None:
            best = (m.start(), found)
        # The rules are in precedence order; the first that matches wins.
        break
    return best[1] if best else None


def _plus(today: date, n: str, unit: int) -> date | None:
    k = 1 if n.casefold() in ("a", "an") else _num(n)
    return None if k is None else today + timedelta(days=k * unit)


def _month_end(today: date) -> date:
    return today.replace(day=calendar.monthrange(today.year, today.month)[1])


def _ahead(today: date, wd: str) -> date:
    delta = (_weekday(wd) - today.weekday()) % 7
    return today + timedelta(days=delta or 7)


def _next_week(today: date, wd: str) -> date:
    monday = today - timedelta(days=today.weekday()) + timedelta(days=7)
    return monday + timedelta(days=_weekday(wd))


def _dated(today: date, month: int, day: int) -> date:
    d = date(today.year, month, day)
    return d if d >= today else date(today.year + 1, month, day)


def _day_of_month(today: date, day: int) -> date:
    y, mo = today.year, today.month
    for _ in range(13):
        if day <= calendar.monthrange(y, mo)[1]:
            d = date(y, mo, day)
            if d >= today:
                return d
        mo += 1
        if mo == 13:
            y, mo = y + 1, 1
    raise ValueError(day)


_HOUR_WORDS = rf"(?:\d{{1,2}}|{NUM_WORD})"


def _hour(h: int, text_after: str, text: str, explicit: str | None) -> int:
    """A bare hour is a working-day hour unless am/pm or the part of the day says otherwise."""
    if explicit:
        if explicit.startswith("p") and h < 12:
            return h + 12
        if explicit.startswith("a") and h == 12:
            return 0
        return h
    after = text_after[:30]
    if re.match(
        r"\s*(?:o'?clock\s*)?(?:tonight|in the evening|at night|this evening|in the afternoon|pm)",
        after,
    ):
        return h + 12 if h < 12 else h
    if re.match(r"\s*(?:o'?clock\s*)?(?:in the morning|this morning|am)", after):
        return h
    if re.search(r"\btonight\b|\bthis evening\b", text) and h < 12:
        return h + 12
    if 1 <= h <= 6:
        return h + 12
    return h


def find_time(text: str) -> Found | None:
    """The first clock time the text says, as HH:MM (24-hour)."""
    t = text.casefold()
    ap = r"\s*([ap])\.?\s?m\b\.?"
    m = re.search(r"\b(noon|midday|midnight)\b", t)
    if m:
        return Found("12:00" if m.group(1) != "midnight" else "00:00", ((m.start(), m.end()),))
    m = re.search(rf"\b(half|quarter) (past|to|after) ({_HOUR_WORDS})\b(?:{ap})?", t)
    if m:
        h = _num(m.group(3))
        if h is not None:
            mins = 30 if m.group(1) == "half" else 15
            h = _hour(h, t[m.end() :], t, m.group(4))
            total = h * 60 + (mins if m.group(2) != "to" else -mins)
            return Found(f"{total // 60:02d}:{total % 60:02d}", ((m.start(), m.end()),))
    m = re.search(rf"\b(\d{{1,2}})[:.](\d{{2}})(?!\d)(?:{ap})?", t)
    if m and int(m.group(1)) < 24 and int(m.group(2)) < 60:
        h = int(m.group(1))
        if m.group(3) or h < 12:
            h = _hour(h, t[m.end() :], t, m.group(3)) if h != 0 else h
        return Found(f"{h:02d}:{m.group(2)}", ((m.start(), m.end()),))
    # typed without the colon: "at 4 30pm", "at 9 45"
    m = re.search(rf"\b(?:at|for|by|around) (\d{{1,2}}) ([0-5]\d)\b(?:{ap})?", t)
    if m and int(m.group(1)) < 24:
        h = int(m.group(1))
        if m.group(3) or h < 12:
            h = _hour(h, t[m.end() :], t, m.group(3)) if h != 0 else h
        return Found(f"{h:02d}:{m.group(2)}", ((m.start(1), m.end()),))
    m = re.search(rf"\b({_HOUR_WORDS}){ap}", t)
    if m and (h := _num(m.group(1))) is not None and h <= 12:
        return Found(f"{_hour(h, '', t, m.group(2)):02d}:00", ((m.start(), m.end()),))
    # "at four fifteen", "at 3", "at 9 tonight", "7 in the evening"
    m = re.search(
        rf"\b(?:at|for|by|around|from) ({_HOUR_WORDS})(?: ({NUM_WORD}(?: {NUM_WORD})?|o'?clock))?\b",
        t,
    )
    if m is None:
        m = re.search(
            rf"\b({_HOUR_WORDS})(?: o'?clock)? (?=in the (?:morning|evening|afternoon)|tonight)", t
        )
    if m:
        h = _num(m.group(1))
        mins = 0
        if m.lastindex and m.lastindex >= 2 and m.group(2) and "clock" not in m.group(2):
            mm = _num(m.group(2))
            mins = mm if mm is not None and mm < 60 else 0
        if h is not None and 0 <= h <= 23:
            if h <= 12:
                h = _hour(h, t[m.end() :], t, None)
            return Found(f"{h:02d}:{mins:02d}", ((m.start(), m.end()),))
    return None


def find_relative(text: str, now: datetime) -> Found | None:
    """'in 2 hours', 'in 30 minutes': a date and a time, as 'YYYY-MM-DDTHH:MM'."""
    t = text.casefold()
    m = re.search(rf"\bin ({_NUM}|half an?) (hours?|minutes?)\b", t)
    if m is None:
        m = re.search(r"\bin (an|a) (hour)\b", t)
    if not m:
        return None
    if m.group(1).startswith("half"):
        delta = timedelta(minutes=30)
    else:
        n = 1 if m.group(1) in ("a", "an") else _num(m.group(1))
        if n is None:
            return None
        delta = timedelta(hours=n) if m.group(2).startswith("hour") else timedelta(minutes=n)
    at = now + delta
    return Found(at.strftime("%Y-%m-%dT%H:%M"), ((m.start(), m.end()),))


def find_duration(text: str) -> Found | None:
    """Whole minutes: 'half an hour' 30, 'an hour and a half' 90, 'a two hour workshop' 120."""
    t = text.casefold()
    pats: list[tuple[str, object]] = [
        (r"\bhalf an hour\b|\bhalf[ -]hour\b|\b30 ?min", lambda m: 30),
        (
            rf"\b(an|a|one|{_NUM}) hours? and a half\b",
            lambda m: (_num_or_one(m.group(1))) * 60 + 30,
        ),
        (
            rf"\b({_NUM})(?:[ -]and[ -]a[ -]half)[ -]hours?\b",
            lambda m: _num_or_one(m.group(1)) * 60 + 30,
        ),
        (rf"\b({_NUM})[ -]?(?:minutes?|mins?)\b", lambda m: _num_or_one(m.group(1))),
        (r"\bfor (an|a|one) hour\b|\b(an) hour\b", lambda m: 60),
        (rf"\b({_NUM})[ -]?(?:hours?|hr)\b", lambda m: _num_or_one(m.group(1)) * 60),
    ]
    for pattern, fn in pats:
        m = re.search(pattern, t)
        if m:
            if (
                re.match(r"\s*ago|\s*from now", t[m.end() :])
                or t[max(0, m.start() - 3) : m.start()] == "in "
            ):
                continue
            v = fn(m)  # type: ignore[operator]
            return Found(str(v), ((m.start(), m.end()),))
    return None


def _num_or_one(word: str) -> int:
    if word.casefold() in ("a", "an", "one"):
        return 1
    return _num(word) or 0
