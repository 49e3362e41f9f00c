"""`taxifare run`'s live display: plain lines off a terminal (throttled), one updating bar on one."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from taxifare.cli import live
from taxifare.runs.records import RunRecord, TaskRecord
from taxifare.runs.status import Status
from trainer.progress import Progress


def _progress(step: int, total: int = 1000) -> Progress:
    return Progress(step, total, 6.5, 2.55, 2.6, 250_000.0 if step > 100 else None, step / 100)


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_name_the_run_first_and_throttle_training_progress():
    out, clock = io.StringIO(), _Clock()
    shown = live.PlainLines(out, every=30, clock=clock)
    shown.started(RunRecord(version=2, run_id="20261201-000000-abcdef", started=0),
                  "/runs/20261201-000000-abcdef/pipeline.log")  # fmt: skip
    shown.task(TaskRecord(name="train-model", state=Status.RUNNING))
    for step in range(100, 1001, 100):  # ten progress lines, one second apart
        shown.training(_progress(step))
        clock.now += 1
    clock.now += 60
    shown.training(_progress(1000))  # a later repeat of the last line: shown once the throttle allows
    shown.task(TaskRecord(name="train-model", state=Status.SUCCEEDED, seconds=12.0))
    lines = out.getvalue().splitlines()
    assert lines[0] == "run 20261201-000000-abcdef: log /runs/20261201-000000-abcdef/pipeline.log"
    assert lines[1] == "  … train-model started"
    steps = [line.split()[1] for line in lines if line.startswith("    step ")]
    # The first, then nothing for 30 s except the last step (always shown), then the late repeat.
    assert steps == ["100/1000:", "1000/1000:", "1000/1000:"]
    assert "warming up" in lines[2] and "eval rmse 2.600" in lines[2]
    assert "250,000 ex/s, 0s left" in lines[3]
    assert lines[-1].startswith("  ✔ train-model") and "12.0s" in lines[-1]


def test_the_display_follows_the_stream(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "xterm")
    assert isinstance(live.watcher(io.StringIO()), live.PlainLines)
    assert isinstance(live.watcher(Tty()), live.LiveBar)
    # A terminal that cannot redraw in place gets the plain lines (rich would draw nothing there).
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(live.watcher(Tty()), live.PlainLines)


def _read_pty(fd: int, proc: subprocess.Popen, limit: float) -> bytes:
    """Everything the process writes to its terminal until it exits (bounded by `limit` seconds)."""
    chunks, deadline = [], time.monotonic() + limit
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the other end closed: the process is gone
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks)


@pytest.mark.slow
def test_on_a_terminal_training_is_one_updating_bar_and_the_log_keeps_every_line(sample_dir, tmp_path):
    """The real command on a real pseudo-terminal: the bar redraws in place (carriage returns, no new
    lines per update), and rich's live display does not steal the tasks' output from the log."""
    runs = tmp_path / "runs"
    data = [a for s in ("train", "valid", "test") for a in (f"--{s}-data", os.path.join(sample_dir, f"{s}.csv"))]
    argv = [sys.executable, "-m", "taxifare.cli", "run", "--runs-root", str(runs), "--registry", str(tmp_path / "reg"),
            "--train-steps", "600", *data]  # progress every 100 steps (a tenth, at least 100)  # fmt: skip
    parent, child = pty.openpty()
    # 80 columns: the step count and time left must survive a narrow terminal.
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm"}
    proc = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child, env=env)
    os.close(child)
    try:
        shown = _read_pty(parent, proc, limit=600).decode(errors="replace")
    finally:
        os.close(parent)
        if proc.poll() is None:
            proc.kill()
    assert proc.wait(timeout=30) == 0, shown[-2000:]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    run_id = re.search(r"run (\d{8}-\d{6}-[0-9a-f]{6}): log ", text).group(1)
    assert text.index(f"run {run_id}: log") < text.index("stage-data started")
    # The bar: drawn more than once, each redraw starting with a carriage return, never as new lines.
    redraws = [line for line in text.split("\r") if line.lstrip().startswith("training")]
    assert len(redraws) >= 2 and any("eval rmse" in r for r in redraws), text[-3000:]
    assert any(re.search(r" [1-6]00/600 .*\d:\d\d:\d\d", r) for r in redraws), redraws  # steps and time left
    assert all(len(r.rstrip()) <= 80 for r in redraws)
    assert '"taxifare_event"' not in text, "progress events leaked past the bar"
    with open(runs / run_id / "pipeline.log") as f:
        logged = re.findall(r'"taxifare_event":"progress","step":(\d+),"total":600', f.read())
    assert logged == [str(s) for s in range(100, 601, 100)]
