"""What a model was trained on, feature by feature, and how far other data has moved from it.

Training profiles its training sample and saves the profile with the model (`STATS_FILE`, inside
the export folder, so a registry version and a Vertex AI model carry it): for each input feature
and the engineered trip distance, bin edges at the sample's twentieths and the rows in each bin.
Other data (a batch to score, the next training set) is counted into the same bins (`Tally`, block
by block: flat memory) and each feature's population stability index says how far it moved:

    PSI = sum over bins of (q - p) * ln(q / p)     p: the training share of a bin, q: the new one

Under 0.1 is little change, 0.1 to 0.25 some, over 0.25 a shift worth a look (the usual reading,
and the default threshold). Every share is floored at 1e-4, so an empty bin counts as rare, not
impossible. No TensorFlow here.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from taxifare.errors import DataError
from trainer import features as F
from trainer.config import DRIFT_THRESHOLD

STATS_FILE = "training_stats.json"
VERSION = 1
BINS = 20
DISTANCE = "distance_km"  # the engineered feature profiled beside the inputs: the fare's main driver
PROFILED = (*F.FEATURES, DISTANCE)
DEFAULT_THRESHOLD = DRIFT_THRESHOLD
FLOOR = 1e-4
MAX_STATS_BYTES = 1 << 20
EVERY_ROW_UP_TO, SAMPLE_EVERY = 200_000, 8


def distance_km(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """The trip's straight-line distance in km, as the model's in-graph features compute it (trainer/model.py)."""
    dx = (np.asarray(columns["dropofflon"], np.float64) - columns["pickuplon"]) * F.KM_PER_DEG_LON
    dy = (np.asarray(columns["dropofflat"], np.float64) - columns["pickuplat"]) * F.KM_PER_DEG_LAT
    return np.sqrt(dx * dx + dy * dy)


def _values(columns: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return distance_km(columns) if name == DISTANCE else np.asarray(columns[name], np.float64)


def columns_of(raw: np.ndarray) -> dict[str, np.ndarray]:
    """[N, 5] rows in FEATURES order as columns."""
    return {name: raw[:, i].astype(np.float64) for i, name in enumerate(F.FEATURES)}


def histogram(values: np.ndarray, edges: np.ndarray | list[float]) -> np.ndarray:
    """Rows per bin: bin i holds edges[i-1] <= value < edges[i] (the first and last are open-ended)."""
    edges = np.asarray(edges, np.float64)
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)


def profile(columns: Mapping[str, np.ndarray], bins: int = BINS) -> dict[str, Any]:
    """The profile of (valid) rows: per feature, bin edges at the quantiles and the rows in each bin."""
    rows = len(columns[F.FEATURES[0]])
    if rows == 0:
        raise DataError("no rows to profile")
    out: dict[str, Any] = {"version": VERSION, "rows": rows, "features": {}}
    for name in PROFILED:
        values = _values(columns, name)
        edges = np.unique(np.quantile(values, np.arange(1, bins) / bins))
        out["features"][name] = {
            "edges": edges.tolist(),
            "counts": histogram(values, edges).tolist(),
            "quantiles": {f"p{q}": float(np.quantile(values, q / 100)) for q in (1, 50, 99)},
        }
    return out


def dumps(stats: Mapping[str, Any]) -> str:
    return json.dumps(stats, indent=1)


def check(stats: Any, where: str) -> dict[str, Any]:
    """A profile read from a file, checked before it is trusted (a DataError naming the file if not)."""
    ok = isinstance(stats, dict) and stats.get("version") == VERSION and isinstance(stats.get("features"), dict)
    for name in PROFILED if ok else ():
        f = stats["features"].get(name)
        ok = ok and isinstance(f, dict) and isinstance(f.get("edges"), list) and isinstance(f.get("counts"), list)
        ok = ok and len(f["counts"]) == len(f["edges"]) + 1 and sum(f["counts"]) > 0
        ok = ok and all(isinstance(v, int | float) and math.isfinite(v) for v in f["edges"] + f["counts"])
    if not ok:
        raise DataError(f"{where} is not training statistics this taxifare reads (damaged, or another version)")
    return stats


def load(model_dir: str) -> dict[str, Any] | None:
    """The training statistics saved with a model (a local folder or a gs:// one), or None when it has
    none (trained before they were saved)."""
    path = model_dir.rstrip("/") + "/" + STATS_FILE
    try:
        if path.startswith("gs://"):
            from trainer import gcs

            with gcs.open_read(path) as f:
                raw = f.read(MAX_STATS_BYTES + 1)
        else:
            with open(path, "rb") as f:
                raw = f.read(MAX_STATS_BYTES + 1)
    except FileNotFoundError:
        return None
    except Exception as err:  # google.api_core's NotFound, a permission problem
        if type(err).__name__ == "NotFound":
            return None
        raise DataError(f"{path} cannot be read ({err})") from err
    try:
        return check(json.loads(raw), path)
    except ValueError:
        raise DataError(f"{path} is not valid JSON (damaged or truncated)") from None


class Tally:
    """New rows counted into a profile's bins, block by block.

    The first EVERY_ROW_UP_TO rows all count, then one in SAMPLE_EVERY (the same rows whatever the
    blocks): as many rows as the training sample they are compared with, then more at an eighth of
    the cost (a 10M-row batch counts 1.4M rows).
    """

    def __init__(self, reference: Mapping[str, Any]):
        self.reference = reference
        self.edges = {name: np.asarray(reference["features"][name]["edges"], np.float64) for name in PROFILED}
        self.counts = {name: np.zeros(len(e) + 1, np.int64) for name, e in self.edges.items()}
        self.rows = 0  # rows counted
        self.seen = 0  # rows given

    def add(self, columns: Mapping[str, np.ndarray]) -> None:
        n = len(columns[F.FEATURES[0]])
        pick = _sampled(self.seen, n)
        self.seen += n
        if pick is not None:
            columns = {name: np.asarray(values)[pick] for name, values in columns.items()}
        counted = len(columns[F.FEATURES[0]])
        if counted:
            for name, edges in self.edges.items():
                self.counts[name] += histogram(_values(columns, name), edges)
            self.rows += counted

    def add_counts(self, name: str, bins: Mapping[int, int]) -> None:
        """Counts made elsewhere (BigQuery's RANGE_BUCKET, the same bins) for one feature."""
        for i, n in bins.items():
            self.counts[name][int(i)] += int(n)
        if name == PROFILED[0]:
            self.rows += sum(int(n) for n in bins.values())


def _sampled(seen: int, n: int) -> np.ndarray | None:
    """Which of the next `n` rows (after `seen`) count: all (None) up to EVERY_ROW_UP_TO, then every SAMPLE_EVERY-th."""
    if seen + n <= EVERY_ROW_UP_TO:
        return None
    index = np.arange(seen, seen + n)
    return np.flatnonzero((index < EVERY_ROW_UP_TO) | (index % SAMPLE_EVERY == 0))


def psi(expected: np.ndarray | list[int], actual: np.ndarray | list[int]) -> float:
    p = np.maximum(np.asarray(expected, np.float64) / max(sum(expected), 1), FLOOR)
    q = np.maximum(np.asarray(actual, np.float64) / max(sum(actual), 1), FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def compare(tally: Tally, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """Each feature's PSI against the reference, the largest, and whether it passes `threshold` (0: never)."""
    reference = tally.reference["features"]
    scores = {name: round(psi(reference[name]["counts"], tally.counts[name]), 4) for name in PROFILED}
    if tally.rows == 0:
        scores = {}
    worst = max(scores, key=lambda n: scores[n]) if scores else None
    top = scores[worst] if worst else 0.0
    drifted = [n for n, s in scores.items() if threshold > 0 and s > threshold]
    return {
        "reference_rows": int(tally.reference.get("rows", 0)),
        "rows": tally.rows,  # counted
        "rows_seen": max(tally.seen, tally.rows),
        "threshold": threshold,
        "psi": scores,
        "max_psi": top,
        "worst": worst,
        "drifted": drifted,
        "flagged": bool(drifted),
        "shares": {
            name: {
                "edges": tally.edges[name].tolist(),
                "training": _shares(reference[name]["counts"]),
                "now": _shares(tally.counts[name].tolist()),
            }
            for name in PROFILED
        },
    }


def _shares(counts: list[int]) -> list[float]:
    total = max(sum(counts), 1)
    return [round(c / total, 5) for c in counts]


def metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The report as flat metrics: each feature's PSI, the largest, and 1.0 when flagged."""
    out = {f"drift_psi_{name}": float(value) for name, value in report["psi"].items()}
    out["drift_max_psi"] = float(report["max_psi"])
    out["drift_flagged"] = 1.0 if report["flagged"] else 0.0
    return out


def summary(report: Mapping[str, Any] | None, model: str) -> list[str]:
    """A line or two for the step's summary; `model` names the model whose training data was the reference."""
    if report is None:
        return [f"drift not checked: {model} has no training statistics (trained before they were saved)"]
    against = f"the training data of {model}"
    if not report["rows"]:
        return [f"drift not checked: no valid rows to compare with {against}"]
    shown = ", ".join(f"{n} {report['psi'][n]:.2f}" for n in sorted(report["psi"], key=lambda n: -report["psi"][n])[:3])
    limit = f"threshold {report['threshold']:g}" if report["threshold"] > 0 else "no threshold"
    line = f"drift vs {against}: PSI {shown} ({limit})"
    if report["flagged"]:
        return [line, f"DRIFT: {', '.join(report['drifted'])} moved beyond PSI {report['threshold']:g}"]
    return [line]


def save(model_dir: str, stats: Mapping[str, Any]) -> str:
    """Write the profile into a local model folder (the trainer writes it through its export instead)."""
    path = os.path.join(model_dir, STATS_FILE)
    with open(path, "w") as f:
        f.write(dumps(stats))
    return path
