"""Section 5, quality: the default model beside a gradient-boosting reference and the distance rule.

On the lab's data only (../shared/data; the section is skipped without it). Two kinds of split:

- 5 folds of taxi-train.csv + taxi-valid.csv combined, by a hash of the trip key (blake2b(key) mod 5):
  each fold trains on the other four fifths and is scored on its own fifth. The keys of the two files
  overlap (both are row numbers), so a key's train row and valid row always share a fold.
- taxi-valid.csv, trained on taxi-train.csv (the lab's split; section 1's default run is its first seed).

On each split the default model (`python -m trainer.task` with default flags, a fresh process per
seed), the GBM reference (bench.gbm) and the distance rule (trainer.baseline) are fitted on the
same rows and scored on the same held-out rows. The model is chosen on the folds, never on
taxi-valid.csv alone: the targets are its RMSE relative to the GBM, on the mean fold and on the worst.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from bench import LAB_TRAIN, LAB_VALID, Context, Settings, gbm
from bench.report import Section, Target, markdown_table, spread
from bench.trainer import default_model, train_run
from taxifare.tuning import folds as tuning_folds
from trainer import baseline, sources
from trainer.config import DEFAULTS
from trainer.features import CSV_COLUMNS, KEY, LABEL

FOLDS = 5
VALID = "taxi-valid.csv"
# The lab's bar: the model / the distance rule.
TARGET_RULE_RATIO = Target("<", 0.95)
# The bar: beat gradient boosting on the mean fold, and be no worse than it on any fold.
TARGET_MEAN_GBM_RATIO = Target("<", 1.0)
TARGET_WORST_GBM_RATIO = Target("<=", 1.0)
# Issue 20's bar for the tuned defaults: the mean fold ratio to the GBM at most 0.92.
TARGET_TUNED_GBM_RATIO = Target("<=", 0.92)
# The defaults before the tuning study (section 6 and taxifare/tuning/README.md): trained beside the
# current ones on the same splits and seeds, so the table shows what tuning changed.
PREVIOUS_DEFAULTS = {"train_batch_size": 512, "hidden_units": "64,16,4", "learning_rate": 0.001,
                     "weight_decay": 0.1, "huber_delta": 10.0}  # fmt: skip


# Measured on these folds when the default was chosen (not rerun here; the saturation quantile and the
# Huber delta carry their figures in trainer/features.py).
NOT_ADOPTED = (
    "Tried on these folds and not adopted: squared-error loss or a Huber delta of 20-30 (worse); clipping the "
    "raw coordinates (distorts short trips far from Manhattan); saturating the features at their min/max (helps "
    "less than the quantiles); 2-3 sub-networks averaged inside one SavedModel (within seed noise, 40%+ fewer "
    "examples/s); pickup and dropoff "
    "grid-cell embeddings (no gain; their pair overfits); absolute positions, early stopping on a tenth of the "
    "training part, other learning rates, step counts, batch sizes, widths, weight decays, no wide path, "
    "EMA of the weights (no gain or worse)."
)


# Tried for issue 20 (the tuned defaults' bar: mean ratio to the GBM <= 0.92) on these folds, seed 42, with
# the previous defaults (mean ratio 0.941): measured once, not rerun here.
TUNING_TRIED = (
    "Tried for the tuning issue's bar (mean fold ratio to the GBM <= 0.92), seed 42, previous defaults (0.941): "
    "4 sub-networks averaged in one SavedModel 0.940, GELU 0.938, dropout 0.1 0.957, dropout 0.2 with 256 64 16 "
    "units 0.943, 128 64 16 units 0.948; and, outside any SavedModel, the model's predictions blended with the GBM "
    "reference's (20% GBM, the best weight) 0.936. Both families' errors are largely the same trips': what is left "
    "is noise these five fields do not explain (the lab's rows carry no pickup time), so 0.92 was not reached."
)


def fold_of(keys: np.ndarray, folds: int = FOLDS) -> np.ndarray:
    """A stable fold per trip key (taxifare tune --folds uses the same)."""
    return tuning_folds.fold_of(keys, folds)


def _take(columns: sources.Columns, mask: np.ndarray) -> sources.Columns:
    return {name: values[mask] for name, values in columns.items()}


def _rmse(truth: np.ndarray, predicted: np.ndarray) -> float:
    return baseline.regression_metrics(truth, predicted)["rmse"]


@dataclasses.dataclass
class Split:
    name: str  # "fold K" or VALID
    fit: sources.Columns
    held: sources.Columns


@dataclasses.dataclass
class Scores:
    """RMSE on one split's held-out rows: the default model once per seed, the GBM, the distance rule."""

    name: str
    model: list[float]
    gbm: float
    rule: float
    previous: list[float] = dataclasses.field(default_factory=list)  # PREVIOUS_DEFAULTS, per seed


def splits(train: sources.Columns, valid: sources.Columns, folds: int) -> list[Split]:
    """The first `folds` of the FOLDS key-hash folds of train + valid, then taxi-valid.csv."""
    both = sources.concat([train, valid])
    fold = fold_of(both[KEY])
    out = [Split(f"fold {k}", _take(both, fold != k), _take(both, fold == k)) for k in range(folds)]
    return [*out, Split(VALID, train, valid)]


def _write_csv(columns: dict[str, np.ndarray], out: str) -> None:
    """Write columns as a CSV with the canonical header (label first, as the lab's files)."""
    names = [c for c in CSV_COLUMNS if c in columns]
    table = pa.table(
        {name: pa.array(columns[name], type=pa.string() if name == KEY else pa.float64()) for name in names}
    )
    pacsv.write_csv(table, out)


def _model_run(ctx: Context, split: Split, seed: int, previous: bool = False) -> dict:
    """A default training run on the split (section 1's run for taxi-valid.csv at the default seed);
    `previous`: with PREVIOUS_DEFAULTS instead."""
    extra = ["--seed", str(seed)]  # given even when it is the default: one command shape for every seed
    label = f"seed{seed}"
    if previous:
        extra += [f"--{name}={value}" for name, value in PREVIOUS_DEFAULTS.items()]
        label = f"previous-seed{seed}"
    if split.name == VALID:
        if seed == DEFAULTS.seed and not previous:
            default_model(ctx)
            return ctx.default_runs[0]
        return train_run(ctx, ctx.path("quality", "valid", label), LAB_TRAIN, LAB_VALID, extra)
    folder = split.name.replace(" ", "")
    fit_csv, held_csv = ctx.path("quality", folder, "train.csv"), ctx.path("quality", folder, "heldout.csv")
    if not os.path.isfile(held_csv):  # written to the scratch folder, never into the repo
        _write_csv(split.fit, fit_csv)
        _write_csv(split.held, held_csv)
    return train_run(ctx, ctx.path("quality", folder, label), fit_csv, held_csv, extra)


def score(ctx: Context, split: Split, seeds: Sequence[int]) -> tuple[Scores, list[str]]:
    """The three RMSEs on one split, and the commands of the model's runs."""
    runs = [_model_run(ctx, split, seed) for seed in seeds]
    previous = [_model_run(ctx, split, seed, previous=True) for seed in seeds]
    truth = split.held[LABEL]
    rule = baseline.fit(split.fit).predict(split.held)
    scores = Scores(
        split.name,
        [float(run["summary"]["rmse"]) for run in runs],
        _rmse(truth, gbm.fit_predict(split.fit, split.held)),
        _rmse(truth, rule),
        [float(run["summary"]["rmse"]) for run in previous],
    )
    return scores, [run["command"] for run in runs]


@dataclasses.dataclass
class SeedResult:
    """One seed of the default model over all the folds (and on taxi-valid.csv)."""

    seed: int
    fold_rmse: list[float]
    gbm_ratios: list[float]  # model / GBM, per fold
    rule_ratios: list[float]  # model / distance rule, per fold
    valid_rmse: float

    @property
    def mean_rmse(self) -> float:
        return statistics.fmean(self.fold_rmse)

    @property
    def mean_gbm_ratio(self) -> float:
        return statistics.fmean(self.gbm_ratios)

    @property
    def worst_gbm_ratio(self) -> float:
        return max(self.gbm_ratios)


def per_seed(folds: Sequence[Scores], valid: Scores, seeds: Sequence[int]) -> list[SeedResult]:
    return [
        SeedResult(
            seed,
            [f.model[i] for f in folds],
            [f.model[i] / f.gbm for f in folds],
            [f.model[i] / f.rule for f in folds],
            valid.model[i],
        )
        for i, seed in enumerate(seeds)
    ]


def _money(value: float) -> str:
    return f"${value:.3f}"


def _ratio(value: float) -> str:
    return f"{value:.3f}"


def _row(name: str, folds: Sequence[float], valid: float, show: Callable[[float], str], worst: bool) -> list[str]:
    """Per fold, their mean, the worst (largest) of them when asked, then taxi-valid.csv."""
    return [name, *map(show, folds), show(statistics.fmean(folds)), show(max(folds)) if worst else "", show(valid)]


def split_table(folds: Sequence[Scores], valid: Scores) -> list[str]:
    """RMSE and ratios per split; the model's RMSE is the mean over its seeds."""
    model = {s.name: statistics.fmean(s.model) for s in (*folds, valid)}
    gbm_ratio = [model[s.name] / s.gbm for s in folds]
    rule_ratio = [model[s.name] / s.rule for s in folds]
    before = {s.name: statistics.fmean(s.previous) for s in (*folds, valid)}
    rows = [
        _row("model RMSE (tuned defaults)", [model[s.name] for s in folds], model[VALID], _money, False),
        _row("previous defaults RMSE", [before[s.name] for s in folds], before[VALID], _money, False),
        _row("GBM reference RMSE", [s.gbm for s in folds], valid.gbm, _money, False),
        _row("distance rule RMSE", [s.rule for s in folds], valid.rule, _money, False),
        _row("ratio model / GBM", gbm_ratio, model[VALID] / valid.gbm, _ratio, True),
        _row(
            "ratio previous defaults / GBM",
            [before[s.name] / s.gbm for s in folds],
            before[VALID] / valid.gbm,
            _ratio,
            True,
        ),
        _row("ratio model / distance rule", rule_ratio, model[VALID] / valid.rule, _ratio, True),
    ]
    header = ["", *(s.name for s in folds), "mean of folds", "worst fold", VALID]
    return markdown_table(header, rows)


def seed_table(results: Sequence[SeedResult]) -> list[str]:
    """The default model per seed: its fold RMSEs, their mean, the ratios to the GBM, taxi-valid.csv."""
    rows = [
        [
            str(r.seed),
            *map(_money, r.fold_rmse),
            _money(r.mean_rmse),
            _ratio(r.mean_gbm_ratio),
            _ratio(r.worst_gbm_ratio),
            _money(r.valid_rmse),
        ]
        for r in results
    ]
    folds = [f"fold {k}" for k in range(len(results[0].fold_rmse))] if results else []
    header = ["seed", *folds, "mean of folds", "mean ratio / GBM", "worst ratio / GBM", VALID]
    return markdown_table(header, rows)


def _add_figures(
    section: Section, folds: Sequence[Scores], valid: Scores, results: Sequence[SeedResult], commands: _Commands
) -> None:
    """The figures: one value per seed for the model and its ratios, one value for the GBM and the rule."""
    harness = commands.harness
    on_folds, on_valid = (*commands.folds, *harness), (*commands.valid, *harness)
    mean = statistics.fmean
    section.add(
        "folds: mean ratio model / GBM", [r.mean_gbm_ratio for r in results], "ratio", on_folds, TARGET_MEAN_GBM_RATIO
    )
    section.add("folds: mean ratio model / GBM, issue 20's bar for the tuned defaults",
                [r.mean_gbm_ratio for r in results], "ratio", on_folds, TARGET_TUNED_GBM_RATIO)  # fmt: skip
    before = [statistics.fmean(f.previous[i] / f.gbm for f in folds) for i in range(len(results))]
    section.add("folds: mean ratio previous defaults / GBM", before, "ratio", on_folds)
    section.add(
        "folds: worst fold ratio model / GBM",
        [r.worst_gbm_ratio for r in results],
        "ratio",
        on_folds,
        TARGET_WORST_GBM_RATIO,
    )
    section.add(
        "folds: mean ratio model / distance rule",
        [mean(r.rule_ratios) for r in results],
        "ratio",
        on_folds,
        TARGET_RULE_RATIO,
    )
    section.add("folds: model mean RMSE (spread: over seeds)", [r.mean_rmse for r in results], "RMSE $", commands.folds)
    section.add("folds: GBM reference mean RMSE", [mean(f.gbm for f in folds)], "RMSE $", harness)
    section.add("folds: distance rule mean RMSE", [mean(f.rule for f in folds)], "RMSE $", harness)
    section.add(f"{VALID}: model RMSE (spread: over seeds)", valid.model, "RMSE $", commands.valid)
    section.add(f"{VALID}: GBM reference RMSE", [valid.gbm], "RMSE $", harness)
    section.add(f"{VALID}: distance rule RMSE", [valid.rule], "RMSE $", harness)
    section.add(f"{VALID}: ratio model / GBM", [m / valid.gbm for m in valid.model], "ratio", on_valid)
    section.add(
        f"{VALID}: ratio model / distance rule",
        [m / valid.rule for m in valid.model],
        "ratio",
        on_valid,
        TARGET_RULE_RATIO,
    )


@dataclasses.dataclass(frozen=True)
class _Commands:
    """What the report lists as the commands behind the figures: the model's runs with the fold as K
    and the seed as S, and the harness itself (the GBM and the distance rule run in-process)."""

    folds: tuple[str, ...]
    valid: tuple[str, ...]  # section 1's default run, then the other seeds' runs
    harness: tuple[str, ...]

    @classmethod
    def of(cls, ctx: Context, scored: Sequence[tuple[Scores, list[str]]], seed: int) -> _Commands:
        def generic(command: str) -> str:  # `seed`'s run as every seed's
            command = command.replace(f"/seed{seed}/", "/seedS/").replace(f"/seed{seed} ", "/seedS ")
            return command.replace(f"--seed {seed}", "--seed S").replace("/fold0/", "/foldK/")

        return cls(
            (generic(scored[0][1][-1]),),
            tuple(dict.fromkeys(generic(command) for command in (scored[-1][1][0], scored[-1][1][-1]))),
            (f"{ctx.show([ctx.python])} -m bench.run --only quality  # in-process: bench.gbm, trainer.baseline",),
        )


def _seeds(seeds: Sequence[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"


def _notes(ctx: Context, data: list[Split], seeds: Sequence[int], results: Sequence[SeedResult]) -> list[str]:
    valid = data[-1]
    sizes = ", ".join(f"{len(s.held[LABEL]):,}" for s in data[:-1])
    mean_lo, mean_hi = spread([r.mean_rmse for r in results])
    valid_lo, valid_hi = spread([r.valid_rmse for r in results])
    notes = [
        f"taxi-train.csv: {len(valid.fit[LABEL]):,} valid rows; {VALID}: {len(valid.held[LABEL]):,} valid rows "
        "(rows failing trainer.features.validate are dropped for every model).",
        f"Folds: blake2b(key) mod {FOLDS} of taxi-train.csv + {VALID} combined, {len(data) - 1} of {FOLDS} "
        f"trained (held-out rows per fold: {sizes}); each trains on the other folds and is scored on its own. "
        f"{VALID}: trained on taxi-train.csv.",
        f"Model: `python -m trainer.task` with the default flags, {_seeds(seeds)} "
        "(a fresh process each); the model RMSE is the trainer's own evaluation of the held-out rows.",
        f"GBM reference (bench/gbm.py, fixed settings, not tuned): {gbm.DESCRIPTION}.",
        "Distance rule: trainer.baseline.fit, fare = a + b · straight-line distance in degrees, least squares.",
        "Ratio figures hold one value per seed (mean or worst over the folds); the target compares their "
        "median, the spread shows the best and the worst seed.",
        f"Seed spread of the default model ({_seeds(seeds)}): mean fold RMSE ${mean_lo:.3f} – ${mean_hi:.3f}, "
        f"{VALID} RMSE ${valid_lo:.3f} – ${valid_hi:.3f}.",
    ]
    previous = " ".join(f"--{k}={v}" for k, v in PREVIOUS_DEFAULTS.items())
    notes += [f"Previous defaults: the model's command with `{previous}`, the same seeds.", NOT_ADOPTED, TUNING_TRIED]
    if ctx.settings.quick:
        notes.append(
            f"**Quick run**: {len(data) - 1} of {FOLDS} folds and {len(seeds)} of {Settings.full().seeds} seeds; "
            "`make bench` trains them all. These figures check the harness, they are not the ones to quote."
        )
    return notes


def measure(ctx: Context) -> Section:
    section = Section("quality", "Quality")
    if not (os.path.isfile(LAB_TRAIN) and os.path.isfile(LAB_VALID)):
        section.skipped = f"../shared/data/taxi-train.csv and {VALID} are not present; the targets are defined on them."
        return section
    train, _ = sources.read_columns(LAB_TRAIN)
    valid, _ = sources.read_columns(LAB_VALID)
    data = splits(train, valid, ctx.settings.folds)
    seeds = [DEFAULTS.seed + i for i in range(ctx.settings.seeds)]
    scored = [score(ctx, split, seeds) for split in data]
    folds, valid_scores = [s for s, _ in scored[:-1]], scored[-1][0]
    results = per_seed(folds, valid_scores, seeds)
    section.notes += _notes(ctx, data, seeds, results)
    section.tables += [split_table(folds, valid_scores), seed_table(results)]
    _add_figures(section, folds, valid_scores, results, _Commands.of(ctx, scored, seeds[-1]))
    return section
