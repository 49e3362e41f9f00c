"""Kinds of trips evaluation breaks its errors down by, defined once beside the schema.

A slice is a name, a line saying what it holds, and a mask over validated columns (as
trainer.sources reads them). Distance bands are over the straight-line trip in km (the same
planar approximation the model's features use), airports over either end within
AIRPORT_RADIUS_KM of JFK, LaGuardia or Newark, Manhattan over both ends inside a coarse
outline of the island, passengers over the counts. No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

from trainer import features as F

Columns = Mapping[str, np.ndarray]
DISTANCE_BANDS_KM = ((0, 2), (2, 5), (5, 10), (10, 20), (20, np.inf))
AIRPORT_RADIUS_KM = 2.0
PASSENGER_GROUPS = ((1, 1), (2, 2), (3, 4), (5, 6))
# Manhattan's shoreline, coarsely (lon, lat), clockwise from the Battery: good to a few hundred metres.
MANHATTAN = (
    (-74.019, 40.700), (-74.013, 40.725), (-74.010, 40.752), (-73.996, 40.772), (-73.985, 40.790),
    (-73.965, 40.820), (-73.948, 40.845), (-73.928, 40.871), (-73.908, 40.873), (-73.930, 40.835),
    (-73.928, 40.800), (-73.940, 40.778), (-73.962, 40.758), (-73.972, 40.735), (-73.975, 40.712),
    (-74.000, 40.703),
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Slice:
    name: str
    description: str
    mask: Callable[[Columns], np.ndarray]
    dimension: str = ""  # what the slice cuts by (Vertex AI's evaluation slice dimension): distance, airport, ...


def _xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(lon) - F.CENTER_LON) * F.KM_PER_DEG_LON, (np.asarray(lat) - F.CENTER_LAT) * F.KM_PER_DEG_LAT


def trip_km(columns: Columns) -> np.ndarray:
    px, py = _xy(columns["pickuplon"], columns["pickuplat"])
    qx, qy = _xy(columns["dropofflon"], columns["dropofflat"])
    return np.hypot(qx - px, qy - py)


def _near(columns: Columns, airport: str) -> np.ndarray:
    ax, ay = _xy(np.array(F.AIRPORTS[airport][0]), np.array(F.AIRPORTS[airport][1]))
    px, py = _xy(columns["pickuplon"], columns["pickuplat"])
    qx, qy = _xy(columns["dropofflon"], columns["dropofflat"])
    return (np.hypot(px - ax, py - ay) < AIRPORT_RADIUS_KM) | (np.hypot(qx - ax, qy - ay) < AIRPORT_RADIUS_KM)


def inside(polygon: tuple[tuple[float, float], ...], lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Points inside a polygon, by ray casting (even-odd rule), vectorised over the points."""
    lon, lat = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    result = np.zeros(lon.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        crosses = (y1 > lat) != (y2 > lat)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
        result ^= crosses & (lon < x_at)
    return result


def _band(low: float, high: float) -> Slice:
    label = f"{low:g}+ km" if np.isinf(high) else f"{low:g}-{high:g} km"
    return Slice(
        f"distance {label}",
        f"straight-line trips of {label}",
        lambda c: (trip_km(c) >= low) & (trip_km(c) < high),
        "distance",
    )


def _passengers(low: int, high: int) -> Slice:
    label = str(low) if low == high else f"{low}-{high}"
    return Slice(
        f"passengers {label}",
        f"{label} passenger(s)",
        lambda c: (c["passengers"] >= low) & (c["passengers"] <= high),
        "passengers",
    )


def _airport(code: str) -> Slice:
    return Slice(
        f"airport {code}",
        f"to or from {code.upper()} (within {AIRPORT_RADIUS_KM:g} km)",
        lambda c: _near(c, code),
        "airport",
    )


def _manhattan(c: Columns) -> np.ndarray:
    return inside(MANHATTAN, c["pickuplon"], c["pickuplat"]) & inside(MANHATTAN, c["dropofflon"], c["dropofflat"])


SLICES: tuple[Slice, ...] = (
    *(_band(lo, hi) for lo, hi in DISTANCE_BANDS_KM),
    *(_airport(code) for code in F.AIRPORTS),
    Slice("inside manhattan", "both ends on Manhattan island", _manhattan, "area"),
    *(_passengers(lo, hi) for lo, hi in PASSENGER_GROUPS),
)


def masks(columns: Columns) -> dict[str, np.ndarray]:
    """Each slice's rows (a boolean mask per slice name), in SLICES order."""
    return {s.name: np.asarray(s.mask(columns), dtype=bool) for s in SLICES}
