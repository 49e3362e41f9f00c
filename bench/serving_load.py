"""A bounded load generator for `taxifare serve`: fixed concurrency, keep-alive POSTs, latency percentiles.

    python bench/serving_load.py http://127.0.0.1:8080/predict --instances 1 --seconds 10 --concurrency 16

Uses wrk (C, light on the CPU the server also needs) when it is on PATH, else a stdlib asyncio
client. Every run stops after `duration_s` seconds or `max_requests` answers, whichever is first.
Only loopback targets are allowed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit

SAMPLE = {"pickuplon": -73.98, "pickuplat": 40.75, "dropofflon": -73.95, "dropofflat": 40.78, "passengers": 2}
LOOPBACK = ("127.", "localhost", "::1", "[::1]")


def request_body(instances_per_request: int) -> bytes:
    instances = [
        {**SAMPLE, "pickuplon": SAMPLE["pickuplon"] + (i % 100) * 1e-4, "key": str(i)}
        for i in range(instances_per_request)
    ]
    return json.dumps({"instances": instances}).encode()


def run_load(
    url: str,
    instances_per_request: int,
    duration_s: float,
    concurrency: int,
    max_requests: int = 2_000_000,
    tool: str = "auto",
) -> dict[str, Any]:
    """POST `instances_per_request` instances per request for `duration_s` seconds at `concurrency`.

    Returns req_per_s, p50_ms, p99_ms, predictions_per_s, plus requests, errors and the tool used.
    """
    host = urlsplit(url).hostname or ""
    if not host.startswith(LOOPBACK) and host not in ("localhost", "::1"):
        raise ValueError(f"load runs target this machine only (127.0.0.1 / localhost), not {host!r}")
    body = request_body(instances_per_request)
    use_wrk = tool == "wrk" or (tool == "auto" and shutil.which("wrk"))
    if use_wrk:
        result = _run_wrk(url, body, duration_s, concurrency, max_requests)
    else:
        result = asyncio.run(_run_asyncio(url, body, duration_s, concurrency, max_requests))
    result["predictions_per_s"] = result["req_per_s"] * instances_per_request
    result["instances_per_request"] = instances_per_request
    result["concurrency"] = concurrency
    return result


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("TAXIFARE_LOAD_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
local limit = tonumber(os.getenv("TAXIFARE_LOAD_MAX"))
local seen = 0
local bad = 0
function response(status, headers, body)
  seen = seen + 1
  if status ~= 200 then bad = bad + 1 end
  if seen >= limit then wrk.thread:stop() end
end
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.6f, "p50_us": %.1f, "p99_us": %.1f, "errors": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99), errors))
end
"""


def _run_wrk(url: str, body: bytes, duration_s: float, concurrency: int, max_requests: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        script, body_path = os.path.join(tmp, "post.lua"), os.path.join(tmp, "body.json")
        with open(script, "w") as f:
            f.write(_WRK_SCRIPT)
        with open(body_path, "wb") as f:
            f.write(body)
        env = {**os.environ, "TAXIFARE_LOAD_BODY": body_path, "TAXIFARE_LOAD_MAX": str(max_requests)}
        seconds = max(1, round(duration_s))
        cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "5s", "-s", script, url]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    raw = json.loads(line[len("RESULT ") :])
    return {
        "req_per_s": raw["requests"] / raw["seconds"],
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "requests": raw["requests"],
        "errors": raw["errors"],
        "tool": "wrk",
    }


async def _run_asyncio(url: str, body: bytes, duration_s: float, concurrency: int, max_requests: int) -> dict:
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    message = head + body
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline and len(latencies) < max_requests:
                t0 = time.perf_counter()
                writer.write(message)
                status_line = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                if b" 200 " not in status_line:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "requests": len(latencies),
        "errors": errors,
        "tool": "asyncio",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url", help="e.g. http://127.0.0.1:8080/predict")
    p.add_argument("--instances", type=int, default=1, help="instances per request")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to run")
    p.add_argument("--concurrency", type=int, default=16, help="connections kept busy")
    p.add_argument("--max-requests", type=int, default=2_000_000, help="stop after this many answers")
    p.add_argument("--tool", choices=("auto", "wrk", "asyncio"), default="auto")
    args = p.parse_args(argv)
    result = run_load(args.url, args.instances, args.seconds, args.concurrency, args.max_requests, args.tool)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
