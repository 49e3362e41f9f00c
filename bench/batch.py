"""Section 6, batch scoring: `taxifare predict --data CSV --out CSV` at two sizes, beside the server.

Generated trips (the streaming section's shards, generated here if that section did not run) are
scored by the default model (its training statistics, hence the drift check, included) from CSV
to CSV, each run a fresh process. The throughput is what the command reports for its scoring
(reading, checking, predicting, writing and the drift counts, from the first byte read to the
output marked complete), not TensorFlow's import; the wall time is the whole process. The CPU
time (every thread's, while it scores) does not depend on what else the machine runs: on a shared
machine it says what the scoring costs when the rate cannot (2 free cores give at most 2 CPU-s a second). If the
scorer held what it read, peak RSS would grow with the rows: the ratio of the largest size's to
the smallest's, run back to back, shows whether it does. The online server's figure is the
serving section's, from this same harness run.
"""

from __future__ import annotations

import glob
import os
import re

from bench import Context
from bench.report import Section, Target, ratio
from bench.streaming import _label, generate
from bench.trainer import default_model

TARGET_ROWS_PER_SEC = 1_000_000
MAX_RSS_RATIO = 1.10
ONLINE = "serving: 1,000 instances/request: predictions/s"  # the serving section's figure, when it ran
_RATE = re.compile(r"predictions: .* \(([\d.]+)s, ([\d,]+) rows/s; ([\d.]+) CPU-s\)")
_SCORED = re.compile(r"scored ([\d,]+) rows, rejected ([\d,]+)")


def _data(ctx: Context, rows: int) -> str:
    """The streaming section's training shards of this size (they are plain trips to score), made if missing."""
    pattern = os.path.join(ctx.path("streaming", _label(rows)), "train-*.csv")
    if not glob.glob(pattern):
        pattern = generate(ctx, rows)[0]
    return pattern


def score_run(ctx: Context, data: str, model: str, out: str) -> dict:
    """One `taxifare predict --data` process: its reported rate, rows, wall time and peak RSS."""
    from bench import run_process

    argv = [os.path.join(ctx.bin_dir, "taxifare"), "predict", "--data", data, "--out", out, "--model", model]
    proc = run_process(argv, timeout=3600).check()
    rate, scored = _RATE.search(proc.output), _SCORED.search(proc.output)
    if rate is None or scored is None:
        raise RuntimeError(f"no summary in the output of {' '.join(argv)}:\n{proc.tail()}")
    rows = int(scored.group(1).replace(",", "")) + int(scored.group(2).replace(",", ""))
    for path in glob.glob(out + "*") + glob.glob(os.path.splitext(out)[0] + ".errors.csv*"):
        os.remove(path)  # gigabytes at 10M rows: not kept between runs
    return {
        "rows_per_sec": float(rate.group(2).replace(",", "")),
        "cpu_per_million": float(rate.group(3)) / rows * 1e6,
        "rows": rows,
        "wall_seconds": proc.seconds,
        "peak_rss_mib": proc.peak_rss_mib,
        "command": ctx.show(argv),
    }


def measure(ctx: Context) -> Section:
    section = Section("batch", "Batch scoring")
    model = default_model(ctx)
    sizes = ctx.settings.streaming_rows
    data = {rows: _data(ctx, rows) for rows in sizes}
    results: dict[int, list[dict]] = {rows: [] for rows in sizes}
    for i in range(ctx.settings.repeats):
        for rows in sizes:
            out = ctx.path("batch", f"{_label(rows)}-{i}", "preds.csv")
            results[rows].append(score_run(ctx, data[rows], model, out))
    for rows in sizes:
        runs = results[rows]
        section.notes.append(
            f"{_label(rows)}: {runs[0]['rows']:,} generated trips (1% dirty rows, rejected with their reasons) in "
            f"{len(glob.glob(data[rows]))} CSV shards."
        )
    section.notes.append(
        "The model: the default training run's export (trainer section), with its training statistics: the drift "
        "check against them runs in every figure."
    )
    _figures(section, sizes, results, ctx.results.get(ONLINE))
    return section


def _figures(section: Section, sizes: tuple[int, ...], results: dict[int, list[dict]], online: float | None) -> None:
    for rows in sizes:
        runs, label = results[rows], _label(rows)
        command = runs[0]["command"].replace(f"/{label}-0/", f"/{label}-N/")
        target = Target(">=", TARGET_ROWS_PER_SEC)
        section.add(f"{label} rows: CSV -> CSV rows/s", [r["rows_per_sec"] for r in runs], "rows/s", command, target)
        section.add(f"{label} rows: CPU time per million rows", [r["cpu_per_million"] for r in runs], "s", command)
        section.add(f"{label} rows: peak RSS", [r["peak_rss_mib"] for r in runs], "MiB", command)
        section.add(f"{label} rows: wall time (process)", [r["wall_seconds"] for r in runs], "s", command)
    small, large = results[sizes[0]], results[sizes[-1]]
    pair = f"{_label(sizes[-1])} / {_label(sizes[0])}"
    commands = (small[0]["command"], large[0]["command"])
    ratios = [ratio(b["peak_rss_mib"], a["peak_rss_mib"]) for a, b in zip(small, large, strict=True)]
    section.add(f"peak RSS ratio {pair}", ratios, "ratio", commands, Target("<=", MAX_RSS_RATIO))
    if online:
        batch = [r["rows_per_sec"] for r in large]
        section.add("batch rows/s / the server's predictions/s (1,000-instance requests)",
                    [ratio(b, online) for b in batch], "×", commands)  # fmt: skip
        section.notes.append(f"The server, in this run's serving section: {online:,.0f} predictions/s in "
                             "1,000-instance requests.")  # fmt: skip
