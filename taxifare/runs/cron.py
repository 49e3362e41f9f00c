"""Five-field cron expressions: checked before any request is sent, and stepped locally.

Vertex AI schedules and Kubeflow recurring runs take standard cron; a typo there fails only
after a round trip (or, worse, schedules something else), so the CLI checks here first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from taxifare.errors import UsageError

_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {
            m: i + 1
            for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])
        },
    ),
    ("day of week", 0, 7, {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}),
)


@dataclasses.dataclass(frozen=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    def matches(self, t: dt.datetime) -> bool:
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        day_ok = t.day in self.days
        weekday_ok = (t.isoweekday() % 7) in self.weekdays
        # Standard cron: when both day fields are restricted, either may match.
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def next_after(self, after: dt.datetime) -> dt.datetime:
        """The first matching minute strictly after `after` (timezone-aware, in its zone)."""
        t = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = t + dt.timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months or not self.matches(
                t.replace(hour=min(self.hours), minute=min(self.minutes))
            ):
                t = (t + dt.timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if self.matches(t):
                return t
            t += dt.timedelta(minutes=1)
        raise UsageError(f"{self.expression!r} never fires (e.g. February 30th)")


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise UsageError(f"{name}: bad step {step_text!r} in {part!r}")
            step = int(step_text)
        if rng == "*":
            start, end = low, high
        else:
            a, dash, b = rng.partition("-")
            start = _value(a, name, low, high, names)
            end = _value(b, name, low, high, names) if dash else (high if step_text else start)
            if end < start:
                raise UsageError(f"{name}: range {rng!r} runs backwards")
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        raise UsageError(f"{name}: {text!r} is not a number" + (f" or a name ({', '.join(names)})" if names else ""))
    value = int(text)
    if not low <= value <= high:
        raise UsageError(f"{name}: {value} is outside {low}-{high}")
    return value


def parse(expression: str) -> Cron:
    fields = expression.split()
    if len(fields) != 5:
        raise UsageError(
            f"{expression!r} has {len(fields)} field(s); cron takes 5: minute hour day-of-month month day-of-week "
            "(e.g. '0 3 * * 1' for Mondays at 03:00)"
        )
    sets = [_field(text, *spec) for text, spec in zip(fields, _FIELDS, strict=True)]
    weekdays = {d % 7 for d in sets[4]}
    return Cron(
        expression=expression,
        minutes=frozenset(sets[0]),
        hours=frozenset(sets[1]),
        days=frozenset(sets[2]),
        months=frozenset(sets[3]),
        weekdays=frozenset(weekdays),
        any_day=fields[2] == "*",
        any_weekday=fields[4] == "*",
    )


def timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise UsageError(f"unknown time zone {name!r}: use an IANA name such as UTC or America/New_York") from err
