"""Section 2, streaming scale: training from sharded CSV files read without caching, at two sizes.

Generated trips (trainer.sample_data) are written as shards to the scratch folder; each run is
`python -m trainer.task --input_mode stream` for one pass over that size's rows (plus 5%, so the
reader wraps into a second epoch), evaluating on the same small file at every size. If the trainer
held what it read, peak RSS would grow with the rows read; the ratio of the largest size's RSS
to the smallest's, run back to back, shows whether it does.
"""

from __future__ import annotations

import glob
import math
import os
import time

from bench import Context
from bench.report import Section, Target, ratio
from bench.trainer import train_run
from trainer import sample_data
from trainer.config import DEFAULTS

TARGET_EXAMPLES_PER_SEC = 300_000
MAX_RSS_RATIO = 1.10
PASSES = 1.05
SEED = 7


def _label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}k"


def generate(ctx: Context, rows: int) -> tuple[str, int, float]:
    """Shards holding `rows` training rows; returns (glob, shard count, seconds). Valid/test shards are dropped."""
    out = ctx.path("streaming", _label(rows))
    shards = max(2, math.ceil(rows / ctx.settings.streaming_rows_per_shard))
    started = time.perf_counter()
    written = sample_data.write_splits(
        out, rows=math.ceil(rows / sample_data.SPLITS["train"]), seed=SEED, shards=shards
    )
    for split, paths in written.items():
        if split != "train":
            for path in paths:
                os.remove(path)
    return os.path.join(out, "train-*.csv"), shards, time.perf_counter() - started


def measure(ctx: Context) -> Section:
    section = Section("streaming", "Streaming scale")
    sizes = ctx.settings.streaming_rows
    batch = DEFAULTS.train_batch_size
    eval_dir = ctx.path("streaming", "eval")
    eval_csv = sample_data.write_splits(eval_dir, rows=20_000, seed=SEED + 1)["valid"][0]
    data: dict[int, tuple[str, int]] = {}
    for rows in sizes:
        pattern, shards, seconds = generate(ctx, rows)
        data[rows] = (pattern, shards)
        size_mib = sum(os.path.getsize(p) for p in glob.glob(pattern)) / 2**20
        section.notes.append(
            f"{_label(rows)}: {rows:,} generated training rows in {shards} CSV shards ({size_mib:,.0f} MiB), "
            f"written in {seconds:.0f} s; {math.ceil(PASSES * rows / batch):,} steps of {batch} = "
            f"{PASSES:.2f} passes."
        )
    section.notes.append(
        f"Evaluation: the same 2,000 generated rows at every size. Sizes run back to back, "
        f"{ctx.settings.repeats} round(s); each ratio below is taken within a round."
    )

    results: dict[int, list[dict]] = {rows: [] for rows in sizes}
    for i in range(ctx.settings.repeats):
        for rows in sizes:
            steps = math.ceil(PASSES * rows / batch)
            extra = ["--input_mode", "stream", "--train_steps", str(steps)]
            out = ctx.path("streaming", "runs", f"{_label(rows)}-{i}")
            results[rows].append(train_run(ctx, out, data[rows][0], eval_csv, extra, timeout=3600))

    _figures(section, sizes, results)
    return section


def _figures(section: Section, sizes: tuple[int, ...], results: dict[int, list[dict]]) -> None:
    """Each size's throughput, memory and time, and the largest against the smallest."""
    commands: dict[int, str] = {}
    for rows in sizes:
        runs = results[rows]
        label = _label(rows)
        command = commands[rows] = runs[0]["command"].replace(f"/{label}-0", f"/{label}-N")
        section.add(
            f"{label} rows: steady throughput",
            [r["examples_per_sec"] for r in runs],
            "examples/s",
            command,
            Target(">=", TARGET_EXAMPLES_PER_SEC),
        )
        section.add(f"{label} rows: peak RSS", [r["peak_rss_mib"] for r in runs], "MiB", command)
        section.add(f"{label} rows: wall time", [r["wall_seconds"] for r in runs], "s", command)
    small, large = sizes[0], sizes[-1]
    pair = f"{_label(large)} / {_label(small)}"
    pair_commands = (commands[small], commands[large])
    section.add(
        f"peak RSS ratio {pair}",
        [ratio(b["peak_rss_mib"], a["peak_rss_mib"]) for a, b in zip(results[small], results[large], strict=True)],
        "ratio",
        pair_commands,
        Target("<=", MAX_RSS_RATIO),
    )
    section.add(
        f"throughput ratio {pair}",
        [
            ratio(b["examples_per_sec"], a["examples_per_sec"])
            for a, b in zip(results[small], results[large], strict=True)
        ],
        "ratio",
        pair_commands,
    )
