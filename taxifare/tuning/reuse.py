"""`taxifare run --hparams best|ID|FILE`: the tuned settings of an earlier study, to train with.

- `best`: the best trial of the newest study that has one (a `taxifare tune` study under
  <runs root>/studies/, or the tune step of a run that tuned);
- an id: that study (a study id), or the study of that run's tune step (a run id, as `runs` takes it);
- a file: a study.json, or a JSON object of settings ({"learning_rate": 0.003, ...}).

Only the settings with a search space are taken (step.TUNED); each is checked as a flag would be.
"""

from __future__ import annotations

import json
import os
from typing import Any

from taxifare.errors import RecordError, UsageError
from taxifare.tuning import records, step

HINT = "give best, a study or run id (taxifare runs list), or a JSON file"


def _run_studies(runs_root: str) -> list[tuple[str, records.Study]]:
    """(run id, study) of each run whose tune step tuned, newest first."""
    from taxifare.runs.records import list_runs

    out = []
    for run in list_runs(runs_root):
        study = _run_study(run)
        if study is not None:
            out.append((run.run_id, study))
    return out


def _run_study(run: Any) -> records.Study | None:
    root = os.path.realpath(run.folder) if run.folder else ""
    for task in run.tasks.values():
        out = task.outputs.get("study")
        uri = out.get("uri") if isinstance(out, dict) else None
        # A record is untrusted input: only a study inside the run's own folder is read.
        if root and isinstance(uri, str) and os.path.realpath(uri).startswith(root + os.sep):
            study = step.read(uri)
            if study is not None and study.best is not None:
                return study
    return None


def _from_file(path: str) -> tuple[dict[str, Any], str]:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise UsageError(f"--hparams {path}: cannot be read as JSON ({err})", HINT) from None
    if isinstance(data, dict) and "trials" in data:
        study = records.read(path)
        return _best(study, path), f"study {study.study_id} ({path})"
    if not isinstance(data, dict):
        raise UsageError(f"--hparams {path}: expected a JSON object of settings or a study.json", HINT)
    unknown = sorted(set(data) - set(step.TUNED))
    if unknown:
        raise UsageError(
            f"--hparams {path}: {', '.join(unknown)} cannot be set so", f"it takes {', '.join(step.TUNED)}"
        )
    return dict(data), path


def _best(study: records.Study, where: str) -> dict[str, Any]:
    if study.best is None:
        raise UsageError(f"--hparams {where}: the study has no completed trial", HINT)
    values = study.best_hparams()
    return {k: values[k] for k in step.TUNED if k in values}


def resolve(ref: str, runs_root: str) -> tuple[dict[str, Any], str]:
    """(the settings, where they came from, for a person) for an --hparams value."""
    if os.path.isfile(ref):
        return _from_file(ref)
    studies = [(s.study_id, s) for _, s in records.list_studies(runs_root)]
    if ref == "best":
        candidates = [(f"study {sid}", s) for sid, s in studies if s.best] + [
            (f"run {rid}", s) for rid, s in _run_studies(runs_root)]  # fmt: skip
        if not candidates:
            raise UsageError(f"--hparams best: no study with a completed trial under {runs_root}",
                             "run `taxifare tune`, or `taxifare run --tune-trials N`, first")  # fmt: skip
        where, study = max(candidates, key=lambda c: c[1].started)
        return _best(study, where), f"{where}, its best trial"
    for sid, study in studies:
        if sid == ref:
            return _best(study, f"study {sid}"), f"study {sid}, its best trial"
    from taxifare.runs.records import load

    try:
        run = load(runs_root, ref)
    except (UsageError, RecordError):
        raise UsageError(f"--hparams {ref}: no such study, run or file under {runs_root}", HINT) from None
    found = _run_study(run)
    if found is None:
        raise UsageError(f"--hparams {ref}: run {run.run_id} did not tune", HINT)
    return _best(found, f"run {run.run_id}"), f"run {run.run_id}'s tuning, its best trial"
