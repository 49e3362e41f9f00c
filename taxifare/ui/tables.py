"""The runs table: one row per run, filtered and sorted as the query asks.

The query is checked here (an unknown status, sort column or order, or an oversized search, is
a BadRequest naming the choices); the rows are plain values the template formats.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from taxifare.runs import summary
from taxifare.runs.records import RunRecord
from taxifare.runs.status import RUN_STATES, Status
from taxifare.ui.store import BadRequest

SORTS = ("started", "run", "pipeline", "status", "duration", "source", "rmse", "baseline", "outcome")
MAX_SEARCH = 200
MAX_KEY_PARAMS = 4
DEFAULT_KEY_PARAMS = ("train_steps", "learning_rate", "hidden_units")


@dataclass(frozen=True)
class Query:
    q: str = ""
    status: str = ""
    pipeline: str = ""
    sort: str = "started"
    order: str = "desc"

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Query:
        query = cls(**{k: str(params.get(k, getattr(cls, k))) for k in ("q", "status", "pipeline", "sort", "order")})
        states = [str(s) for s in RUN_STATES]
        if query.status and query.status not in states:
            raise BadRequest(f"status {query.status[:40]!r} is not one of {', '.join(states)}")
        if query.sort not in SORTS:
            raise BadRequest(f"sort {query.sort[:40]!r} is not one of {', '.join(SORTS)}")
        if query.order not in ("asc", "desc"):
            raise BadRequest(f"order {query.order[:40]!r} is not asc or desc")
        if len(query.q) > MAX_SEARCH or len(query.pipeline) > MAX_SEARCH:
            raise BadRequest(f"a search is at most {MAX_SEARCH} characters")
        return query

    def link(self, **changes: str) -> str:
        """The query string of this query with `changes` (empty values left out)."""
        from urllib.parse import urlencode

        values = {**self.__dict__, **changes}
        return urlencode(
            {k: v for k, v in values.items() if v and (k, v) not in (("sort", "started"), ("order", "desc"))}
        )

    def sort_link(self, column: str) -> str:
        order = "asc" if self.sort == column and self.order == "desc" else "desc"
        return self.link(sort=column, order=order)


@dataclass
class Row:
    record: RunRecord
    run_id: str
    pipeline: str
    status: str
    started: float
    duration: float | None
    source: str
    params: dict[str, Any]
    rmse: float | None
    baseline: float | None
    test_split: str
    outcome: str
    deployed: str | None
    text: str = field(default="", repr=False)  # what the search looks in

    @property
    def started_text(self) -> str:
        return _when(self.started)


def _when(epoch: float) -> str:
    try:
        return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S") if epoch else "–"
    except (OverflowError, OSError, ValueError):
        return "–"


def outcome(record: RunRecord) -> str:
    """What the run came to; while it runs, which of its tasks are running."""
    if record.status == Status.RUNNING:
        names = {t.name: t.display for t in record.dag}
        running = [names.get(n, n) for n, t in record.tasks.items() if t.state == Status.RUNNING]
        return f"running {', '.join(running)}" if running else "running"
    return summary.outcome(record)


def row(record: RunRecord, now: float | None = None) -> Row:
    figures = summary.metrics(record)
    test = summary.staged(record, "test_fingerprint") or ""
    r = Row(record, record.run_id, record.pipeline, str(record.status), record.started,
            summary.duration(record, now), summary.source(record) or "", summary.parameters(record),
            figures.get("candidate_rmse"), figures.get("baseline_rmse"), test[:8], outcome(record),
            record.deployed_version)  # fmt: skip
    r.text = " ".join([r.run_id, r.pipeline, r.status, r.source, r.outcome, r.deployed or "",
                       json.dumps(record.params, default=str)]).lower()  # fmt: skip
    return r


def key_params(rows: list[Row]) -> list[str]:
    """The parameters that tell the listed runs apart (those whose values differ), else the usual few."""
    names = sorted({k for r in rows for k in r.params})
    differ = [n for n in names if len({json.dumps(r.params.get(n), sort_keys=True, default=str) for r in rows}) > 1]
    chosen = differ or [n for n in DEFAULT_KEY_PARAMS if n in names]
    return chosen[:MAX_KEY_PARAMS]


def _sort_key(column: str, r: Row) -> Any:
    value = {"run": r.run_id, "duration": r.duration}.get(column, getattr(r, column, None))
    return value if not isinstance(value, str) else value.lower()


def select(records: list[RunRecord], query: Query, now: float | None = None) -> list[Row]:
    rows = [row(r, now) for r in records]
    needle = query.q.lower().strip()
    rows = [
        r for r in rows
        if (not needle or all(word in r.text for word in needle.split()))
        and (not query.status or r.status == query.status)
        and (not query.pipeline or r.pipeline == query.pipeline)
    ]  # fmt: skip
    known = [r for r in rows if _sort_key(query.sort, r) is not None]
    unknown = [r for r in rows if _sort_key(query.sort, r) is None]
    known.sort(key=lambda r: _sort_key(query.sort, r), reverse=query.order == "desc")
    return known + unknown


def param_text(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(param_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if value is not None else "–"
