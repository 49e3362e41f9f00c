"""`taxifare tune`: a local hyperparameter study (taxifare/tuning/) on your data or generated sample data."""

from __future__ import annotations

import argparse
import os
from typing import Any

from taxifare.cli import args as cli_args
from taxifare.errors import UsageError


def _data(args: argparse.Namespace, folder: str) -> tuple[str, str, str]:
    """(train, valid, what): --train-data/--valid-data as given, --data split by key into the study's
    folder (as stage_data splits), or generated sample data."""
    if args.data and (args.train_data or args.valid_data):
        raise UsageError("give --data (split by key) or --train-data and --valid-data, not both")
    if bool(args.train_data) != bool(args.valid_data):
        raise UsageError("--train-data and --valid-data go together", "or give --data to split one source by key")
    if args.train_data:
        train, valid = cli_args.files("--train-data", args.train_data), cli_args.files("--valid-data", args.valid_data)
        return train, valid, "the given train and valid data"
    if args.data:
        from taxifare import staging
        from trainer.config import Source

        source = cli_args.files("--data", args.data)
        out = {s: os.path.join(folder, "data", f"{s}.csv") for s in ("train", "valid", "test")}
        os.makedirs(os.path.dirname(out["train"]), exist_ok=True)
        staging.stage(out, Source(source=source), max_bad_fraction=args.max_bad_fraction)
        return out["train"], out["valid"], f"{args.data}, split by key (its test split left out)"
    from taxifare.runs import local

    sample = local.sample_data(args.runs_root)
    return os.path.join(sample, "train.csv"), os.path.join(sample, "valid.csv"), f"generated sample in {sample}"


def _spaces(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, eq, text = item.partition("=")
        if not eq or not name.strip():
            raise UsageError(f"--space {item!r}: expected NAME=SPACE", "e.g. --space learning_rate=0.0001:0.01:log")
        out[name.strip()] = text
    return out


def config_from(args: argparse.Namespace, train: str, valid: str) -> Any:
    from taxifare.tuning import space, study
    from trainer import settings
    from trainer.config import HParams

    names = [n.strip() for n in args.search.split(",") if n.strip()] if args.search else None
    params = space.build(names, _spaces(args.space))
    fixed = {n: getattr(args, n) for n in cli_args.hparam_names() if n in HParams.__dataclass_fields__}
    fixed["hidden_units"] = tuple(fixed["hidden_units"])
    base = settings.check(HParams(**fixed))
    parallel = args.parallel or min(study.cores(), args.trials)
    return study.StudyConfig(train=train, valid=valid, params=params, base=base, trials=args.trials, parallel=parallel,
                             folds=args.folds, prune=args.prune, seed=args.seed_sampler,
                             given_first=args.given_first).check()  # fmt: skip


def _cmd_tune(args: argparse.Namespace) -> int:
    from taxifare.report import tuning as report
    from taxifare.tuning import records, study

    study_id = records.new_id()
    folder = os.path.join(records.studies_root(args.runs_root), study_id)
    # The space and settings are checked before any data is read or written.
    config_from(args, "", "")
    train, valid, what = _data(args, folder)
    cfg = config_from(args, train, valid)
    scored = f"{cfg.folds} key-hash folds of train + valid" if cfg.folds else "the validation data"
    print(f"study {study_id}: {cfg.trials} trials, {cfg.parallel} at a time, scored on {scored}; data: {what}")
    print("searching: " + "; ".join(p.describe() for p in cfg.params), flush=True)
    try:
        folder, result = study.run(cfg, args.runs_root, lambda t: print(report.trial_line(t), flush=True), folder)
    except KeyboardInterrupt:
        result = records.read(folder)
        print(f"\ninterrupted: {len(result.trials)} trial(s) recorded in {folder}")
        return 130
    print()
    print("\n".join(report.lines(result)))
    print(f"study: {folder}")
    if result.best is not None:
        print(f"reuse: taxifare run --hparams {study_id}   (or --hparams best: the newest study's best)")
    return 0 if result.best is not None else 1


def register(sub: argparse._SubParsersAction) -> None:
    from trainer.config import MAX_TRIALS

    p = sub.add_parser("tune", help="search hyperparameters locally (Optuna: TPE search, median pruning)")
    g = p.add_argument_group("study")
    g.add_argument("--trials", type=int, default=20, help=f"trials in all, 1 to {MAX_TRIALS}")
    g.add_argument("--parallel", type=int, default=0, help="trials at once (default: the machine's cores)")
    g.add_argument("--folds", type=int, default=0,
                   help="score each trial on K key-hash folds of train + valid (0: on validation)")  # fmt: skip
    g.add_argument("--search", default="", help="comma-separated settings to search (default: every searched one)")
    g.add_argument("--space", action="append", default=[], metavar="NAME=SPACE",
                   help="a setting's space: LOW:HIGH, LOW:HIGH:log or choices A|B|C (a layout as 64,16,4)")  # fmt: skip
    g.add_argument("--prune", action=argparse.BooleanOptionalAction, default=True,
                   help="stop trials whose eval RMSE trails the median of the others at the same point")  # fmt: skip
    g.add_argument("--given-first", action=argparse.BooleanOptionalAction, default=True,
                   help="trial 0 trains the given hyperparameters (the flags): the bar to beat")  # fmt: skip
    g.add_argument("--seed-sampler", "--seed_sampler", type=int, default=0, help="the search's own seed")
    d = p.add_argument_group("data (default: generated sample data)")
    d.add_argument("--data", help="CSV to split by key into train and valid: a file, glob or comma-separated list")
    d.add_argument("--train-data", "--train_data", dest="train_data", help="instead of --data: training CSV")
    d.add_argument("--valid-data", "--valid_data", dest="valid_data", help="with --train-data: validation CSV")
    cli_args.add_hparams(p)  # the settings not searched
    cli_args.add_runs_root(p)
    p.set_defaults(handler=_cmd_tune)
