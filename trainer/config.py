"""Every setting a user gives, each defined once: its default, help line and check.

The trainer's hyperparameters (`HParams`) and how it runs (`RunOptions`), and each pipeline
step's settings: where stage_data reads (`Source`), when evaluate blesses (`Gate`), where
deploy puts a blessed model and how Vertex AI serves it (`DeployTarget`). The trainer's flags,
the CLI's options, the pipelines' parameters (pipeline/params.py) and their one validation all
come from these dataclasses (trainer/settings.py turns them into each). No kfp, TensorFlow or
pyarrow here, so the CLI builds its flags without importing a component.
"""

from __future__ import annotations

import dataclasses
import os
import re

from taxifare.errors import UsageError
from trainer import settings
from trainer.features import CHAMPION_TOLERANCE, DEFAULT_MAX_BAD_FRACTION, TEST_FRACTION, VALID_FRACTION
from trainer.settings import (
    below_one,
    between,
    fraction,
    non_negative,
    open_fraction,
    pick,
    setting,
    sizes,
    span,
    whole,
)
from trainer.settings import seed as seed_check

# Sane sizes: beyond these a run is a typo, not a plan (a 1e20-step run, a 100M-unit layer).
MAX_STEPS = 10**9
MAX_BATCH = 1 << 20
MAX_UNITS, MAX_LAYERS = 8192, 16
# Vertex AI serving (deploy_target=vertex).
SERVING_CONTAINERS = ("custom", "prebuilt")
DEFAULT_SERVING_MACHINE = "n1-standard-2"
# Longer than api_core's 900 s: a first deployment of a new machine type can take 20+ minutes.
DEFAULT_DEPLOY_TIMEOUT = 1800.0
MAX_REPLICAS = 1000
# Batch prediction and drift.
DRIFT_THRESHOLD = 0.25  # PSI: under 0.1 little change, 0.1-0.25 some, over 0.25 a shift worth a look
BATCH_FORMATS = ("csv", "jsonl")
BATCH_INPUT_FORMATS = ("auto", *BATCH_FORMATS)  # auto: told by the first byte
DEFAULT_BATCH_MACHINE = "n1-standard-4"


@dataclasses.dataclass(frozen=True)
class HParams:
    """The trainer's settings: its flags, the pipeline's parameters and the CLI's options come from here.

    `search=` is a setting's search space for tuning (taxifare tune, the pipeline's tuning stage):
    a range with its scale, or the choices; the type is the setting's. train_steps is the budget:
    tuned only when asked for by name.

    The defaults of batch size, layers, learning rate, weight decay and Huber delta are a tuning
    study's (60 trials on 3 key-hash folds of the lab's data, the default budget of 3000 steps;
    BENCHMARKS.md sections 5 and 6): its best trial within the budget's examples (a batch of 1024
    scored as well but trains on twice the examples). Before it: 512, 64 16 4, 0.001, 0.1, 10.
    """

    train_steps: int = setting(3000, "optimizer steps in total (a rerun resumes up to this)", whole(1, MAX_STEPS),
                               search=span(1000, 10000, "log", searched=False))  # fmt: skip
    train_batch_size: int = setting(256, "examples per step", whole(1, MAX_BATCH), search=pick(128, 256, 512, 1024))
    hidden_units: tuple[int, ...] = setting(
        (64, 64, 64), "sizes of the hidden layers", sizes(MAX_UNITS, MAX_LAYERS),
        search=pick((32, 8), (64, 16, 4), (128, 32, 8), (64, 64, 64), (256, 64, 16), (128, 128, 64, 32)),
    )  # fmt: skip
    learning_rate: float = setting(
        0.00034, "AdamW peak learning rate (cosine-decayed to 0)", between(0, 10, low_open=True),
        search=span(1e-4, 3e-2, "log"),
    )  # fmt: skip
    weight_decay: float = setting(0.0018, "AdamW decoupled weight decay", between(0, 10), search=span(1e-3, 1.0, "log"))
    # Fares past $8 of error count linearly: a few odd fares (tolls, flat rates keyed in wrong)
    # otherwise pull the fit. Before the study, mean RMSE over 5 key-hash folds of the lab's data:
    # delta 5 and 10 4.07, 20 4.09, 30 4.11, squared error 4.13.
    huber_delta: float = setting(8.0, "fare error ($) past which the loss grows linearly", between(0, 1000, True),
                                 search=span(2.0, 50.0, "log"))  # fmt: skip
    seed: int = setting(42, "seed for initialisation and shuffling: same seed, same model", seed_check)
    eval_steps: int = setting(0, "evaluate on this many batches of 8192 rows; 0: the whole eval set",
                              whole(0, MAX_STEPS))  # fmt: skip
    max_bad_fraction: float = setting(
        DEFAULT_MAX_BAD_FRACTION, "fail when a file has a larger share of invalid rows", fraction
    )

    @classmethod
    def from_step(cls, hidden_units: list, **values: object) -> HParams:
        """As a pipeline step gets them: a list parameter's numbers arrive as floats (protobuf Values),
        so 64.0 means 64 (64.5 stays a float and fails the check)."""
        units = tuple(int(u) if isinstance(u, float) and u.is_integer() else u for u in hidden_units)
        return cls(hidden_units=units, **values)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How the trainer runs (not what it learns): checkpoints and input."""

    checkpoint_every: int = setting(0, "steps between checkpoints and evaluations; 0: about ten per run",
                                    whole(0, MAX_STEPS))  # fmt: skip
    input_mode: str = setting(
        "auto",
        "hold training data in memory, or stream it from the files (auto: stream above 2 GiB)",
        choices=("auto", "memory", "stream"),
    )


DEFAULTS = HParams()

# Tuning: the metric every trial reports (the trainer's eval RMSE, lower is better), and sane sizes.
TUNING_METRIC = "rmse"
MAX_TRIALS, MAX_PARALLEL_TRIALS = 1000, 64


@dataclasses.dataclass(frozen=True)
class Tuning:
    """The training pipeline's optional tuning stage: trials of the trainer over HParams' search spaces
    (locally taxifare/tuning's tuner, on Vertex AI a hyperparameter tuning job); the best trial's
    hyperparameters go to the train step."""

    tune_trials: int = setting(
        0, "hyperparameter tuning trials before training (0: no tuning, train with the given hyperparameters)",
        whole(0, MAX_TRIALS),
    )  # fmt: skip
    tune_parallel_trials: int = setting(
        2, "tuning trials run at once (locally at most the machine's cores)", whole(1, MAX_PARALLEL_TRIALS)
    )


@dataclasses.dataclass(frozen=True)
class Source:
    """Where stage_data reads rows and how it splits them."""

    source: str = setting("", "CSV file, glob or comma-separated list (local, gs://, https://) to split by key")
    train_source: str = setting("", "instead of source: the training rows, as given")
    valid_source: str = setting("", "with train_source: the validation rows")
    test_source: str = setting("", "with train_source: the test rows")
    valid_fraction: float = setting(VALID_FRACTION, "share of keys that go to the validation split", open_fraction)
    test_fraction: float = setting(TEST_FRACTION, "share of keys that go to the test split", open_fraction)
    bq_table: str = setting(
        "", "instead of files: a BigQuery trips table, e.g. bigquery-public-data.new_york.tlc_yellow_trips_2015"
    )
    bq_query: str = setting("", "instead of files: BigQuery SQL returning the schema's columns")
    bq_sample: int = setting(0, "with bq_table/bq_query: keep one trip in N by a repeatable hash (0: all)",
                             non_negative)  # fmt: skip

    @property
    def separate(self) -> dict[str, str]:
        return {"train": self.train_source, "valid": self.valid_source, "test": self.test_source}

    def problems(self) -> list[str]:
        """Each setting's own check, then how they go together."""
        found = settings.problems(self)
        if not found and self.valid_fraction + self.test_fraction >= 1:
            found.append("valid_fraction and test_fraction must sum to less than 1")
        files = bool(self.source) or any(self.separate.values())
        if (self.bq_table or self.bq_query) and files:
            found.append("give a BigQuery source (bq_table or bq_query) or file sources, not both")
        if self.bq_table and self.bq_query:
            found.append("give bq_table or bq_query, not both")
        if self.source and any(self.separate.values()):
            found.append("give either source (split by key) or train/valid/test sources, not both")
        if not self.source and not (self.bq_table or self.bq_query) and not all(self.separate.values()):
            missing = ", ".join(f"{k}_source" for k, v in self.separate.items() if not v)
            found.append(f"no data: give source, bq_table, or all of train/valid/test sources (missing: {missing})")
        return found

    def check(self) -> Source:
        return settings.checked(self)


@dataclasses.dataclass(frozen=True)
class Gate:
    """When a candidate deploys."""

    tolerance: float = setting(
        CHAMPION_TOLERANCE,
        "how much worse (relative RMSE) than the champion a candidate may be and still deploy",
        below_one,
    )
    # A champion trained on other rows was scored here on this candidate's test split, where it
    # was never meant to be judged: a generated demo must not replace a model of the real data.
    allow_new_source: bool = setting(
        False, "let a candidate trained on another data source (or schema) than the champion's replace it"
    )


@dataclasses.dataclass(frozen=True)
class DeployTarget:
    """Where blessed models go and how Vertex AI serves them."""

    deploy_target: str = setting(
        "local", "where blessed models go: local (a registry directory) or vertex (Model Registry and an endpoint)",
        choices=("local", "vertex"),
    )  # fmt: skip
    registry: str = setting(
        "", "the local registry directory (an absolute path); for vertex, the parent model id (default taxifare)"
    )
    project: str = setting("", "the Google Cloud project of Vertex AI's Model Registry (and of BigQuery jobs)")
    region: str = setting("", "for vertex: the region of the model and the endpoint")
    endpoint_name: str = setting("taxifare", "for vertex: the endpoint's display name (created when missing)")
    serving_container: str = setting(
        "custom", "for vertex: custom (the pipeline's image runs `taxifare serve`) or prebuilt (TF Serving 2.15)",
        choices=SERVING_CONTAINERS,
    )  # fmt: skip
    serving_machine_type: str = setting(DEFAULT_SERVING_MACHINE, "for vertex: the endpoint's machine type")
    serving_min_replicas: int = setting(1, "for vertex: the fewest serving machines", whole(1, MAX_REPLICAS))
    serving_max_replicas: int = setting(1, "for vertex: the most serving machines (autoscaling above min)",
                                        whole(1, MAX_REPLICAS))  # fmt: skip
    deploy_timeout: float = setting(
        DEFAULT_DEPLOY_TIMEOUT,
        "for vertex: seconds each deploy operation (upload, deploy, undeploy) may take",
        between(0, 7 * 24 * 3600, low_open=True),
    )

    def problems(self) -> list[str]:
        found = settings.problems(self)
        if not found and self.serving_min_replicas > self.serving_max_replicas:
            found.append(
                f"serving_min_replicas ({self.serving_min_replicas}) must not exceed "
                f"serving_max_replicas ({self.serving_max_replicas})"
            )
        if self.deploy_target == "local" and not os.path.isabs(self.registry):
            found.append(
                f"deploy_target=local needs registry=/an/absolute/path, got {self.registry!r}: say where blessed "
                "models go (on a Kubeflow cluster a shared volume's path, or deploy_target=vertex with project "
                "and region)"
            )
        if self.deploy_target == "vertex" and not (self.project and self.region):
            found.append("deploy_target=vertex needs the project and region parameters")
        return found

    def check(self) -> DeployTarget:
        return settings.checked(self)


# Vertex AI resource names, as its API takes them (checked before any request).
KMS_KEY = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
NETWORK = re.compile(r"^projects/[^/]+/global/networks/[^/]+$")
TENSORBOARD = re.compile(r"^projects/[^/]+/locations/[^/]+/tensorboards/[^/]+$")
EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
MAX_EMAILS = 3  # what Vertex AI's notification email takes


def _resource(pattern: re.Pattern[str], form: str) -> settings.Check:
    def check(value: object) -> str | None:
        return None if value == "" or (isinstance(value, str) and pattern.match(value)) else f"must be {form}"

    return check


def _emails(value: object) -> str | None:
    ok = isinstance(value, list | tuple) and len(value) <= MAX_EMAILS
    ok = ok and all(isinstance(v, str) and EMAIL.match(v) for v in value)  # type: ignore[attr-defined]
    return None if ok else f"must be at most {MAX_EMAILS} email addresses"


def _url(value: object) -> str | None:
    ok = value == "" or (isinstance(value, str) and re.match(r"^https?://[^/\s]+\S*$", value) is not None)
    return None if ok else "must be an http:// or https:// URL"


@dataclasses.dataclass(frozen=True)
class Notify:
    """Who hears when a run fails: the pipeline's exit handler reads these (a schedule's runs can set them)."""

    notify_emails: tuple[str, ...] = setting(
        (), f"vertex: up to {MAX_EMAILS} addresses Vertex AI emails when the run ends, with how it ended", _emails
    )
    notify_webhook: str = setting(
        "", "a URL the run POSTs a JSON message to when it fails (Slack and Google Chat read its text)", _url
    )


@dataclasses.dataclass(frozen=True)
class Drift:
    """How far new data may move from a model's training data (trainer/drift.py) before someone should look."""

    drift_threshold: float = setting(
        DRIFT_THRESHOLD,
        "population stability index of any feature, against the model's training data, beyond which a batch run "
        "is flagged and a training run stops before it trains (0: never)",
        between(0, 100),
    )


@dataclasses.dataclass(frozen=True)
class VertexJob:
    """Vertex AI options for the run's jobs and what they create: TensorBoard, encryption, network."""

    tensorboard: str = setting(
        "", "vertex: the Vertex AI TensorBoard (projects/P/locations/R/tensorboards/ID) the training job writes to",
        _resource(TENSORBOARD, "projects/P/locations/R/tensorboards/ID"),
    )  # fmt: skip
    encryption_key: str = setting(
        "", "vertex: the Cloud KMS key (projects/P/locations/R/keyRings/K/cryptoKeys/C) encrypting the training "
        "job, the model and the endpoint", _resource(KMS_KEY, "projects/P/locations/R/keyRings/K/cryptoKeys/C"),
    )  # fmt: skip
    network: str = setting(
        "", "vertex: the VPC network (projects/NUMBER/global/networks/NAME) the training job is peered with",
        _resource(NETWORK, "projects/NUMBER/global/networks/NAME"),
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class BatchJob:
    """What the batch pipeline scores, with which model, and where the predictions go."""

    input: str = setting(
        "", "the trips to score: CSV or JSON lines (a file, glob or comma-separated list; local, gs://, https://), "
        "or on Vertex AI a BigQuery table bq://PROJECT.DATASET.TABLE"
    )  # fmt: skip
    output: str = setting(
        "", "where the predictions go: a local file, or on Vertex AI a gs:// folder or bq://PROJECT[.DATASET] "
        "(default: the run's own artifact)"
    )  # fmt: skip
    output_format: str = setting("csv", "local runs: the predictions as csv or jsonl", choices=BATCH_FORMATS)
    model: str = setting(
        "", "the model: empty for the registry's champion, a version (v0003; on Vertex AI a version id), or an "
        "export folder"
    )  # fmt: skip

    def problems(self) -> list[str]:
        found = settings.problems(self)
        if not self.input:
            found.append("input: give the trips to score (files, or bq://PROJECT.DATASET.TABLE on Vertex AI)")
        return found


@dataclasses.dataclass(frozen=True)
class BatchMachines:
    """The machines of a Vertex AI batch prediction job (the pipeline's image serves on each)."""

    batch_machine_type: str = setting(DEFAULT_BATCH_MACHINE, "vertex: the batch prediction job's machine type")
    batch_starting_replicas: int = setting(1, "vertex: machines the job starts with", whole(1, MAX_REPLICAS))
    batch_max_replicas: int = setting(4, "vertex: the most machines the job scales out to", whole(1, MAX_REPLICAS))
    batch_size: int = setting(1000, "vertex: instances per request to a machine (its body must stay under 1.5 MB)",
                              whole(1, 10_000))  # fmt: skip
    batch_timeout: float = setting(
        24 * 3600.0, "vertex: seconds the pipeline waits for the job", between(0, 7 * 24 * 3600, low_open=True)
    )

    def problems(self) -> list[str]:
        found = settings.problems(self)
        if not found and self.batch_starting_replicas > self.batch_max_replicas:
            found.append(
                f"batch_starting_replicas ({self.batch_starting_replicas}) must not exceed "
                f"batch_max_replicas ({self.batch_max_replicas})"
            )
        return found


# Each pipeline step's settings, in the order `taxifare params` lists them.
STEP_SETTINGS: tuple[type, ...] = (
    Source, Tuning, Gate, DeployTarget, Notify, VertexJob, Drift, BatchJob, BatchMachines
)  # fmt: skip


def check_all(*objs: object) -> None:
    """One UsageError naming every problem of every settings object (its own `problems` where it has one)."""
    found: list[str] = []
    for obj in objs:
        found += obj.problems() if hasattr(obj, "problems") else settings.problems(obj)
    if found:
        raise UsageError("; ".join(found))
