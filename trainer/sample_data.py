"""Realistic synthetic NYC taxi trips: the embedded default data for `make run` and tests.

Fares follow the metered rate structure (flag fare plus a per-distance and per-minute rate),
JFK trips pay the flat fare, Newark trips a surcharge, with tolls, tips-free noise and
a small share of dirty rows of the kinds real exports contain.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from trainer import features
from trainer.features import FEATURES, KEY, LABEL

SPLITS = {
    "train": 1 - features.VALID_FRACTION - features.TEST_FRACTION,
    "valid": features.VALID_FRACTION,
    "test": features.TEST_FRACTION,
}
DIRTY_SHARE = 0.01
_GRID = math.radians(features.GRID_ROTATION_DEG)


def _to_lonlat(x_km: np.ndarray, y_km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (
        features.CENTER_LON + x_km / features.KM_PER_DEG_LON,
        features.CENTER_LAT + y_km / features.KM_PER_DEG_LAT,
    )


def _from_lonlat(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (
        (lon - features.CENTER_LON) * features.KM_PER_DEG_LON,
        (lat - features.CENTER_LAT) * features.KM_PER_DEG_LAT,
    )


def _places(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw trip ends (km from midtown): mostly Manhattan, some outer boroughs, airports."""
    kind = rng.choice(5, size=n, p=[0.78, 0.12, 0.05, 0.03, 0.02])
    # Manhattan: a long thin island along the rotated grid.
    along = rng.normal(0.5, 3.5, n)
    across = rng.normal(0.0, 0.9, n)
    x = along * math.sin(_GRID) + across * math.cos(_GRID)
    y = along * math.cos(_GRID) - across * math.sin(_GRID)
    outer = kind == 1
    x[outer] = rng.normal(4.0, 6.0, outer.sum())
    y[outer] = rng.normal(-4.0, 6.0, outer.sum())
    for code, airport in ((2, "jfk"), (3, "lga"), (4, "ewr")):
        here = kind == code
        ax, ay = _from_lonlat(np.array(features.AIRPORTS[airport][0]), np.array(features.AIRPORTS[airport][1]))
        x[here] = ax + rng.normal(0, 0.3, here.sum())
        y[here] = ay + rng.normal(0, 0.3, here.sum())
    return x, y


def _near_airport(lon: np.ndarray, lat: np.ndarray, airport: str, km: float = 1.5) -> np.ndarray:
    x, y = _from_lonlat(lon, lat)
    ax, ay = _from_lonlat(np.array(features.AIRPORTS[airport][0]), np.array(features.AIRPORTS[airport][1]))
    return np.hypot(x - ax, y - ay) < km


def generate(
    rows: int, seed: int = 0, key_prefix: str = "", schema: features.Schema = features.SCHEMA
) -> dict[str, np.ndarray]:
    """Clean trips as columns (floats; keys as strings)."""
    rng = np.random.default_rng(seed)
    px, py = _places(rng, rows)
    # Most trips are short hops; the rest go to another drawn place.
    hop = rng.random(rows) < 0.7
    qx, qy = _places(rng, rows)
    length = rng.lognormal(math.log(2.2), 0.6, rows)
    angle = rng.uniform(0, 2 * math.pi, rows)
    qx = np.where(hop, px + length * np.cos(angle), qx)
    qy = np.where(hop, py + length * np.sin(angle), qy)
    plon, plat = _to_lonlat(px, py)
    dlon, dlat = _to_lonlat(qx, qy)

    # Road distance follows the rotated street grid; time adds traffic.
    dx, dy = qx - px, qy - py
    along = np.abs(dx * math.sin(_GRID) + dy * math.cos(_GRID))
    across = np.abs(dx * math.cos(_GRID) - dy * math.sin(_GRID))
    road_km = (along + across) * rng.lognormal(0.05, 0.12, rows) + 0.1
    minutes_stopped = rng.gamma(2.0, 2.0, rows) * (1 + 0.3 * (road_km < 3))
    fare = 2.5 + 1.553 * road_km + 0.5 * minutes_stopped
    jfk = _near_airport(plon, plat, "jfk") ^ _near_airport(dlon, dlat, "jfk")
    manhattan_end = (np.abs(px) < 6) & (np.abs(py) < 12) | (np.abs(qx) < 6) & (np.abs(qy) < 12)
    fare = np.where(jfk & manhattan_end, 52.0, fare)
    fare += np.where(_near_airport(dlon, dlat, "ewr"), 17.5, 0.0)
    fare += np.where(rng.random(rows) < 0.04, 5.76, 0.0)  # bridge and tunnel tolls
    fare = np.round(np.maximum(fare + rng.normal(0, 0.6, rows), 2.5) * 2) / 2

    passengers = rng.choice(np.arange(1, 7), size=rows, p=[0.70, 0.14, 0.05, 0.03, 0.05, 0.03])
    # Keys stay unique across seeds so that generated sets can be mixed.
    keys = np.array([f"{key_prefix}{seed}-{i}" for i in range(rows)], dtype=object)
    columns = {
        LABEL: fare,
        "pickuplon": np.round(plon, 6),
        "pickuplat": np.round(plat, 6),
        "dropofflon": np.round(dlon, 6),
        "dropofflat": np.round(dlat, 6),
        "passengers": passengers.astype(np.float64),
        KEY: keys,
    }
    return {**_other_fields(schema, columns, rng, rows), **columns}


def _other_fields(
    schema: features.Schema, known: dict[str, np.ndarray], rng: np.random.Generator, rows: int
) -> dict[str, np.ndarray]:
    """A feature table's fields this generator does not model: uniform over their range (whole
    numbers for counts), so a new field's data exists before its story does."""
    out = {}
    for f in schema.fields:
        if f.name not in known:
            low, high = f.range or (0.0, 1.0)
            values = rng.uniform(low, high, rows)
            out[f.name] = np.round(values) if f.whole else np.round(values, 6)
    return out


def _dirty_lines(rng: np.random.Generator, n: int, key_prefix: str) -> list[str]:
    """Rows that validation must reject, one of each kind in turn."""
    kinds = [
        "{k},-73.98,40.75,-73.97,40.76,1",  # fare missing: too few fields
        "-4.5,-73.98,40.75,-73.97,40.76,1,{k}",  # negative fare
        "8.5,0,0,-73.97,40.76,1,{k}",  # pickup at (0, 0)
        "8.5,-73.98,40.75,-73.97,40.76,0,{k}",  # no passengers
        "8.5,-73.98,40.75,abc,40.76,1,{k}",  # not a number
        "12.0,-73.98,40.75,,40.76,2,{k}",  # missing value
    ]
    return [kinds[i % len(kinds)].format(k=f"{key_prefix}dirty-{i}") for i in range(n)]


def write_csv(
    columns: dict[str, np.ndarray], path: str, dirty: list[str] | None = None, schema: features.Schema = features.SCHEMA
) -> None:
    """Write the lab's headerless layout (the schema's CSV columns), dirty lines spread through the file."""
    table = pa.table(
        {c: pa.array(columns[c], type=pa.string() if c == KEY else pa.float64()) for c in schema.csv_columns}
    )
    buf = pa.BufferOutputStream()
    pacsv.write_csv(table, buf, write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"))
    text = buf.getvalue().to_pybytes()
    with open(path, "wb") as f:
        if not dirty:
            f.write(text)
            return
        lines = text.splitlines(keepends=True)
        step = max(1, len(lines) // (len(dirty) + 1))
        for i, line in enumerate(lines):
            f.write(line)
            if i % step == step - 1 and dirty:
                f.write(dirty.pop().encode() + b"\n")
        for line in dirty:
            f.write(line.encode() + b"\n")


MARKER = "taxifare-sample.json"


def write_splits(
    out_dir: str, rows: int, seed: int = 0, shards: int = 1, dirty_share: float = DIRTY_SHARE
) -> dict[str, list[str]]:
    """Write train/valid/test CSVs (optionally sharded); return the paths by split."""
    os.makedirs(out_dir, exist_ok=True)
    written: dict[str, list[str]] = {}
    rng = np.random.default_rng(seed + 1)
    for index, (split, share) in enumerate(SPLITS.items()):
        n = max(1, int(rows * share))
        paths = []
        per_shard = math.ceil(n / shards)
        for shard in range(shards):
            count = min(per_shard, n - shard * per_shard)
            if count <= 0:
                break
            part_seed = seed * 1000 + index * 100 + shard
            columns = generate(count, part_seed, key_prefix=f"{split}{shard}-")
            name = f"{split}.csv" if shards == 1 else f"{split}-{shard:05d}-of-{shards:05d}.csv"
            path = os.path.join(out_dir, name)
            dirty = _dirty_lines(rng, int(count * dirty_share), f"{split}{shard}-")
            write_csv(columns, path, dirty)
            paths.append(path)
        written[split] = paths
    with open(os.path.join(out_dir, MARKER), "w") as f:  # what staging names the data's source by
        json.dump({"generated": True, "rows": rows, "seed": seed, "shards": shards}, f)
    return written


def generated(path: str) -> dict | None:
    """The generator's settings if `path` is a file this module wrote (its folder's marker), else None."""
    try:
        with open(os.path.join(os.path.dirname(path), MARKER)) as f:
            found = json.load(f)
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("generated") is True else None


__all__ = ["FEATURES", "generate", "write_csv", "write_splits"]
