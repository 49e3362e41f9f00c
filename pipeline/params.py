"""The pipeline's parameters: each defined once, by the step that uses it, and checked once.

stage_data's `Source`, the trainer's `HParams`, evaluate's `Gate` and deploy's `DeployTarget`
carry every parameter's default, help and check; pipeline.py's signature takes its defaults
from them (a test keeps the two in step), and `check` is what `taxifare run`, `submit` and
`schedule` run on their parameters before anything is sent or started. No kfp import here.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from taxifare.errors import UsageError
from trainer import settings
from trainer.features import HParams

# The trainer's settings the pipeline passes on (eval_steps stays a trainer flag: the pipeline
# evaluates on the whole validation split); max_bad_fraction goes to stage_data.
PIPELINE_HPARAMS = (
    "train_steps",
    "train_batch_size",
    "hidden_units",
    "learning_rate",
    "weight_decay",
    "huber_delta",
    "seed",
    "max_bad_fraction",
)
RUN_ID = settings.Setting(
    "run_id", str, "", "the run id registered models record (default: the pipeline job's name)", None
)
# A runtime parameter (not a compile-time one) so that `taxifare submit --service-account` sets
# the training custom job's account as well as the pipeline job's.
SERVICE_ACCOUNT = settings.Setting(
    "service_account",
    str,
    "",
    "vertex: the service account the training custom job runs as (default: Vertex AI's Custom Code Service Agent; "
    "taxifare submit sets the pipeline's own)",
    None,
)


def _steps() -> tuple[type, type, type]:
    from components.deploy import DeployTarget
    from components.evaluate import Gate
    from components.stage_data import Source

    return Source, Gate, DeployTarget


def all_settings() -> list[settings.Setting]:
    source, gate, target = _steps()
    hparams = [s for s in settings.settings_of(HParams) if s.name in PIPELINE_HPARAMS]
    steps = [*settings.settings_of(source), *hparams, *settings.settings_of(gate), *settings.settings_of(target)]
    return [*steps, SERVICE_ACCOUNT, RUN_ID]


def by_name() -> dict[str, settings.Setting]:
    return {s.name: s for s in all_settings()}


def defaults(target: str = "local") -> dict[str, Any]:
    """Every parameter's default for a compile target (the vertex target deploys to Vertex AI)."""
    values = {s.name: list(s.default) if s.is_list else s.default for s in all_settings()}
    if target == "vertex":
        values["deploy_target"] = "vertex"
    return values


def unknown(name: str) -> UsageError:
    known = sorted(by_name())
    near = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {near[0]}?" if near else f"known parameters: {', '.join(known)}"
    return UsageError(f"--param {name}: no such pipeline parameter", hint)


def coerce(values: Mapping[str, Any]) -> dict[str, Any]:
    """Known names only, each value as its parameter's type (`--param` values arrive as text or JSON)."""
    specs = by_name()
    out = {}
    for name, value in values.items():
        if name not in specs:
            raise unknown(name)
        out[name] = settings.coerce(specs[name], value)
    return out


def check(values: Mapping[str, Any], target: str = "local") -> dict[str, Any]:
    """The given parameters as their types, once they pass every step's checks (with the defaults
    for the rest); UsageError lists every problem at once."""
    source, gate, deploy_target = _steps()
    given = coerce(values)
    full = {**defaults(target), **given}
    problems: list[str] = []
    for cls in (source, gate, deploy_target):
        fields = {s.name: full[s.name] for s in settings.settings_of(cls)}
        step = cls(**fields)
        problems += step.problems() if hasattr(step, "problems") else settings.problems(step)
    given_hparams: dict[str, Any] = {n: full[n] for n in PIPELINE_HPARAMS}
    given_hparams["hidden_units"] = tuple(given_hparams["hidden_units"])
    hparams = HParams(**given_hparams)
    problems += settings.problems(hparams)
    if problems:
        raise UsageError("; ".join(problems))
    return given


def docstring(description: str) -> str:
    """The pipeline's docstring: kfp compiles its Args into the parameters' descriptions."""
    return settings.docstring(description, {s.name: s.help for s in all_settings()})
