from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from taxifare.errors import UsageError
from taxifare.runs import cron, scheduler

UTC = ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 3 * *", "has 4 field"),
        ("60 3 * * 1", "minute: 60 is outside 0-59"),
        ("0 24 * * 1", "hour: 24 is outside 0-23"),
        ("0 3 0 * *", "day of month: 0 is outside 1-31"),
        ("0 3 * 13 *", "month: 13 is outside 1-12"),
        ("0 3 * * 8", "day of week: 8 is outside 0-7"),
        ("*/0 * * * *", "bad step"),
        ("0 5-2 * * *", "runs backwards"),
        ("0 3 * * MOO", "'MOO' is not a number or a name"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_bad_cron_is_rejected_with_the_reason(expression, problem):
    with pytest.raises(UsageError, match=problem):
        cron.parse(expression).next_after(dt.datetime(2026, 1, 1, tzinfo=UTC))


def test_unknown_timezone_is_rejected():
    with pytest.raises(UsageError, match="unknown time zone 'Mars/Base'"):
        cron.timezone("Mars/Base")


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 3 * * 1", "2026-11-27 10:00", "2026-11-30 03:00"),  # Friday -> Monday 03:00
        ("*/15 * * * *", "2026-11-27 10:07", "2026-11-27 10:15"),
        ("30 2 1 * *", "2026-11-27 10:00", "2026-12-01 02:30"),
        ("0 0 * * SUN", "2026-11-27 10:00", "2026-11-29 00:00"),
        ("0 12 13 * 5", "2026-11-27 12:00", "2026-12-04 12:00"),  # day-of-month OR Friday
        ("0 9 * JAN-MAR MON-FRI", "2026-11-27 10:00", "2027-01-01 09:00"),
    ],
)
def test_next_fire_time(expression, after, expected):
    start = dt.datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert cron.parse(expression).next_after(start) == dt.datetime.fromisoformat(expected).replace(tzinfo=UTC)


class FakeClock:
    def __init__(self, start: dt.datetime):
        self.t = start

    def now(self) -> dt.datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += dt.timedelta(seconds=seconds)


def test_scheduler_runs_on_time_one_at_a_time_and_skips_missed_slots(tmp_path):
    clock = FakeClock(dt.datetime(2026, 11, 27, 10, 7, tzinfo=UTC))
    starts, logs = [], []

    def run_once() -> str:
        starts.append(clock.now())
        if len(starts) == 2:
            clock.sleep(40 * 60)  # this run overruns two slots
        return "succeeded"

    n = scheduler.run_schedule(
        cron.parse("*/15 * * * *"), UTC, run_once, str(tmp_path / "lock"), logs.append,
        max_runs=3, sleep=clock.sleep, now=clock.now,
    )  # fmt: skip
    assert n == 3
    assert [s.strftime("%H:%M") for s in starts] == ["10:15", "10:30", "11:15"]
    assert any("skipped 2 scheduled time(s)" in line for line in logs)


def test_scheduler_skips_while_another_scheduler_holds_the_runs_root(tmp_path):
    import fcntl

    clock = FakeClock(dt.datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
    lock_path = tmp_path / "lock"
    logs: list[str] = []
    starts: list[dt.datetime] = []
    with open(lock_path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)

        def log(line: str) -> None:
            logs.append(line)
            if "another run of this runs root is going" in line:
                fcntl.flock(held, fcntl.LOCK_UN)  # the other scheduler's run ends

        scheduler.run_schedule(
            cron.parse("* * * * *"), UTC, lambda: starts.append(clock.now()) or "ok", str(lock_path), log,
            max_runs=1, sleep=clock.sleep, now=clock.now,
        )  # fmt: skip
    assert [s.strftime("%H:%M") for s in starts] == ["10:02"]
    assert any("10:01:00+00:00: another run" in line for line in logs)


def test_a_run_that_raises_does_not_end_the_schedule(tmp_path):
    clock = FakeClock(dt.datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
    calls, logs = [], []

    def run_once() -> str:
        calls.append(clock.now())
        if len(calls) == 1:
            raise FileNotFoundError("data.csv is gone")
        return "succeeded"

    n = scheduler.run_schedule(
        cron.parse("* * * * *"), UTC, run_once, str(tmp_path / "lock"), logs.append,
        max_runs=2, sleep=clock.sleep, now=clock.now,
    )  # fmt: skip
    assert n == 2 and len(calls) == 2
    assert any("could not run: data.csv is gone" in line for line in logs)
