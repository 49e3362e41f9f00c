"""The pipelines' parameters: each defined once (trainer/config.py), gathered per pipeline, checked once.

A pipeline module lists the settings dataclasses (and fields) it takes; from them come its
function signature and defaults (`signature`), its parameters' descriptions (kfp compiles a
docstring's Args into them), each step's inputs' descriptions (`describe_steps`), and the one
check `taxifare run`, `submit` and `schedule` run on parameters before anything is sent or
started (`check`). A step gets the pipeline parameters named like its inputs (`call`). No kfp
import here.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from taxifare.errors import UsageError
from trainer import config, settings
from trainer.settings import Setting

# The trainer's settings the training pipeline passes on (eval_steps stays a trainer flag: the
# pipeline evaluates on the whole validation split); max_bad_fraction goes to stage_data.
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
RUN_ID = Setting("run_id", str, "", "the run id registered models record (default: the pipeline job's name)", None)
# A runtime parameter (not a compile-time one) so that `taxifare submit --service-account` sets
# the training custom job's account as well as the pipeline job's.
SERVICE_ACCOUNT = Setting(
    "service_account",
    str,
    "",
    "vertex: the service account the training custom job runs as (default: Vertex AI's Custom Code Service Agent; "
    "taxifare submit sets the pipeline's own)",
    None,
)


def hparams() -> list[Setting]:
    return [s for s in settings.settings_of(config.HParams) if s.name in PIPELINE_HPARAMS]


def gathered(*groups: type | Sequence[Setting]) -> list[Setting]:
    """A pipeline's parameters: every setting of each dataclass, and the settings given as lists."""
    out: list[Setting] = []
    for group in groups:
        out += settings.settings_of(group) if isinstance(group, type) else list(group)
    return out


def defaults(specs: Iterable[Setting], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    values = {s.name: list(s.default) if s.is_list else s.default for s in specs}
    return {**values, **(overrides or {})}


def unknown(name: str, specs: Iterable[Setting]) -> UsageError:
    known = sorted(s.name for s in specs)
    near = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {near[0]}?" if near else f"known parameters: {', '.join(known)}"
    return UsageError(f"--param {name}: no such pipeline parameter", hint)


def coerce(values: Mapping[str, Any], specs: Sequence[Setting]) -> dict[str, Any]:
    """Known names only, each value as its parameter's type (`--param` values arrive as text or JSON)."""
    by_name = {s.name: s for s in specs}
    out = {}
    for name, value in values.items():
        if name not in by_name:
            raise unknown(name, specs)
        out[name] = settings.coerce(by_name[name], value)
    return out


def check(
    values: Mapping[str, Any],
    specs: Sequence[Setting],
    steps: Iterable[type],
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The given parameters as their types, once they pass every step's checks (with `base`, the
    defaults, for the rest); UsageError lists every problem at once."""
    given = coerce(values, specs)
    full = {**(base or defaults(specs)), **given}
    objs: list[object] = [cls(**{s.name: full[s.name] for s in settings.settings_of(cls)}) for cls in steps]
    named = {s.name for s in specs}
    if set(PIPELINE_HPARAMS) <= named:
        chosen = {n: full[n] for n in PIPELINE_HPARAMS}
        chosen["hidden_units"] = tuple(chosen["hidden_units"])
        objs.append(config.HParams(**chosen))
    config.check_all(*objs)
    return given


def signature(specs: Sequence[Setting], values: Mapping[str, Any], required: Iterable[str] = ()) -> inspect.Signature:
    """The pipeline function's signature: each parameter typed as its setting, defaulting to `values`
    (`required` ones have no default: a run must give them; they come first, as Python wants)."""
    kinds = {str: str, int: int, float: float, bool: bool}
    needed = set(required)
    params = [
        inspect.Parameter(s.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          default=inspect.Parameter.empty if s.name in needed else values[s.name],
                          annotation=list if s.is_list else kinds[s.item])
        for s in sorted(specs, key=lambda s: s.name not in needed)
    ]  # fmt: skip
    return inspect.Signature(params)


def docstring(description: str, specs: Iterable[Setting]) -> str:
    """The pipeline's docstring: kfp compiles its Args into the parameters' descriptions."""
    return settings.docstring(description, {s.name: s.help for s in specs})


def describe_steps(funcs: Iterable[Callable[..., Any]], specs: Iterable[Setting], **wired: str) -> None:
    """Each step's inputs described by their settings (and `wired`, the inputs a DAG wires itself):
    kfp compiles a component function's Args into its inputs' descriptions."""
    known = list(specs)
    for func in funcs:
        settings.describe(func, known, **wired)


def inputs_of(op: Any) -> frozenset[str]:
    return frozenset(op.component_spec.inputs or {})


def call(op: Any, params: Mapping[str, Any], inputs: frozenset[str] | None = None, **wired: Any) -> Any:
    """The step's task: the pipeline parameters named like its inputs (each passed on by name), plus `wired`.

    `inputs`: the inputs of the step's own function, when `op` wraps it with inputs of its own
    (Vertex's custom job adds `project`, `location`, ...: pipeline parameters must not reach those).
    """
    names = inputs_of(op) if inputs is None else inputs
    return op(**{n: v for n, v in params.items() if n in names and n not in wired}, **wired)


def as_pipeline(name: str, description: str, specs: Sequence[Setting], values: Mapping[str, Any],
                dag: Callable[[dict[str, Any]], None], required: Iterable[str] = ()) -> Any:  # fmt: skip
    """A kfp pipeline whose parameters are `specs` (defaults `values`, none for `required`) and whose
    body is `dag(params)`."""
    from kfp import dsl

    sig = signature(specs, values, required)
    names = list(sig.parameters)

    def body(*args: Any) -> None:  # kfp calls it positionally, in the signature's order
        dag(dict(zip(names, args, strict=True)))

    body.__signature__ = sig  # type: ignore[attr-defined]
    body.__name__ = name
    body.__doc__ = docstring(description, specs)
    return dsl.pipeline(name=name, description=description)(body)
