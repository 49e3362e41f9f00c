"""Structured events a task prints for whoever watches it: one JSON object per line, marked.

A pipeline task's only channel to the run that started it is its output (kfp's local runners
pass it through; Vertex AI and Kubeflow keep it in the task's log), so the trainer's progress
and each step's summary travel there as JSON lines that start with MARK. Readers take the
object after the marker (kfp may indent the line or prefix it) and ignore every other line:
no free text is parsed back. No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

MARK = '{"taxifare_event":'
MAX_LINE = 1 << 20  # a longer "event" is not one of ours


@dataclasses.dataclass(frozen=True)
class Event:
    kind: str  # "progress" (trainer/progress.py), "summary" (a step's lines for the run's views)
    fields: dict[str, Any]


def line(kind: str, **fields: Any) -> str:
    return json.dumps({"taxifare_event": kind, **fields}, separators=(",", ":"), default=str)


def emit(kind: str, **fields: Any) -> None:
    print(line(kind, **fields), flush=True)


def summary(*lines: str) -> None:
    """A step's result in a few lines: what `taxifare run`, `runs show` and the report show for it."""
    emit("summary", lines=[str(text) for text in lines])


def parse(text: str) -> Event | None:
    """The event on a line of task output, or None when the line carries none (or a damaged one)."""
    start = text.find(MARK)
    if start < 0 or len(text) - start > MAX_LINE:
        return None
    try:
        obj = json.loads(text[start:])
    except ValueError:
        return None
    kind = obj.pop("taxifare_event", None) if isinstance(obj, dict) else None
    return Event(kind, obj) if isinstance(kind, str) else None
