"""Five-field cron expressions (minute hour day-of-month month day-of-week), in UTC (pure).

Fields accept `*`, numbers, ranges `a-b`, lists `a,b` and steps `*/n`, `a-b/n`; day of
week 0-6 with 0 = Sunday (7 also Sunday). As in cron, when both day fields are restricted
a day matches either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


class CronError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_any: bool
    weekdays_any: bool

    def matches(self, t: datetime) -> bool:
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        dow = (t.weekday() + 1) % 7
        day_ok, dow_ok = t.day in self.days, dow in self.weekdays
        if self.days_any or self.weekdays_any:
            return day_ok and dow_ok
        return day_ok or dow_ok

    def next_after(self, t: datetime, horizon_min: int = 366 * 24 * 60) -> datetime | None:
        """The first matching minute strictly after `t`."""
        c = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(horizon_min):
            if self.matches(c):
                return c
            c += timedelta(minutes=1)
        return None


def _field(text: str, lo: int, hi: int, name: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if rng == "*":
                a, b = lo, hi
            elif "-" in rng:
                a_text, b_text = rng.split("-", 1)
                a, b = int(a_text), int(b_text)
            else:
                a = b = int(rng)
        except ValueError:
            raise CronError(f"cron {name}: {part!r} is not a number, range or step") from None
        if step < 1 or a < lo or b > hi or a > b:
            raise CronError(f"cron {name}: {part!r} outside {lo}-{hi}")
        out.update(range(a, b + 1, step))
    return frozenset(out)


def parse_cron(expr: str) -> Cron:
    parts = expr.split()
    if len(parts) != 5:
        raise CronError("cron needs five fields: minute hour day month weekday")
    names = ("minute", "hour", "day", "month", "weekday")
    f = [_field(p, lo, hi, n) for p, (lo, hi), n in zip(parts, _BOUNDS, names, strict=True)]
    weekdays = frozenset(d % 7 for d in f[4])
    return Cron(f[0], f[1], f[2], f[3], weekdays, parts[2] == "*", parts[4] == "*")
