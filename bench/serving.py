"""Section 4, serving: requests/s and p50/p99 latency at 1 and at 1,000 instances per request.

Starts `taxifare serve --model-dir <the default model> --port 0` in its own process, waits for
/health/ready, warms it up, then drives POST /predict with bench/serving_load.py (wrk when it is
installed, else its asyncio client), alternating the two request sizes in each round.
"""

from __future__ import annotations

import collections
import importlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from bench import Context
from bench.report import Section, Target

TARGET_REQ_PER_S = 2_000.0
TARGET_P99_MS = 20.0
TARGET_PREDICTIONS_PER_S = 500_000.0
CONCURRENCY = {1: 16, 1000: 8}  # connections kept busy per request size
_LISTENING = re.compile(r"listening on (http://\S+:\d+)")


def unavailable(ctx: Context) -> str | None:
    """Why serving cannot be benchmarked here, or None when the server and the load generator exist."""
    try:
        importlib.import_module("bench.serving_load")
    except ImportError as err:
        return f"serving not available: the load generator bench/serving_load.py does not import ({err})"
    taxifare = os.path.join(ctx.bin_dir, "taxifare")
    try:
        out = subprocess.run([taxifare, "serve", "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"serving not available: `taxifare serve --help` failed ({err})"
    if out.returncode != 0 or "--model-dir" not in out.stdout or "--port" not in out.stdout:
        return "serving not available: `taxifare serve --help` has no --model-dir/--port (is serving/ installed?)"
    return None


class Server:
    """`taxifare serve` in a subprocess; stderr is drained by a thread so the server never blocks on it."""

    def __init__(self, argv: list[str]):
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[str] = queue.Queue()
        self.tail: collections.deque[str] = collections.deque(maxlen=30)
        self.peak_rss_mib = float("nan")
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.tail.append(line.rstrip())
            self.lines.put(line)

    def url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if m := _LISTENING.search(line):
                return m.group(1)
        raise RuntimeError("taxifare serve did not report its address:\n" + "\n".join(self.tail))

    def wait_ready(self, base: str, timeout: float) -> float:
        """Seconds from process start until /health/ready answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/health/ready", timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - self.started
            except (urllib.error.URLError, ConnectionError):
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("taxifare serve did not become ready:\n" + "\n".join(self.tail))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        timer = threading.Timer(20, self.proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self.peak_rss_mib = usage.ru_maxrss / 1024
        except ChildProcessError:  # already reaped by poll()
            pass
        finally:
            timer.cancel()


def _tool(result: dict[str, Any]) -> str:
    if result.get("tool") == "wrk":
        from bench.report import machine_info

        version = machine_info()["wrk"]
        return f"wrk {version} (Debian's package), 1 thread, keep-alive connections, driven by bench/serving_load.py"
    return "the Python asyncio client in bench/serving_load.py (wrk not installed), keep-alive connections"


def measure(ctx: Context) -> Section:
    section = Section("serving", "Serving")
    reason = unavailable(ctx)
    if reason:
        section.skipped = reason
        return section
    from bench.serving_load import run_load

    model = ctx.default_model()
    argv = [os.path.join(ctx.bin_dir, "taxifare"), "serve", "--model-dir", model, "--port", "0"]
    server = Server(argv)
    results: dict[int, list[dict[str, Any]]] = {n: [] for n in CONCURRENCY}
    try:
        base = server.url(timeout=180)
        ready = server.wait_ready(base, timeout=180)
        url = base + "/predict"
        for n, concurrency in CONCURRENCY.items():  # warm-up: not recorded
            run_load(url, n, 1.0, concurrency)
        for _ in range(ctx.settings.short_repeats):
            for n, concurrency in CONCURRENCY.items():
                results[n].append(run_load(url, n, ctx.settings.load_seconds, concurrency))
    finally:
        server.stop()

    serve = ctx.show(argv)
    section.notes += [
        f"Server: `{serve}` (the default model of section 1), default flags (--tf-threads 1), on the same 2 cores "
        "as the load generator.",
        f"Load generator: {_tool(results[1][0])}.",
        f"Each run: {ctx.settings.load_seconds:.0f} s of POST /predict after a 1 s warm-up per size; "
        f"{ctx.settings.short_repeats} round(s), the sizes alternating within a round.",
    ]
    errors = sum(int(r.get("errors", 0)) for runs in results.values() for r in runs)
    if errors:
        section.notes.append(f"**{errors} request(s) failed** (non-200 or socket errors) across the runs.")
    section.add("server start → ready", [ready], "s", serve)
    for n, runs in results.items():
        command = (
            f"{ctx.show([ctx.python])} -m bench.serving_load {base}/predict --instances {n} "
            f"--seconds {ctx.settings.load_seconds:.0f} --concurrency {CONCURRENCY[n]}"
        )
        size = f"{n:,} instance{'s' if n > 1 else ''}/request"
        req = section.add(f"{size}: requests/s", [r["req_per_s"] for r in runs], "req/s", command)
        if n == 1:
            req.target = Target(">=", TARGET_REQ_PER_S)
        if n > 1:
            preds = [r["predictions_per_s"] for r in runs]
            section.add(
                f"{size}: predictions/s", preds, "predictions/s", command, Target(">=", TARGET_PREDICTIONS_PER_S)
            )
        section.add(f"{size}: p50 latency", [r["p50_ms"] for r in runs], "ms", command)
        p99 = section.add(f"{size}: p99 latency", [r["p99_ms"] for r in runs], "ms", command)
        if n == 1:
            p99.target = Target("<=", TARGET_P99_MS)
    section.add("server peak RSS", [server.peak_rss_mib], "MiB", serve)
    if server.proc.returncode not in (0, None):
        section.notes.append(f"The server exited with status {server.proc.returncode} on SIGTERM.")
    return section
