"""One thin file per pipeline step: the step's kfp component, a function that calls the library.

`record` is what every step does with its figures: each into its Metrics artifact (the
console's and the run's views show them) and the whole result as the artifact's file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def record(metrics: Any, values: Mapping[str, float], document: Any) -> None:
    """`values` logged on the Metrics artifact `metrics`; `document` written at its path as JSON
    (a file must be there: kfp's local cache treats a missing one as a miss)."""
    for name, value in values.items():
        metrics.log_metric(name, value)
    with open(metrics.path, "w") as f:
        json.dump(document, f, indent=2, default=str)
