"""Runs side by side: which parameters differ, each metric's change from the first run, and the
training curves overlaid (read from the progress events in the train step's log: no TensorFlow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taxifare.runs import summary
from taxifare.runs.records import RunRecord
from taxifare.ui import charts, store
from taxifare.ui.tables import param_text

MIN_RUNS, MAX_RUNS = 2, 8
# Shown first, in this order; the rest follow by name, slices last.
HEADLINE = ("candidate_rmse", "candidate_mae", "baseline_rmse", "baseline_mae", "champion_rmse", "champion_mae",
            "valid_rmse", "valid_mae", "steps", "examples_per_sec", "wall_seconds")  # fmt: skip
LOWER_IS_BETTER = ("rmse", "mae", "loss", "seconds")
HIGHER_IS_BETTER = ("examples_per_sec", "blessed")


@dataclass
class Param:
    name: str
    values: list[str]

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1


@dataclass
class Metric:
    name: str
    values: list[float | None]

    @property
    def deltas(self) -> list[tuple[float, float | None] | None]:
        """Each run's change from the first run: (absolute, relative or None), None where either is missing."""
        base = self.values[0]
        out: list[tuple[float, float | None] | None] = []
        for v in self.values:
            if v is None or base is None:
                out.append(None)
            else:
                out.append((v - base, (v - base) / abs(base) if base else None) if v != base else None)
        return out

    @property
    def cells(self) -> list[tuple[float | None, float | None, float | None, str]]:
        """Per run: (value, change from the first run, relative change, better/worse/"")."""
        return [(v, d[0] if d else None, d[1] if d else None, self.verdict(d[0]) if d else "")
                for v, d in zip(self.values, self.deltas, strict=True)]  # fmt: skip

    def verdict(self, delta: float) -> str:
        """better / worse / "" for a change, by what the metric's name says is good."""
        if not delta:
            return ""
        if self.name.endswith(HIGHER_IS_BETTER):
            return "better" if delta > 0 else "worse"
        if self.name.endswith(LOWER_IS_BETTER):
            return "better" if delta < 0 else "worse"
        return ""


def check_ids(ids: list[str]) -> list[str]:
    unique = list(dict.fromkeys(ids))
    if len(unique) < MIN_RUNS:
        raise store.BadRequest("choose two or more runs to compare (tick them in the runs table)")
    if len(unique) > MAX_RUNS:
        raise store.BadRequest(f"compare at most {MAX_RUNS} runs at once ({len(unique)} given)")
    return unique


def params(runs: list[RunRecord]) -> list[Param]:
    """Every parameter (the run id aside), those that differ first."""
    names = sorted({k for r in runs for k in r.params if k != "run_id"})
    rows = [Param(n, [param_text(r.params[n]) if n in r.params else "–" for r in runs]) for n in names]
    return sorted(rows, key=lambda p: not p.differs)


def _order(name: str) -> tuple[int, int, str]:
    if name in HEADLINE:
        return (0, HEADLINE.index(name), name)
    return (2 if name.startswith("slice_") else 1, 0, name)


def metrics(runs: list[RunRecord]) -> tuple[list[Metric], list[Metric]]:
    """Every metric the runs logged, in two lists: the run-wide ones, then the per-slice ones."""
    figures = [summary.metrics(r) for r in runs]
    names = sorted({n for f in figures for n in f}, key=_order)
    rows = [Metric(n, [f.get(n) for f in figures]) for n in names]
    return [m for m in rows if not m.name.startswith("slice_")], [m for m in rows if m.name.startswith("slice_")]


def same_test_split(runs: list[RunRecord]) -> bool:
    return len({summary.staged(r, "test_fingerprint") for r in runs}) <= 1


def curves(runs: list[RunRecord]) -> dict[str, str | None]:
    """The training curves overlaid: eval RMSE (solid) and train RMSE (dashed) by step, and the loss."""
    rmse: list[charts.Series] = []
    loss: list[charts.Series] = []
    for i, run in enumerate(runs):
        points = store.training_curve(run)
        if not points:
            continue
        steps = [p.step for p in points]
        colour = charts.colour(i)
        rmse.append(charts.Series(f"{run.run_id} eval", steps, [p.eval_rmse for p in points], colour))
        rmse.append(charts.Series(f"{run.run_id} train", steps, [p.rmse for p in points], colour, dashed=True))
        loss.append(charts.Series(run.run_id, steps, [p.loss for p in points], colour))
    return {
        "rmse": charts.lines(rmse, "RMSE by training step (eval solid, train dashed)", "step", "RMSE ($)", clip=True)
        if rmse
        else None,
        "loss": charts.lines(loss, "Training loss by step", "step", "loss", log_y=True) if loss else None,
    }


def as_json(runs: list[RunRecord]) -> dict[str, Any]:
    """The comparison as data (the page's tables)."""
    return {
        "runs": [r.run_id for r in runs],
        "params": {p.name: p.values for p in params(runs) if p.differs},
        "metrics": {m.name: m.values for group in metrics(runs) for m in group},
        "same_test_split": same_test_split(runs),
    }
