"""The search space: the tunable HParams settings (each with its `search=` in trainer/config.py), as
the user narrows or widens it, and the same space for Optuna and for Vertex AI's tuning service.

A choice is carried as text (a layer layout "64,16,4", a batch size "512"): Optuna's categorical
values and Vertex AI's categorical parameters are both strings, and `value()` turns the text back
into the setting's type. No Optuna or TensorFlow import at module level.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from taxifare.errors import UsageError
from trainer import settings
from trainer.config import HParams
from trainer.settings import Search, Setting


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched setting and its space."""

    setting: Setting
    search: Search

    @property
    def name(self) -> str:
        return self.setting.name

    @property
    def kind(self) -> str:
        """double, integer or categorical: what Optuna suggests and Vertex AI's ParameterSpec is."""
        if self.search.values:
            return "categorical"
        return "integer" if self.setting.item is int else "double"

    @property
    def labels(self) -> list[str]:
        return [label(v) for v in self.search.values]

    def value(self, suggested: Any) -> Any:
        """A suggested value (a label for a choice) as the setting's type."""
        if self.search.values:
            text = str(suggested)
            for v in self.search.values:
                if label(v) == text:
                    return v
            raise UsageError(f"{self.name}: {text!r} is not one of its choices {', '.join(self.labels)}")
        return round(float(suggested)) if self.setting.item is int else float(suggested)

    def describe(self) -> str:
        return f"{self.name} {self.search.describe()}"

    @property
    def text(self) -> str:
        """The space as `parse_space` reads it back (a study's workers get it so)."""
        if self.search.values:
            return "|".join(self.labels)
        return f"{self.search.low!r}:{self.search.high!r}:{self.search.scale}"


def label(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def tunable() -> dict[str, Setting]:
    """The HParams settings that have a search space, in their order."""
    return {s.name: s for s in settings.settings_of(HParams) if s.search is not None}


def _setting(name: str) -> Setting:
    known = tunable()
    if name not in known:
        near = difflib.get_close_matches(name, list(known), n=1)
        hint = f"did you mean {near[0]}?" if near else f"tunable: {', '.join(known)}"
        raise UsageError(f"unknown tuning parameter {name!r}", hint)
    return known[name]


def parse_space(s: Setting, text: str) -> Search:
    """A space as the user writes it: LOW:HIGH (the setting's scale), LOW:HIGH:log|linear, or A|B|C
    (choices; a layout as 64,16,4)."""
    text = text.strip()
    if "|" in text or (s.is_list and ":" not in text):
        items = [t.strip() for t in text.split("|") if t.strip()]
        if not items:
            raise UsageError(f"{s.name}: no choices in {text!r}", "give choices as A|B|C")
        try:
            values = tuple(_choice(s, item) for item in items)
        except ValueError:
            raise UsageError(f"{s.name}: {text!r} is not a list of {s.item.__name__} choices") from None
        return settings.pick(*values)
    parts = text.split(":")
    default_scale = s.search.scale if s.search is not None else "linear"
    if len(parts) not in (2, 3):
        raise UsageError(f"{s.name}: {text!r} is not a range", "give LOW:HIGH, LOW:HIGH:log or choices A|B|C")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise UsageError(f"{s.name}: {text!r} is not a range of numbers", "give LOW:HIGH, e.g. 0.0001:0.01") from None
    return settings.span(low, high, parts[2].strip() if len(parts) == 3 else default_scale)


def _choice(s: Setting, text: str) -> Any:
    if s.is_list:
        return tuple(s.item(t) for t in text.replace(",", " ").split())
    return s.item(text) if s.item in (int, float) else text


def build(names: Sequence[str] | None = None, spaces: Mapping[str, str] | None = None) -> list[Param]:
    """The space to search: `names` (default: every setting searched by default, plus those given a
    space), each with its declared search or the one in `spaces` (name -> text); one UsageError
    naming every problem (unknown parameter, empty or inverted range, a choice out of bounds)."""
    spaces = dict(spaces or {})
    chosen = list(names) if names else [n for n, s in tunable().items() if s.search and s.search.searched]
    chosen += [n for n in spaces if n not in chosen]
    problems: list[str] = []
    params: list[Param] = []
    for name in dict.fromkeys(chosen):
        try:
            s = _setting(name)
            search = parse_space(s, spaces[name]) if name in spaces else s.search
        except UsageError as err:
            problems.append(str(err))
            continue
        assert search is not None
        if problem := settings.search_problem(s, search):
            problems.append(problem)
        else:
            params.append(Param(s, search))
    if problems:
        raise UsageError("; ".join(problems))
    if not params:
        raise UsageError("nothing to tune", f"name one or more of {', '.join(tunable())}")
    return params


def check_declared() -> list[str]:
    """What is wrong with the spaces trainer/config.py declares (empty: nothing)."""
    return [p for s in tunable().values() if s.search and (p := settings.search_problem(s, s.search))]


def suggest(trial: Any, params: Iterable[Param]) -> dict[str, Any]:
    """An Optuna trial's values for the space, as the settings' types."""
    out: dict[str, Any] = {}
    for p in params:
        if p.kind == "categorical":
            raw: Any = trial.suggest_categorical(p.name, p.labels)
        elif p.kind == "integer":
            raw = trial.suggest_int(
                p.name, int(p.search.low or 0), int(p.search.high or 0), log=p.search.scale == "log"
            )
        else:
            raw = trial.suggest_float(p.name, float(p.search.low or 0), float(p.search.high or 0),
                                      log=p.search.scale == "log")  # fmt: skip
        out[p.name] = p.value(raw)
    return out


def hparams(base: HParams, values: Mapping[str, Any]) -> HParams:
    """`base` with the tuned `values` (checked: a value out of its setting's bounds is a UsageError)."""
    given: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return settings.check(dataclasses.replace(base, **given))


def to_vertex(params: Iterable[Param]) -> list[dict[str, Any]]:
    """Vertex AI StudySpec.ParameterSpec dicts (the fields' proto names, as GCPC's serialize_parameters
    writes them). Choices are categorical text; the trainer reads `--hidden_units=64,16,4`."""
    out = []
    for p in params:
        spec: dict[str, Any] = {"parameter_id": p.name}
        if p.kind == "categorical":
            spec["categorical_value_spec"] = {"values": p.labels}
        else:
            key = "integer_value_spec" if p.kind == "integer" else "double_value_spec"
            low, high = (int(p.search.low or 0), int(p.search.high or 0)) if p.kind == "integer" else (
                float(p.search.low or 0), float(p.search.high or 0))  # fmt: skip
            spec[key] = {"min_value": low, "max_value": high}
            spec["scale_type"] = "UNIT_LOG_SCALE" if p.search.scale == "log" else "UNIT_LINEAR_SCALE"
        out.append(spec)
    return out


def from_names(names: Iterable[str]) -> list[Param]:
    """The declared space of each named setting (a study's record names them)."""
    return [Param(_setting(n), _setting(n).search) for n in names]  # type: ignore[arg-type]
