"""Figures, their medians and spreads, the machine they ran on, and the BENCHMARKS.md they make."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import math
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence

# Digits shown per unit; anything else gets three significant decimals.
_DIGITS = {
    "examples/s": 0,
    "req/s": 0,
    "predictions/s": 0,
    "rows/s": 0,
    "s": 2,
    "ms": 2,
    "MiB": 0,
    "ratio": 3,
    "RMSE $": 3,
    "×": 1,
    "trials/h": 0,
    "trials": 0,
}
# The numbering of the sections.
SECTION_ORDER = ("trainer", "streaming", "pipeline", "serving", "quality", "tuning", "batch")
_OPS = {">=": "≥", "<=": "≤", "<": "<", ">": ">"}


@dataclasses.dataclass(frozen=True)
class Target:
    """The issue's bar for a figure: `op` is >=, <=, < or >; the median is compared."""

    op: str
    value: float

    def met(self, measured: float) -> bool:
        if math.isnan(measured):
            return False
        return {
            ">=": measured >= self.value,
            "<=": measured <= self.value,
            "<": measured < self.value,
            ">": measured > self.value,
        }[self.op]

    def describe(self, unit: str) -> str:
        return f"{_OPS[self.op]} {fmt(self.value, unit)}"


@dataclasses.dataclass
class Figure:
    name: str
    values: list[float]
    unit: str
    command: str | tuple[str, ...]  # several for a ratio of figures from different commands
    target: Target | None = None

    @property
    def commands(self) -> tuple[str, ...]:
        return (self.command,) if isinstance(self.command, str) else self.command

    @property
    def median(self) -> float:
        return median(self.values)

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return "PASS" if self.target.met(self.median) else "FAIL"


@dataclasses.dataclass
class Section:
    key: str
    title: str
    figures: list[Figure] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    tables: list[list[str]] = dataclasses.field(default_factory=list)  # markdown tables, after the notes
    skipped: str | None = None  # why the section has no figures
    seconds: float = 0.0  # harness time spent on it

    def add(
        self,
        name: str,
        values: Sequence[float],
        unit: str,
        command: str | tuple[str, ...],
        target: Target | None = None,
    ) -> Figure:
        figure = Figure(name, [float(v) for v in values], unit, command, target)
        self.figures.append(figure)
        return figure


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table's lines: a header row, its rule, the rows (cells already formatted)."""
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else math.nan


def spread(values: Sequence[float]) -> tuple[float, float]:
    """(min, max), NaNs for no values."""
    return (min(values), max(values)) if values else (math.nan, math.nan)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def fmt(value: float, unit: str) -> str:
    """A number as the report shows it: thousands separators, digits by unit, the unit after."""
    if math.isnan(value):
        return "n/a"
    digits = _DIGITS.get(unit, 3)
    text = f"{value:,.{digits}f}"
    if unit in ("ratio", ""):
        return text
    if unit == "×":
        return f"{text}×"
    if unit == "RMSE $":
        return f"${text}"
    return f"{text} {unit}"


def _spread_text(figure: Figure) -> str:
    if len(figure.values) < 2:
        return "single run"
    lo, hi = spread(figure.values)
    mid = figure.median
    half = (hi - lo) / 2 / abs(mid) * 100 if mid else math.nan
    return f"{fmt(lo, figure.unit)} – {fmt(hi, figure.unit)} (±{half:.0f}%)"


# --- the machine ------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _command(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, cwd=_repo())
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout or out.stderr).strip()


def _repo() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _version(*names: str) -> str:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def machine_info() -> dict[str, str]:
    """The facts a reader needs to compare these figures with another machine's."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        (int(line.split()[1]) for line in _read("/proc/meminfo").splitlines() if line.startswith("MemTotal:")), 0
    )
    os_name = next(
        (
            line.split("=", 1)[1].strip('"')
            for line in _read("/etc/os-release").splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        platform.system(),
    )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = _command(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    changed = _command(["git", "status", "--porcelain", "--untracked-files=no"])
    if changed:
        commit += f" + uncommitted changes in {len(changed.splitlines())} tracked file(s)"
    wrk = _command(["wrk", "-v"]).splitlines()
    return {
        "CPU": cpu,
        "cores": f"{os.cpu_count()} ({usable} usable by this process)",
        "memory": f"{mem_kb / 2**20:.1f} GiB",
        "OS": f"{os_name}, Linux {platform.release()}" if platform.system() == "Linux" else os_name,
        "Python": platform.python_version(),
        "tensorflow": _version("tensorflow-cpu", "tensorflow"),
        "kfp": _version("kfp"),
        "numpy": _version("numpy"),
        "pyarrow": _version("pyarrow"),
        "wrk": wrk[0].split(" [")[0].removeprefix("wrk ") if wrk and wrk[0].startswith("wrk") else "not installed",
        "git commit": commit,
    }


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def load_text(load: tuple[float, float, float] | None) -> str:
    return " / ".join(f"{x:.2f}" for x in load) if load else "unknown"


def busy_note(*loads: tuple[float, float, float] | None) -> list[str]:
    """A warning when the one-minute load average exceeded the cores around the run."""
    cores = os.cpu_count() or 1
    peak = max((load[0] for load in loads if load), default=0.0)
    if peak <= cores:
        return []
    return [
        f"**The machine was busy**: a one-minute load average of {peak:.1f} on {cores} cores. Other work shared "
        "the CPU, so throughput and latency figures here are pessimistic and their spreads wide; rerun on a quiet "
        "machine before quoting them."
    ]


# --- the markdown -----------------------------------------------------------------------------


def _targets(sections: Sequence[Section]) -> list[str]:
    """Every figure that has a target, with its verdict, in one table."""
    targeted = [(s, f) for s in sections for f in s.figures if f.target]
    if not targeted:
        return []
    lines = [
        "",
        "## Targets",
        "",
        "| section | figure | target | measured (median) | |",
        "| --- | --- | --- | --- | --- |",
    ]
    for section, figure in targeted:
        assert figure.target is not None
        lines.append(
            f"| {section.title} | {figure.name} | {figure.target.describe(figure.unit)} | "
            f"{fmt(figure.median, figure.unit)} | **{figure.verdict}** |"
        )
    return lines


def render(
    sections: Sequence[Section],
    machine: dict[str, str],
    *,
    quick: bool,
    command: str,
    started: datetime.datetime,
    seconds: float,
    load_before: str,
    load_after: str,
    notes: Sequence[str] = (),
) -> str:
    lines = ["# Benchmarks", ""]
    lines.append(
        f"Generated by `{command}` on {started:%Y-%m-%d %H:%M} UTC in {seconds / 60:.1f} minutes. "
        "Each figure is the median of its runs, each run a fresh process unless the command says "
        "otherwise; the spread is min – max (± half of it as a share of the median). "
        "Every comparison is a ratio of figures measured in this same run."
    )
    if quick:
        lines += [
            "",
            "> **Quick run** (`make bench-quick`): one run per figure and small data; it checks that "
            "the harness works, not how fast the code is. `make bench` gives the figures to quote.",
        ]
    lines += ["", "## Machine", "", "| | |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in machine.items()]
    lines += [
        f"| load average (1/5/15 min) | before {load_before}; after {load_after} |",
        "",
        "The machine has 2 cores and is shared: other work running at the same time lowers every "
        "throughput figure; a load average near or above 2 before the run means the figures are pessimistic.",
    ]
    lines += [f"\n> {note}" for note in notes]

    lines += _targets(sections)
    for section in sections:
        number = f"{SECTION_ORDER.index(section.key) + 1}. " if section.key in SECTION_ORDER else ""
        lines += ["", f"## {number}{section.title}", ""]
        if section.skipped:
            lines += [f"Skipped: {section.skipped}", ""]
        lines += [f"- {note}" for note in section.notes]
        for table in section.tables:
            lines += ["", *table]
        if section.figures:
            lines += _table(section)
        lines.append(f"\n_Section time: {section.seconds:.0f} s._")
    return "\n".join(lines).rstrip() + "\n"


def _table(section: Section) -> list[str]:
    commands: list[str] = []
    for figure in section.figures:
        commands += [command for command in figure.commands if command not in commands]
    lines = [
        "",
        "| figure | median | spread | runs | target | | command |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for figure in section.figures:
        target = figure.target.describe(figure.unit) if figure.target else ""
        verdict = f"**{figure.verdict}**" if figure.verdict else ""
        lines.append(
            f"| {figure.name} | {fmt(figure.median, figure.unit)} | {_spread_text(figure)} | {len(figure.values)} | "
            f"{target} | {verdict} | {', '.join(f'({commands.index(c) + 1})' for c in figure.commands)} |"
        )
    lines += ["", "Commands:", ""]
    lines += [f"{i}. `{command}`" for i, command in enumerate(commands, 1)]
    return lines
