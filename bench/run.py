"""`python -m bench.run`: measure the trainer, streaming, the pipeline, serving, quality, tuning and batch
scoring; write BENCHMARKS.md.

    python -m bench.run --out BENCHMARKS.md                 # make bench: the figures to quote (~25 min)
    python -m bench.run --quick --out bench/out/BENCHMARKS-quick.md   # make bench-quick: checks the harness (< 2 min)
    python -m bench.run --only trainer,quality              # some sections

Runs from the repository root (bench/ is not part of the installed package). Scratch data,
models and run folders go to a fresh folder under the system's temp dir, removed at the end.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence

from bench import Context, Settings, batch, pipeline, quality, serving, streaming, trainer, tuning
from bench import report as report_lib

SECTIONS: dict[str, Callable[[Context], report_lib.Section]] = {  # in report_lib.SECTION_ORDER
    "trainer": trainer.measure,
    "streaming": streaming.measure,
    "pipeline": pipeline.measure,
    "serving": serving.measure,
    "quality": quality.measure,
    "tuning": tuning.measure,
    "batch": batch.measure,
}


def _sections(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {', '.join(unknown) or '(none given)'}; choose from {','.join(SECTIONS)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="one run per figure on small data: checks the harness")
    p.add_argument("--out", default="BENCHMARKS.md", help="the markdown report to write")
    p.add_argument(
        "--only", type=_sections, default=list(SECTIONS), help=f"comma-separated sections, from {','.join(SECTIONS)}"
    )
    p.add_argument("--keep-scratch", action="store_true", help="keep the scratch folder (data, models, runs)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    settings = Settings.quick_mode() if args.quick else Settings.full()
    started_at = datetime.datetime.now(datetime.UTC)
    started = time.perf_counter()
    load_before = report_lib.load_average()
    scratch = tempfile.mkdtemp(prefix="taxifare-bench-")
    ctx = Context(settings=settings, scratch=scratch)
    sections: list[report_lib.Section] = []
    failed = False
    say(f"bench: {'quick' if args.quick else 'full'} run of {', '.join(args.only)}; scratch {scratch}")
    try:
        for name in [s for s in SECTIONS if s in args.only]:
            say(f"bench: {name} …")
            t0 = time.perf_counter()
            try:
                section = SECTIONS[name](ctx)
            except Exception as err:  # report the failure and go on with the other sections
                failed = True
                traceback.print_exc()
                section = report_lib.Section(name, name.capitalize(), skipped=f"**failed**: {err}".splitlines()[0])
            section.seconds = time.perf_counter() - t0
            sections.append(section)
            for figure in section.figures:
                ctx.results[f"{name}: {figure.name}"] = figure.median
                verdict = f"  [{figure.verdict}]" if figure.verdict else ""
                say(f"  {figure.name}: {report_lib.fmt(figure.median, figure.unit)}{verdict}")
            if section.skipped:
                say(f"  skipped: {section.skipped}")
            say(f"bench: {name} done in {section.seconds:.0f} s")
    finally:
        if args.keep_scratch:
            say(f"bench: scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    load_after = report_lib.load_average()
    text = report_lib.render(
        sections,
        report_lib.machine_info(),
        quick=args.quick,
        command=" ".join(["python -m bench.run", *argv]),
        started=started_at,
        seconds=time.perf_counter() - started,
        load_before=report_lib.load_text(load_before),
        load_after=report_lib.load_text(load_after),
        notes=report_lib.busy_note(load_before, load_after),
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    say(f"bench: wrote {args.out} in {(time.perf_counter() - started) / 60:.1f} min")
    return 1 if failed else 0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
