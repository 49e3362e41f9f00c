"""train_and_evaluate: the whole training run as a plain function of a TrainConfig."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from taxifare.errors import Diverged, UsageError
from trainer import data, distribute, drift, model, settings
from trainer.config import HParams, RunOptions
from trainer.progress import Progress

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(RunOptions, HParams):
    """One training run: the data, where outputs go, the hyperparameters and the run options."""

    train_data_paths: str
    eval_data_paths: str
    output_dir: str
    model_dir: str | None = None  # Vertex's AIP_MODEL_DIR: also export there
    checkpoint_dir: str | None = None
    tensorboard_dir: str | None = None
    # None: from TF_CONFIG or Vertex's CLUSTER_SPEC; several workers train together.
    cluster: distribute.Cluster | None = None
    export: bool = True  # False: a tuning trial, scored and thrown away (no SavedModel written)

    def check(self) -> TrainConfig:
        """Settings that cannot work fail here, naming each, before any data is read."""
        if os.path.isfile(self.output_dir):  # local paths; a gs:// "file" is only a prefix
            raise UsageError(f"output_dir {self.output_dir} is a file", "give a directory (it is created if missing)")
        return settings.check(self)

    @classmethod
    def of(
        cls, hparams: HParams, train_path: str, valid_path: str, output_dir: str, model_dir: str, tensorboard_dir: str
    ) -> TrainConfig:
        """A pipeline step's run: its hyperparameters on the staged splits, exporting to `model_dir`."""
        return cls(
            train_data_paths=train_path, eval_data_paths=valid_path, output_dir=output_dir, model_dir=model_dir,
            tensorboard_dir=tensorboard_dir, **dataclasses.asdict(hparams),
        )  # fmt: skip

    @property
    def hparams(self) -> HParams:
        return HParams(**{f.name: getattr(self, f.name) for f in dataclasses.fields(HParams)})

    @property
    def checkpoints(self) -> str:
        return self.checkpoint_dir or os.path.join(self.output_dir, "checkpoints")

    @property
    def tensorboard(self) -> str:
        return self.tensorboard_dir or os.path.join(self.output_dir, "tensorboard")

    @property
    def export_root(self) -> str:
        return os.path.join(self.output_dir, "export", "exporter")


def _scalar(name: str, value: float) -> None:
    """A TensorBoard scalar without importing the tensorboard package (TF 2.21 dropped it)."""
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    tf.summary.write(name, tf.constant(value, tf.float32), metadata=metadata)


def _load_stats(cfg: TrainConfig, sample_raw: np.ndarray, sample_fares: np.ndarray, chief: bool = True) -> dict:
    """The model's constants (normalisation, saturation, fare bounds): computed once, then read back
    so a resumed run matches.

    Every worker computes them from the same (unsharded) sample; only the chief writes them.
    """
    path = os.path.join(cfg.output_dir, "feature_stats.json")
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            stats = json.load(f)
        missing = [key for key in model.STATS_KEYS if key not in stats]
        if missing:  # resuming would build a model other than the one its checkpoints were trained as
            raise UsageError(
                f"{path} was written by an older trainer (it lacks {', '.join(missing)})",
                "train into a fresh --output_dir",
            )
        return stats
    stats = model.feature_stats(sample_raw, sample_fares)
    if chief:  # written aside, then renamed: another worker never reads half a file
        tmp = f"{path}.tmp-{os.getpid()}"
        with tf.io.gfile.GFile(tmp, "w") as f:
            json.dump(stats, f)
        tf.io.gfile.rename(tmp, path, overwrite=True)
    return stats


def _restore(checkpoint: tf.train.Checkpoint, cfg: TrainConfig, step: tf.Variable, say: Callable[[str], None]) -> None:
    latest = tf.train.latest_checkpoint(cfg.checkpoints)
    if not latest:
        return
    try:
        checkpoint.restore(latest).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        raise UsageError(
            f"cannot resume from {latest}: it was written with other settings ({str(err)[:200]})",
            "rerun with the same flags or use a fresh --output_dir",
        ) from err
    say(f"resumed from {latest} at step {int(step.numpy())}")


def _huber(delta: float) -> Callable[[tf.Tensor], tf.Tensor]:
    d = tf.constant(delta, tf.float32)

    def loss(err: tf.Tensor) -> tf.Tensor:
        # Scaled so that it equals the squared error inside +-delta: "loss" reads as MSE there.
        a = tf.abs(err)
        return tf.reduce_mean(tf.where(a < d, a * a, 2.0 * d * a - d * d))

    return loss


def _step_function(
    net: keras.Model, optimizer: Any, step: tf.Variable, dataset: Any, strategy: Any, cfg: TrainConfig, workers: int
) -> Any:
    """A tf.function running n optimizer steps; returns their mean loss and mean squared error."""
    loss_fn = _huber(cfg.huber_delta)
    if workers > 1:  # each worker already reads its own shard, batched per worker
        dataset = strategy.distribute_datasets_from_function(lambda _: dataset)
    iterator = iter(dataset)
    variables = net.trainable_variables
    replicas = strategy.num_replicas_in_sync

    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            err = tf.reshape(net(x, training=True), [-1]) - y
            # The mean over this replica's batch; gradients are summed over replicas.
            loss = loss_fn(err) / replicas
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return tf.stack([loss, tf.reduce_mean(tf.square(err)) / replicas])

    @tf.function
    def run_steps(n: tf.Tensor) -> tf.Tensor:
        total = tf.zeros([2])
        for _ in tf.range(n):
            x, y = next(iterator)
            if workers > 1:
                total += strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(train_step, (x, y)), axis=None)
            else:
                total += train_step(x, y)
        step.assign_add(tf.cast(n, tf.int64))
        return total / tf.cast(n, tf.float32)

    return run_steps


def _evaluator(net: keras.Model, eval_raw: np.ndarray, eval_fares: np.ndarray) -> Callable[[], dict[str, float]]:
    eval_ds = data.eval_batches(eval_raw, eval_fares)

    @tf.function
    def eval_sums(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        err = tf.reshape(net(x, training=False), [-1]) - y
        return tf.reduce_sum(tf.square(err)), tf.reduce_sum(tf.abs(err))

    def evaluate() -> dict[str, float]:
        sq, ab = 0.0, 0.0
        for x, y in eval_ds:
            s, a = eval_sums(x, y)
            sq, ab = sq + float(s), ab + float(a)
        n = max(len(eval_fares), 1)
        return {"rmse": float(np.sqrt(sq / n)), "mae": ab / n}

    return evaluate


@dataclasses.dataclass
class _Progress:
    """What the loop measured: the last evaluation and the steady-state speed."""

    metrics: dict[str, float] | None = None
    timed_steps: int = 0
    timed_seconds: float = 0.0


def _train_loop(
    cfg: TrainConfig,
    run_steps: Any,
    evaluate: Callable[[], dict[str, float]],
    manager: tf.train.CheckpointManager,
    step: tf.Variable,
    chief: bool,
    on_progress: Callable[[Progress], None],
) -> _Progress:
    """Train in chunks of `checkpoint_every` steps: after each, evaluate, log summaries, checkpoint."""
    every = cfg.checkpoint_every or max(100, -(-cfg.train_steps // 10))
    if chief:
        train_writer = tf.summary.create_file_writer(os.path.join(cfg.tensorboard, "train"))
        eval_writer = tf.summary.create_file_writer(os.path.join(cfg.tensorboard, "eval"))
    else:
        train_writer = eval_writer = tf.summary.create_noop_writer()
    progress, first, began = _Progress(), True, time.perf_counter()
    while int(step.numpy()) < cfg.train_steps:
        n = min(every, cfg.train_steps - int(step.numpy()))
        t0 = time.perf_counter()
        loss, mse = (float(v) for v in run_steps(tf.constant(n)))
        elapsed = time.perf_counter() - t0
        if not first:  # the first call traces the graph and warms the input pipeline
            progress.timed_steps, progress.timed_seconds = progress.timed_steps + n, progress.timed_seconds + elapsed
        first = False
        now = int(step.numpy())
        metrics = progress.metrics = evaluate()
        if not (math.isfinite(loss) and math.isfinite(metrics["rmse"])):
            raise Diverged(
                f"training diverged at step {now}: train loss {loss}, eval rmse {metrics['rmse']}",
                "lower learning_rate (nothing was exported)",
            )
        with train_writer.as_default(step=now):
            _scalar("loss", loss)
            _scalar("rmse", math.sqrt(mse))  # over the chunk's training batches, beside eval's
        with eval_writer.as_default(step=now):
            _scalar("loss", metrics["rmse"] ** 2)
            _scalar("rmse", metrics["rmse"])
            _scalar("mae", metrics["mae"])
        manager.save(checkpoint_number=now)
        rate = progress.timed_steps * cfg.train_batch_size / progress.timed_seconds if progress.timed_seconds else None
        done = Progress(now, cfg.train_steps, loss, math.sqrt(mse), metrics["rmse"], rate, time.perf_counter() - began)
        on_progress(done)
    train_writer.flush()
    eval_writer.flush()
    return progress


def _build(cfg: TrainConfig, stats: dict, strategy: Any) -> tuple[keras.Model, Any, tf.Variable]:
    """The model, its optimizer and the step counter, created under the distribution strategy."""
    with strategy.scope():
        net = model.build(cfg.hidden_units, stats, cfg.seed)
        # Cosine decay to zero: the last steps average out the noise of a small, noisy dataset.
        schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=cfg.train_steps)
        optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=cfg.weight_decay)
        optimizer.build(net.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    return net, optimizer, step


def _result(cfg: TrainConfig, inputs: data.Inputs, loop: _Progress, final: dict, steps: int, **extra: Any) -> dict:
    """metrics.json: the final evaluation, what was read and skipped, the speed, the settings."""
    return {
        "rmse": final["rmse"],
        "mae": final["mae"],
        "eval_rows": len(inputs.eval_fares),
        "train_rows": inputs.train_rows,
        "steps": steps,
        "examples_seen": steps * cfg.train_batch_size,
        "examples_per_sec": (loop.timed_steps * cfg.train_batch_size / loop.timed_seconds)
        if loop.timed_seconds
        else None,
        "rows_skipped": {"train": dict(inputs.train_stats.rejected), "eval": dict(inputs.eval_stats.rejected)},
        **extra,
        "config": dataclasses.asdict(cfg),
    }


def _export(cfg: TrainConfig, net: keras.Model, scratch: str | None, extra: dict[str, str]) -> str:
    """The SavedModel under export_root (and at model_dir, Vertex's AIP_MODEL_DIR, when given), with
    `extra` files beside it (the training data's statistics, for drift checks)."""
    export_path = model.export(net, os.path.join(scratch, "export") if scratch else cfg.export_root, extra)
    if cfg.model_dir:
        model.save(net, os.path.join(scratch, "model") if scratch else cfg.model_dir, extra)
    return export_path


def train_and_evaluate(
    cfg: TrainConfig,
    progress: Callable[[str], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> dict:
    """Train, evaluate, export; write and return metrics. Resumes from the last checkpoint.

    `progress` gets the run's log lines; `on_progress` each chunk's Progress (default: its log
    line). An exception from `on_progress` stops the run there (the tuner prunes so).
    """
    started = time.perf_counter()
    say = progress or log.info
    on_progress = on_progress or (lambda p: say(p.line()))
    cfg.check()
    cluster = cfg.cluster or distribute.from_environment(os.environ)
    # Created first: the collective ops of several workers must be set up before any other op.
    strategy = distribute.strategy(cluster)
    index, workers = (cluster.index, cluster.num_workers) if cluster else (0, 1)
    chief = index == 0
    if cfg.train_batch_size % workers:
        raise UsageError(f"train_batch_size={cfg.train_batch_size} must divide evenly among {workers} workers")
    scratch = None if chief else tempfile.mkdtemp(prefix=f"taxifare-worker{index}-")
    if cluster:
        say(f"worker {index} of {workers} ({cluster.task_type} {cluster.task_index}); chief exports")
    keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()
    tf.io.gfile.makedirs(cfg.output_dir)

    inputs = data.read_inputs(cfg, index, workers, say)
    stats = _load_stats(cfg, inputs.sample_raw, inputs.sample_fares, chief)
    net, optimizer, step = _build(cfg, stats, strategy)
    checkpoint = tf.train.Checkpoint(model=net, optimizer=optimizer, step=step)
    # Every worker saves (TensorFlow requires it); the others write to a scratch folder.
    manager = tf.train.CheckpointManager(checkpoint, scratch or cfg.checkpoints, max_to_keep=3)
    _restore(checkpoint, cfg, step, say)
    start_step = int(step.numpy())

    run_steps = _step_function(net, optimizer, step, inputs.dataset, strategy, cfg, workers)
    evaluate = _evaluator(net, inputs.eval_raw, inputs.eval_fares)
    loop = _train_loop(cfg, run_steps, evaluate, manager, step, chief, on_progress)
    final = loop.metrics or evaluate()  # the last chunk already evaluated the final weights
    # The training sample's profile goes with the model: batch scoring and staging compare new data with it.
    extra = {drift.STATS_FILE: drift.dumps(drift.profile(drift.columns_of(inputs.sample_raw)))}
    # Saving may run collectives, so every worker saves; only the chief's copy is kept.
    export_path = _export(cfg, net, scratch, extra) if cfg.export else None
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
        say(f"worker {index} done: eval rmse {final['rmse']:.3f}; the chief exports")
        return {"rmse": final["rmse"], "mae": final["mae"], "steps": int(step.numpy()), "export_dir": None,
                "worker": index}  # fmt: skip
    result = _result(
        cfg, inputs, loop, final, int(step.numpy()), resumed_from_step=start_step, export_dir=export_path,
        wall_seconds=time.perf_counter() - started, workers=workers,
    )  # fmt: skip
    with tf.io.gfile.GFile(os.path.join(cfg.output_dir, "metrics.json"), "w") as f:
        json.dump(result, f, indent=2, default=list)
    done = f"exported {export_path}" if export_path else "trained (not exported)"
    say(f"{done}: eval rmse {final['rmse']:.3f}, mae {final['mae']:.3f}")
    return result


def code_fingerprint() -> str:
    """The trainer's own code, as a short hash: the same data, settings and code train the same model."""
    import hashlib

    digest = hashlib.sha256()
    folder = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".py")):
        with open(os.path.join(folder, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()[:12]


def metrics(result: dict) -> dict[str, float]:
    """A run's figures as flat metrics (the pipeline's Metrics artifact)."""
    names = {"rmse": "valid_rmse", "mae": "valid_mae", "steps": "steps", "examples_per_sec": "examples_per_sec",
             "wall_seconds": "wall_seconds"}  # fmt: skip
    return {shown: result[name] for name, shown in names.items() if result.get(name) is not None}


def summary(result: dict) -> list[str]:
    rate = result.get("examples_per_sec")
    speed = f", {rate:,.0f} examples/s" if rate else ""
    return [f"valid RMSE {result['rmse']:.3f}, {result['steps']} steps{speed}"]
