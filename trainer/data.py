"""tf.data input: in-memory shuffled batches, or streaming from CSV for data that does not fit.

Both hand the model `(raw [B, 5] float32, fare [B] float32)` batches. CSV parsing is
pyarrow's (millions of rows/s), not tf.data's CsvDataset (~0.3M rows/s here).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from taxifare.errors import DataError, UsageError
from trainer import data_files, sources
from trainer.features import FEATURES, LABEL

if TYPE_CHECKING:
    from trainer.train import TrainConfig

STREAM_CHUNK_BYTES = 16 << 20
EVAL_BATCH = 8192
STATS_SAMPLE_ROWS = 200_000  # rows the normalisation and saturation constants come from
MEMORY_LIMIT_BYTES = 2 << 30  # input_mode auto: hold training data in memory up to this


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


def _total_bytes(paths: list[str]) -> int | None:
    """Bytes in all the files, or None where a size cannot be known up front (https://)."""
    total = 0
    for path in paths:
        if path.startswith("gs://"):
            from trainer import gcs

            total += gcs.size(path)
        elif "://" in path:
            return None
        else:
            total += os.path.getsize(path)
    return total


def _use_memory(cfg: TrainConfig, paths: list[str]) -> bool:
    if cfg.input_mode != "auto":
        return cfg.input_mode == "memory"
    total = _total_bytes(paths)
    # Unknown sizes stream: memory use then stays flat whatever the download turns out to be.
    return total is not None and total <= MEMORY_LIMIT_BYTES


@dataclasses.dataclass
class Inputs:
    """What training reads: the batches, a sample for normalisation constants, the eval split."""

    dataset: tf.data.Dataset
    train_rows: int  # -1 when streaming (not counted up front)
    train_stats: sources.ReadStats
    sample_raw: np.ndarray
    sample_fares: np.ndarray
    eval_raw: np.ndarray
    eval_fares: np.ndarray
    eval_stats: sources.ReadStats


def read_inputs(cfg: TrainConfig, index: int, workers: int, say: Callable[[str], None]) -> Inputs:
    worker_batch = cfg.train_batch_size // workers
    train_paths = data_files.expand_paths(cfg.train_data_paths)
    eval_paths = data_files.expand_paths(cfg.eval_data_paths)
    train_stats = sources.ReadStats()
    if _use_memory(cfg, train_paths):
        columns, train_stats = sources.read_columns(train_paths, max_bad_fraction=cfg.max_bad_fraction)
        raw, fares = to_arrays(columns)
        sample_raw, sample_fares = raw[:STATS_SAMPLE_ROWS], fares[:STATS_SAMPLE_ROWS]
        if workers > 1:  # each worker trains on every n-th row
            raw, fares = raw[index::workers], fares[index::workers]
        dataset = memory_dataset(raw, fares, worker_batch, cfg.seed)
        train_rows = len(fares)
        say(f"loaded {train_rows} training rows into memory ({train_stats.rows - train_stats.kept} rejected)")
    else:
        sample: list[sources.Columns] = []
        for chunk in sources.iter_chunks(train_paths, max_bad_fraction=cfg.max_bad_fraction):
            sample.append(chunk)
            if sum(len(c[sources.KEY]) for c in sample) >= STATS_SAMPLE_ROWS:
                break
        sample_raw, sample_fares = to_arrays(sources.concat(sample))
        dataset = stream_dataset(train_paths, worker_batch, cfg.seed, cfg.max_bad_fraction, shard=(index, workers))
        train_rows = -1
        say(f"streaming {len(train_paths)} training file(s)")
    eval_columns, eval_stats = sources.read_columns(eval_paths, max_bad_fraction=cfg.max_bad_fraction)
    eval_raw, eval_fares = to_arrays(eval_columns)
    if cfg.eval_steps > 0:
        rows = cfg.eval_steps * EVAL_BATCH
        eval_raw, eval_fares = eval_raw[:rows], eval_fares[:rows]
    return Inputs(dataset, train_rows, train_stats, sample_raw, sample_fares, eval_raw, eval_fares, eval_stats)
