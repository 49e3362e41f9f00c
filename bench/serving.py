"""Section 4, serving: requests/s and p50/p99 latency at 1 and at 1,000 instances per request,
the same for a peer (the same Predictor behind uvicorn + Starlette, bench/serving_peer.py) and
the ratio, and the worst cases a client can send (bench/serving_abuse.py: a client that never
reads its answers, and 8 MiB of 1-byte chunks).

Starts `taxifare serve --model-dir <the default model> --port 0 --max-body-bytes 8 MiB` in its own
process, waits for /health/ready, warms it up, then drives POST /predict with bench/serving_load.py
(wrk when it is installed, else its asyncio client), alternating the two request sizes in each
round; then the worst cases: the never-reading client, and the chunks alone and under 1-instance
load; then the peer, the same way as the first part.
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
from bench.trainer import default_model

TARGET_REQ_PER_S = 5_000.0
TARGET_P99_MS = 10.0
TARGET_PREDICTIONS_PER_S = 700_000.0
TARGET_PEER_RATIO = 2.5
TARGET_FLOOD_CPU_S = 1.0
TARGET_FLOOD_P99_MS = 50.0
TARGET_NEVER_READ_RSS_MIB = 50.0
# The body limit the server is started with for the chunk flood: 8 MiB, the old default, so the
# figure stays comparable (the default is now Vertex AI's 1.5 MB, a smaller worst case).
FLOOD_MIB = 8.0
NEVER_READ_SECONDS = 20.0
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


def _drive(argv: list[str], ctx: Context, extra: Any = None) -> tuple[Server, str, float, dict[int, list[dict]], Any]:
    """Start a server, warm it up, run the load rounds; `extra(server, base)` runs before it stops."""
    from bench.serving_load import run_load

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
        more = extra(server, base) if extra else None
    finally:
        server.stop()
    return server, base, ready, results, more


def _worst_case(ctx: Context) -> Any:
    """A client that never reads: the server's RSS. 8 MiB of 1-byte chunks: its CPU, others' p99 meanwhile."""
    from bench.serving_abuse import FloodsDuring, flood_cpu, never_reads
    from bench.serving_load import run_load

    def run(server: Server, base: str) -> dict[str, Any]:
        never = never_reads(base, server.proc.pid, _never_read_seconds(ctx))
        alone = flood_cpu(base, server.proc.pid, FLOOD_MIB, ctx.settings.short_repeats)
        during = []
        for _ in range(ctx.settings.short_repeats):
            with FloodsDuring(base, FLOOD_MIB) as floods:
                load = run_load(base + "/predict", 1, ctx.settings.load_seconds, CONCURRENCY[1])
            during.append({**load, "floods": len(floods.statuses), "flood_statuses": floods.statuses})
        return {"alone": alone, "during": during, "never_reads": never}

    return run


def _never_read_seconds(ctx: Context) -> float:
    return ctx.settings.load_seconds if ctx.settings.quick else NEVER_READ_SECONDS


def measure(ctx: Context) -> Section:
    section = Section("serving", "Serving")
    reason = unavailable(ctx)
    if reason:
        section.skipped = reason
        return section
    model = default_model(ctx)
    flood_limit = str(int(FLOOD_MIB * (1 << 20)))
    argv = [os.path.join(ctx.bin_dir, "taxifare"), "serve", "--model-dir", model, "--port", "0"]
    argv += ["--max-body-bytes", flood_limit]
    server, base, ready, results, worst = _drive(argv, ctx, _worst_case(ctx))
    peer_argv = [ctx.python, "-m", "bench.serving_peer", "--model-dir", model, "--port", "0"]
    peer_reason = _peer_unavailable()
    peer = None if peer_reason else _drive(peer_argv, ctx)

    serve = ctx.show(argv)
    section.notes += [
        f"Server: `{serve}` (the default model of section 1), default flags but the body limit (8 MiB, for the "
        "chunk flood; --tf-threads 1), on the same 2 cores as the load generator.",
        f"Load generator: {_tool(results[1][0])}.",
        f"Each run: {ctx.settings.load_seconds:.0f} s of POST /predict after a 1 s warm-up per size; "
        f"{ctx.settings.short_repeats} round(s), the sizes alternating within a round.",
        f"Peer: `{ctx.show(peer_argv)}`, the same Predictor behind uvicorn + Starlette (request.json(), the same "
        "instance check, the model in Starlette's thread pool per request), measured the same way right after."
        if peer
        else f"Peer: not measured ({peer_reason}).",
        f"Worst case: a POST /predict whose {FLOOD_MIB:.0f} MiB body (one instance padded with spaces) comes in 1-byte "
        "chunks (6 bytes on the wire per body byte); its server CPU is utime+stime of the server process, each "
        "request alone; then such requests back to back while 1-instance load runs.",
        f"Never-reading client: one keep-alive connection pipelining POST /predict (1,000 instances each) as fast "
        f"as the server takes them for {_never_read_seconds(ctx):.0f} s, reading no answer; the server's VmRSS "
        "before, at its peak (sampled every 0.25 s) and 3 s after the client left.",
    ]
    _errors_note(section, results, worst)
    section.add("server start → ready", [ready], "s", serve)
    _load_figures(section, ctx, base, results, "")
    if peer:
        _load_figures(section, ctx, peer[1], peer[3], "peer ")
        for n in CONCURRENCY:
            ours, theirs = (_median([r["req_per_s"] for r in runs[n]]) for runs in (results, peer[3]))
            section.add(
                f"{n:,} instance{'s' if n > 1 else ''}/request: requests/s, ours / peer",
                [ours / theirs if theirs else float("nan")],
                "×",
                (serve, ctx.show(peer_argv)),
                Target(">=", TARGET_PEER_RATIO),
            )
    _worst_figures(section, ctx, base, worst, serve)
    section.add("server peak RSS", [server.peak_rss_mib], "MiB", serve)
    if server.proc.returncode not in (0, None):
        section.notes.append(f"The server exited with status {server.proc.returncode} on SIGTERM.")
    return section


def _peer_unavailable() -> str | None:
    try:
        importlib.import_module("uvicorn")
        importlib.import_module("starlette")
    except ImportError as err:
        return f"uvicorn and starlette are not installed: {err}"
    return None


def _median(values: list[float]) -> float:
    from bench.report import median

    return median(values)


def _errors_note(section: Section, results: dict[int, list[dict]], worst: dict[str, Any]) -> None:
    errors = sum(int(r.get("errors", 0)) for runs in results.values() for r in runs)
    errors += sum(int(r.get("errors", 0)) for r in worst["during"])
    if errors:
        section.notes.append(f"**{errors} request(s) failed** (non-200 or socket errors) across the runs.")
    statuses = [*worst["alone"]["statuses"], *(s for r in worst["during"] for s in r["flood_statuses"])]
    if any(s != 200 for s in statuses):
        section.notes.append(f"Worst-case requests answered {sorted(set(statuses))}, not all 200.")


def _load_figures(section: Section, ctx: Context, base: str, results: dict[int, list[dict]], who: str) -> None:
    for n, runs in results.items():
        command = (
            f"{ctx.show([ctx.python])} -m bench.serving_load {base}/predict --instances {n} "
            f"--seconds {ctx.settings.load_seconds:.0f} --concurrency {CONCURRENCY[n]}"
        )
        size = f"{who}{n:,} instance{'s' if n > 1 else ''}/request"
        targeted = not who
        req = section.add(f"{size}: requests/s", [r["req_per_s"] for r in runs], "req/s", command)
        if n == 1 and targeted:
            req.target = Target(">=", TARGET_REQ_PER_S)
        if n > 1:
            preds = [r["predictions_per_s"] for r in runs]
            target = Target(">=", TARGET_PREDICTIONS_PER_S) if targeted else None
            section.add(f"{size}: predictions/s", preds, "predictions/s", command, target)
        section.add(f"{size}: p50 latency", [r["p50_ms"] for r in runs], "ms", command)
        p99 = section.add(f"{size}: p99 latency", [r["p99_ms"] for r in runs], "ms", command)
        if n == 1 and targeted:
            p99.target = Target("<=", TARGET_P99_MS)


def _worst_figures(section: Section, ctx: Context, base: str, worst: dict[str, Any], serve: str) -> None:
    command = f"{ctx.show([ctx.python])} -m bench.serving_abuse {base} --pid PID --mib {FLOOD_MIB:.0f}"
    never = worst["never_reads"]
    seconds = f"{never['seconds']:.0f}"
    never_command = f"{ctx.show([ctx.python])} -m bench.serving_abuse {base} --pid PID --never-read {seconds}"
    name = f"a client that never reads ({seconds} s)"
    before = never["rss_before_mib"]
    target = Target("<=", TARGET_NEVER_READ_RSS_MIB)
    section.add(f"{name}: server RSS growth", [never["rss_peak_mib"] - before], "MiB", never_command, target)
    section.add(f"{name}: server RSS 3 s after, over before", [never["rss_after_mib"] - before], "MiB", never_command)
    name = f"{FLOOD_MIB:.0f} MiB of 1-byte chunks"
    cpu = section.add(f"{name}: server CPU per request", worst["alone"]["cpu_s"], "s", command)
    cpu.target = Target("<=", TARGET_FLOOD_CPU_S)
    load = f"{command} (in a loop) + 1-instance load"
    p99 = section.add(f"{name}: other clients' p99 meanwhile", [r["p99_ms"] for r in worst["during"]], "ms", load)
    p99.target = Target("<=", TARGET_FLOOD_P99_MS)
    section.add(
        f"{name}: other clients' requests/s meanwhile", [r["req_per_s"] for r in worst["during"]], "req/s", load
    )
