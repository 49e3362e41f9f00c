"""Settings defined once: a dataclass field carries its default, its help line and its check.

trainer/config.py declares every such dataclass (the trainer's `HParams`, each pipeline step's
settings). From them come the trainer's flags, the `taxifare` CLI's options (both spellings:
the lab's `--train_steps` and `--train-steps`), the pipelines' parameter defaults and
descriptions, and the one validation every entry point runs (`check`). No TensorFlow here.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from taxifare.errors import UsageError

Check = Callable[[Any], str | None]


def setting(
    default: Any, help: str, check: Check | None = None, choices: tuple[str, ...] = (), search: Search | None = None
) -> Any:
    """A dataclass field that users set: `check(value)` returns what is wrong with a value, or None.

    `search`: how a tuner may vary it (`span` or `pick`); settings without one are never tuned.
    """
    if choices:
        check = one_of(*choices)
    metadata = {"help": help, "check": check, "choices": choices, "search": search}
    return dataclasses.field(default=default, metadata=metadata)


# --- search spaces: how a tuner may vary a setting (taxifare/tuning reads them) ---------------

SCALES = ("linear", "log")


@dataclasses.dataclass(frozen=True)
class Search:
    """A setting's search space: a range `low`..`high` on a linear or log scale (its type is the
    setting's: whole numbers for an int), or a list of `values` to choose from (a layer layout is
    one value). `searched`: tuned unless the user narrows the search; False for a budget
    (train_steps), tuned only when named."""

    low: float | None = None
    high: float | None = None
    scale: str = "linear"
    values: tuple[Any, ...] = ()
    searched: bool = True

    @property
    def is_range(self) -> bool:
        return not self.values

    def describe(self) -> str:
        if self.values:
            return " | ".join(_show(v, quote=False).replace(" ", ",") for v in self.values)
        return f"{self.low:g}..{self.high:g} ({self.scale})"


def span(low: float, high: float, scale: str = "linear", searched: bool = True) -> Search:
    return Search(low=low, high=high, scale=scale, searched=searched)


def pick(*values: Any, searched: bool = True) -> Search:
    return Search(values=tuple(values), searched=searched)


def search_problem(s: Setting, space: Search) -> str | None:
    """What is wrong with a search space for setting `s` (one line), or None."""
    if space.values:
        if len(set(map(repr, space.values))) != len(space.values):
            return f"{s.name}: the choices repeat a value"
        bad = next((v for v in space.values if s.check and s.check(v)), None)
        return f"{s.name}: choice {_show(bad)} {s.check(bad)}" if bad is not None and s.check else None
    low, high = space.low, space.high
    if not (_number(low) and _number(high)):
        return f"{s.name}: a range needs two finite numbers, got {low!r}..{high!r}"
    assert low is not None and high is not None
    if s.is_list or s.item not in (int, float):
        return f"{s.name}: a range needs a numeric setting; give a list of choices instead"
    if space.scale not in SCALES:
        return f"{s.name}: scale must be one of {', '.join(SCALES)}, got {space.scale!r}"
    if low == high:
        return f"{s.name}: the range {low:g}..{high:g} is empty; give a low below the high"
    if low > high:
        return f"{s.name}: the range {low:g}..{high:g} is inverted; give the low end first"
    if space.scale == "log" and low <= 0:
        return f"{s.name}: a log-scale range must start above 0, got {low:g}"
    if s.item is int and not (float(low).is_integer() and float(high).is_integer()):
        return f"{s.name}: a range of whole numbers needs whole ends, got {low:g}..{high:g}"
    for end in (low, high):
        value = int(end) if s.item is int else float(end)
        if s.check and (problem := s.check(value)):
            return f"{s.name}: the range end {end:g} {problem}"
    return None


# --- checks: each says what a value must be ---------------------------------------------------


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def positive(value: Any) -> str | None:
    return None if _number(value) and value > 0 else "must be a positive number"


def non_negative(value: Any) -> str | None:
    return None if _number(value) and value >= 0 else "must be 0 or more"


def fraction(value: Any) -> str | None:
    return None if _number(value) and 0 <= value <= 1 else "must be between 0 and 1"


def open_fraction(value: Any) -> str | None:
    return None if _number(value) and 0 < value < 1 else "must be between 0 and 1, both excluded"


def below_one(value: Any) -> str | None:
    return None if _number(value) and 0 <= value < 1 else "must be 0 or more and less than 1"


def positive_sizes(value: Any) -> str | None:
    ok = isinstance(value, list | tuple) and value and all(_integer(v) and v > 0 for v in value)
    return None if ok else "must be one or more positive integers, e.g. 64 16 4"


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def whole(low: int, high: int) -> Check:
    """A whole number from `low` to `high`: a sane size, so a typo (1e20 steps) is said, not tried."""

    def check(value: Any) -> str | None:
        return None if _integer(value) and low <= value <= high else f"must be a whole number from {low} to {high:,}"

    return check


def between(low: float, high: float, low_open: bool = False) -> Check:
    """A finite number from `low` (or above it, with `low_open`) up to `high`."""
    wanted = f"must be a number above {low:g} and at most {high:g}" if low_open else f"must be from {low:g} to {high:g}"

    def check(value: Any) -> str | None:
        ok = _number(value) and (value > low if low_open else value >= low) and value <= high
        return None if ok else wanted

    return check


def sizes(most: int, count: int) -> Check:
    """Layer sizes: one to `count` whole numbers, each from 1 to `most`."""

    def check(value: Any) -> str | None:
        ok = isinstance(value, list | tuple) and 0 < len(value) <= count
        ok = ok and all(_integer(v) and 0 < v <= most for v in value)
        return None if ok else f"must be 1 to {count} whole numbers from 1 to {most}, e.g. 64 16 4"

    return check


def seed(value: Any) -> str | None:
    return None if isinstance(value, int) and 0 <= value < 2**32 else "must be an integer from 0 to 2**32 - 1"


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


# --- the dataclasses' fields as settings ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    kind: Any  # int, float, str, bool, or tuple[int, ...]
    default: Any
    help: str
    check: Check | None
    choices: tuple[str, ...] = ()
    search: Search | None = None

    @property
    def is_list(self) -> bool:
        return typing.get_origin(self.kind) in (tuple, list)

    @property
    def item(self) -> Any:
        return typing.get_args(self.kind)[0] if self.is_list else self.kind

    def problem(self, value: Any) -> str | None:
        if self.check is None:
            return None
        problem = self.check(value)
        return f"{self.name} {problem}, got {_show(value)}" if problem else None


def settings_of(cls: type) -> list[Setting]:
    hints = typing.get_type_hints(cls)
    return [
        Setting(
            f.name,
            hints[f.name],
            f.default,
            f.metadata["help"],
            f.metadata["check"],
            f.metadata["choices"],
            f.metadata.get("search"),
        )
        for f in dataclasses.fields(cls)
        if "help" in f.metadata
    ]


def docstring(summary: str, described: Mapping[str, str]) -> str:
    """A Google-style docstring: kfp compiles its Args into the inputs' descriptions."""
    return "\n".join([summary, "", "Args:", *(f"    {name}: {text}" for name, text in described.items())])


def describe(func: Callable[..., Any], known: Iterable[Setting], **extra: str) -> None:
    """Give a component function its Args from the settings (and `extra`) naming its parameters, so
    each parameter's description is written once, by its setting; the summary is the function's own."""
    helps = {s.name: s.help for s in known} | extra
    summary = (func.__doc__ or "").strip().split("\n\n")[0]
    names = [n for n in inspect.signature(func).parameters if n in helps]
    func.__doc__ = docstring(summary, {n: helps[n] for n in names})


def problems(obj: Any) -> list[str]:
    """What is wrong with a settings dataclass instance, one line per setting."""
    found = []
    for s in settings_of(type(obj)):
        problem = s.problem(getattr(obj, s.name))
        if problem:
            found.append(problem)
    return found


def check(obj: Any) -> Any:
    """`obj` when every setting is valid, else one UsageError naming each bad one."""
    found = problems(obj)
    if found:
        raise UsageError("; ".join(found))
    return obj


def checked(obj: Any) -> Any:
    """`obj` when its own `problems()` (its settings and how they go together) finds none."""
    if found := obj.problems():
        raise UsageError("; ".join(found))
    return obj


def _show(value: Any, quote: bool = True) -> str:
    if isinstance(value, list | tuple):
        return " ".join(map(str, value)) or "nothing"
    return repr(value) if isinstance(value, str) and quote else str(value)


# --- command-line options -------------------------------------------------------------------


def parse_number(kind: type, text: str) -> Any:
    """int or float from a flag's text; NaN and infinities are refused here, not trained on."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def add_options(
    group: argparse._ActionsContainer,
    settings: Iterable[Setting],
    defaults: Mapping[str, Any] | None = None,
    lab_first: bool = False,
) -> None:
    """One option per setting, spelled both ways (`--train-steps` and the lab's `--train_steps`).

    `lab_first` lists the lab's underscore spelling first (the trainer's own help).
    """
    for s in settings:
        default = (defaults or {}).get(s.name, s.default)
        names = [f"--{s.name.replace('_', '-')}"] + ([f"--{s.name}"] if "_" in s.name else [])
        if lab_first:
            names.reverse()
        kwargs: dict[str, Any] = {
            "dest": s.name,
            "default": default,
            "help": f"{s.help} (default: {_show(default, quote=False)})",
        }
        if s.choices:
            kwargs["choices"] = s.choices
        elif s.item is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif s.item in (int, float):
            kwargs["type"] = lambda text, kind=s.item: parse_number(kind, text)
            kwargs["metavar"] = "N" if s.item is int else "X"
        if s.is_list:
            # `--hidden_units 64 16 4`, or one word `--hidden_units=64,16,4` (how Vertex AI's tuning
            # service passes a categorical value).
            kwargs["nargs"] = "+"
            kwargs["action"] = _Flatten
            if s.item in (int, float):
                kwargs["type"] = lambda text, kind=s.item: [parse_number(kind, t) for t in _words(text)]
        group.add_argument(*names, **kwargs)


def _words(text: str) -> list[str]:
    words = text.replace(",", " ").split()
    if not words:
        raise argparse.ArgumentTypeError(f"{text!r} holds no value")
    return words


class _Flatten(argparse.Action):
    """A list option's values, each word possibly several comma-separated ones, as one flat list."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        flat = [v for group in values for v in (group if isinstance(group, list) else [group])]
        setattr(namespace, self.dest, flat)


def from_args(cls: type, args: argparse.Namespace) -> Any:
    """An instance of the settings dataclass from parsed options (checked by the caller)."""
    values = {}
    for s in settings_of(cls):
        value = getattr(args, s.name)
        values[s.name] = tuple(value) if s.is_list else value
    return cls(**values)


def coerce(s: Setting, value: Any) -> Any:
    """A `--param NAME=VALUE` value (already JSON-decoded where it could be) as the setting's type."""
    if s.is_list:
        items = value if isinstance(value, list) else str(value).replace(",", " ").split()
        try:
            return [s.item(v) if not isinstance(v, s.item) else v for v in items]
        except (TypeError, ValueError):
            raise UsageError(f"{s.name}: {_show(value)} is not a list of {s.item.__name__}") from None
    if s.kind is bool:
        if isinstance(value, bool):
            return value
        raise UsageError(f"{s.name}: {value!r} is not true or false")
    if s.kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = parse_number(s.kind, str(value))
            except argparse.ArgumentTypeError as err:
                raise UsageError(f"{s.name}: {err}") from None
        if s.kind is int and float(value) != int(value):
            raise UsageError(f"{s.name}: {value!r} is not an integer")
        return s.kind(value)
    return value if isinstance(value, str) else str(value)
