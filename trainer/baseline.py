"""The distance-rule baseline: fare = intercept + rate * straight-line trip distance.

The course's benchmark: a least-squares line over the Euclidean distance in degrees
(sqrt(dlon^2 + dlat^2)), fitted on the training split; the bar a model must clear before
it is worth deploying. On the lab's taxi-valid.csv it scores RMSE 4.94.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from taxifare.errors import DataError
from trainer import features


@dataclasses.dataclass(frozen=True)
class DistanceRule:
    intercept: float
    rate_per_degree: float

    def predict(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.intercept + self.rate_per_degree * trip_distance(columns)


def trip_distance(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.hypot(
        np.asarray(columns["dropofflon"]) - np.asarray(columns["pickuplon"]),
        np.asarray(columns["dropofflat"]) - np.asarray(columns["pickuplat"]),
    )


def fit(columns: Mapping[str, np.ndarray]) -> DistanceRule:
    distance = trip_distance(columns)
    if len(distance) < 2:
        raise DataError("the distance baseline needs at least two training rows: add data")
    design = np.stack([np.ones_like(distance), distance], axis=1)
    (intercept, rate), *_ = np.linalg.lstsq(design, np.asarray(columns[features.LABEL], np.float64), rcond=None)
    return DistanceRule(float(intercept), float(rate))


def regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    err = np.asarray(predicted, np.float64) - np.asarray(truth, np.float64)
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}
