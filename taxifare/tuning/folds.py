"""Key-hash folds: train + valid together, each trip in fold blake2b(key) mod K, the same on every
machine and in every study (and the quality benchmark's, bench/quality.py)."""

from __future__ import annotations

import hashlib
import os

import numpy as np

from trainer import data_files, sample_data, sources
from trainer.features import KEY


def fold_of(keys: np.ndarray, folds: int) -> np.ndarray:
    """A stable fold per trip key: the same key lands in the same fold on every machine."""
    return np.array(
        [int.from_bytes(hashlib.blake2b(str(k).encode(), digest_size=8).digest(), "big") % folds for k in keys],
        dtype=np.int64,
    )


def write(train: str, valid: str, folds: int, out: str) -> list[tuple[str, str]]:
    """K (train, held-out) CSV pairs under `out`: fold k holds out the trips of fold k, trains on the rest."""
    columns = [sources.read_columns(data_files.expand_paths(spec))[0] for spec in (train, valid)]
    both = sources.concat(columns)
    fold = fold_of(both[KEY], folds)
    pairs = []
    for k in range(folds):
        fit, held = os.path.join(out, f"fold{k}", "train.csv"), os.path.join(out, f"fold{k}", "heldout.csv")
        os.makedirs(os.path.dirname(fit), exist_ok=True)
        sample_data.write_csv({n: v[fold != k] for n, v in both.items()}, fit)
        sample_data.write_csv({n: v[fold == k] for n, v in both.items()}, held)
        pairs.append((fit, held))
    return pairs
