"""The worst cases a client can send `taxifare serve` cheaply: a body of 1-byte chunks, and answers never read.

    python -m bench.serving_abuse http://127.0.0.1:8080 --pid PID --mib 8
    python -m bench.serving_abuse http://127.0.0.1:8080 --pid PID --never-read 20

The body is one instance padded with whitespace to `mib` MiB (valid JSON, so the measure is the
HTTP and parsing path, not the model), sent as "1\\r\\n \\r\\n" chunks: six bytes on the wire per
body byte. `flood_cpu` is the server's CPU seconds (utime + stime from /proc/PID/stat) per such
request; `floods_during` keeps sending them back to back while another load runs. `never_reads`
pipelines predictions (1,000 instances each) on one keep-alive connection as fast as the server takes them and reads
no answer, and samples the server's resident memory (VmRSS from /proc/PID/status) meanwhile and
after the client leaves. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

from bench.serving_load import LOOPBACK, SAMPLE, request_body

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS in /proc/{pid}/status")


def request(path: str, mib: float) -> bytes:
    """POST `path` with a chunked body of `mib` MiB in 1-byte chunks."""
    one = json.dumps({"instances": [SAMPLE]}).encode()
    body_bytes = int(mib * (1 << 20))
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
    framed = [b"1\r\n%c\r\n" % byte for byte in one[:-1]]
    padding = b"1\r\n \r\n" * (body_bytes - len(one))
    return head + b"".join(framed) + padding + b"1\r\n}\r\n0\r\n\r\n"


def send(host: str, port: int, data: bytes, timeout: float = 120) -> int:
    """Send one request; return the answer's status."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _target(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host.startswith(LOOPBACK) and host != "localhost":
        raise ValueError(f"abuse runs against this machine only (127.0.0.1 / localhost), not {host!r}")
    return host, parts.port or 80, (parts.path if parts.path not in ("", "/") else "/predict")


def flood_cpu(url: str, pid: int, mib: float, repeats: int) -> dict:
    """Server CPU seconds and wall seconds per request of 1-byte chunks, each alone."""
    host, port, path = _target(url)
    data = request(path, mib)
    cpu, wall, statuses = [], [], []
    for _ in range(repeats):
        before, t0 = cpu_seconds(pid), time.perf_counter()
        statuses.append(send(host, port, data))
        wall.append(time.perf_counter() - t0)
        time.sleep(0.3)  # let the server finish its share (it answers, then frees the body)
        cpu.append(cpu_seconds(pid) - before)
    return {"cpu_s": cpu, "wall_s": wall, "statuses": statuses, "wire_bytes": len(data)}


def never_reads(url: str, pid: int, seconds: float, instances: int = 1000, settle_s: float = 3.0) -> dict:
    """Pipeline predictions on one connection for `seconds`, reading nothing; the server's RSS meanwhile and after."""
    host, port, path = _target(url)
    body = request_body(instances)
    post = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
    batch = memoryview(post * max(1, (1 << 20) // len(post)))
    before = peak = rss_mib(pid)
    sent = offset = 0
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.setblocking(False)
        deadline = time.monotonic() + seconds
        sample_at = 0.0
        while (now := time.monotonic()) < deadline:
            try:
                n = sock.send(batch[offset:])
                sent, offset = sent + n, (offset + n) % len(batch)
            except BlockingIOError:
                time.sleep(0.005)  # the server stopped reading: good
            if now >= sample_at:
                peak, sample_at = max(peak, rss_mib(pid)), now + 0.25
        peak = max(peak, rss_mib(pid))
    time.sleep(settle_s)  # the server sees the reset and frees the connection
    return {
        "rss_before_mib": before,
        "rss_peak_mib": peak,
        "rss_after_mib": rss_mib(pid),
        "sent_bytes": sent,
        "requests_sent": sent // len(post),
        "instances_per_request": instances,
        "seconds": seconds,
    }


class FloodsDuring:
    """`with FloodsDuring(url, mib):` sends 1-byte-chunk requests back to back until the block ends."""

    def __init__(self, url: str, mib: float, max_floods: int = 1000):
        self.host, self.port, path = _target(url)
        self.data = request(path, mib)
        self.max_floods = max_floods
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.statuses) < self.max_floods:
            self.statuses.append(send(self.host, self.port, self.data))

    def __enter__(self) -> FloodsDuring:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=180)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("url", help="e.g. http://127.0.0.1:8080 (POST /predict)")
    p.add_argument("--pid", type=int, required=True, help="the server's process id, for its CPU time")
    p.add_argument("--mib", type=float, default=8.0, help="body size in MiB")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--never-read", type=float, metavar="SECONDS", help="instead: a client that never reads, for this long"
    )
    args = p.parse_args(argv)
    if args.never_read:
        result = never_reads(args.url, args.pid, args.never_read)
    else:
        result = flood_cpu(args.url, args.pid, args.mib, args.repeats)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
