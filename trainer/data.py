"""tf.data input: in-memory shuffled batches, or streaming from CSV for data that does not fit.

Both hand the model `(raw [B, 5] float32, fare [B] float32)` batches. CSV parsing is
pyarrow's (millions of rows/s), not tf.data's CsvDataset (~0.3M rows/s here).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from taxifare.errors import DataError, UsageError
from trainer import sources
from trainer.features import FEATURES, LABEL

STREAM_CHUNK_BYTES = 16 << 20
EVAL_BATCH = 8192


def to_arrays(columns: sources.Columns) -> tuple[np.ndarray, np.ndarray]:
    raw = np.stack([columns[name] for name in FEATURES], axis=1).astype(np.float32)
    return raw, np.asarray(columns[LABEL], np.float32)


def _options() -> tf.data.Options:
    # With autotuning on, the iterator's destructor joins tf.data's model-optimisation thread,
    # which can miss its cancellation wake-up (callbacks run before is_cancelled is set) and
    # sleep out its period: up to 60 s of idle stall at the end of training (TF 2.21). With it
    # off that thread never starts; these pipelines are simple enough to size by hand.
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    return options


def memory_dataset(raw: np.ndarray, fares: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """Endless batches, reshuffled every epoch; shuffles row indices, gathers whole batches."""
    n = len(fares)
    if n < batch_size:
        raise DataError(f"{n} training rows is fewer than --train_batch_size={batch_size}; lower it or add data")
    raw_t = tf.constant(raw)
    fares_t = tf.constant(fares)
    ds = (
        tf.data.Dataset.range(n)
        .shuffle(n, seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .map(lambda idx: (tf.gather(raw_t, idx), tf.gather(fares_t, idx)))
        .prefetch(4)
    )
    return ds.with_options(_options())


def _chunk_generator(
    paths: Sequence[str], seed: int, max_bad_fraction: float, shard: tuple[int, int]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    index, count = shard
    while True:
        order = rng.permutation(len(paths)) if len(paths) > 1 else np.arange(len(paths))
        mine = [paths[i] for i in order if count == 1 or i % count == index]
        if not mine:
            raise UsageError(f"worker {index} of {count} got no file: give at least {count} input files")
        for chunk in sources.iter_chunks(mine, max_bad_fraction=max_bad_fraction, block_bytes=STREAM_CHUNK_BYTES):
            raw, fares = to_arrays(chunk)
            perm = rng.permutation(len(fares))
            yield raw[perm], fares[perm]


def stream_dataset(
    paths: Sequence[str],
    batch_size: int,
    seed: int,
    max_bad_fraction: float,
    shard: tuple[int, int] = (0, 1),
) -> tf.data.Dataset:
    """Endless batches read file by file, never holding more than a few chunks in memory."""
    ds = tf.data.Dataset.from_generator(
        lambda: _chunk_generator(paths, seed, max_bad_fraction, shard),
        output_signature=(
            tf.TensorSpec([None, len(FEATURES)], tf.float32),
            tf.TensorSpec([None], tf.float32),
        ),
    )
    ds = ds.rebatch(batch_size, drop_remainder=True).prefetch(8)
    return ds.with_options(_options())


def eval_batches(raw: np.ndarray, fares: np.ndarray, batch_size: int = EVAL_BATCH) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((raw, fares)).batch(batch_size).with_options(_options())
