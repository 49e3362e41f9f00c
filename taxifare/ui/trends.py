"""A metric by run over time: the view a scheduled retraining needs (is each new candidate as good as
the last, did the champion move, did the data change?).

For a candidate metric (candidate_rmse) the baseline's and the champion's figures on the same test
split are drawn beside it; deployed runs are drawn larger, and every point links to its run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taxifare.runs import summary
from taxifare.runs.records import RunRecord
from taxifare.ui import charts
from taxifare.ui.store import BadRequest

DEFAULT_METRIC = "candidate_rmse"
MAX_NAME = 200


@dataclass(frozen=True)
class Query:
    metric: str = DEFAULT_METRIC
    pipeline: str = ""

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Query:
        query = cls(str(params.get("metric", DEFAULT_METRIC)), str(params.get("pipeline", "")))
        if len(query.metric) > MAX_NAME or len(query.pipeline) > MAX_NAME:
            raise BadRequest(f"a metric or pipeline name is at most {MAX_NAME} characters")
        return query


@dataclass
class Point:
    run_id: str
    started: float
    value: float
    deployed: str | None
    test_split: str
    status: str

    @property
    def when(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.started)


def _companions(metric: str) -> list[str]:
    if metric.startswith("candidate_"):
        rest = metric.removeprefix("candidate_")
        return [f"baseline_{rest}", f"champion_{rest}"]
    return []


def _point(run: RunRecord, value: float) -> Point:
    test = (summary.staged(run, "test_fingerprint") or "")[:8]
    return Point(run.run_id, run.started, value, run.deployed_version, test, str(run.status))


def view(runs: list[RunRecord], query: Query) -> dict[str, Any]:
    pipelines = sorted({r.pipeline for r in runs})
    runs = [r for r in runs if (not query.pipeline or r.pipeline == query.pipeline) and r.started]
    figures = {r.run_id: summary.metrics(r) for r in runs}
    names = sorted({n for f in figures.values() for n in f})
    if runs and names and query.metric not in names:
        raise BadRequest(f"no run logged a metric {query.metric[:80]!r}; choose one of {', '.join(names[:40])}")
    ordered = sorted(runs, key=lambda r: r.started)
    points = [_point(r, figures[r.run_id][query.metric]) for r in ordered if query.metric in figures[r.run_id]]
    series = [
        charts.Series(query.metric, [p.when for p in points], [p.value for p in points], charts.colour(0),
                      links=[f"/runs/{p.run_id}" for p in points], marked=[p.deployed is not None for p in points])
    ]  # fmt: skip
    for i, name in enumerate(_companions(query.metric), start=1):
        with_it = [r for r in ordered if name in figures[r.run_id]]
        if with_it:
            when = [dt.datetime.fromtimestamp(r.started) for r in with_it]
            values = [figures[r.run_id][name] for r in with_it]
            series.append(charts.Series(name, when, values, charts.colour(i), dashed=True))
    chart = charts.lines(series, f"{query.metric} by run", "run started", query.metric) if points else None
    return {"metrics": names, "points": points, "chart": chart, "pipelines": pipelines,
            "test_splits": len({p.test_split for p in points})}  # fmt: skip
