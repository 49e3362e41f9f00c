"""`taxifare serve` against hostile clients, loopback only: chunked abuse, endless heads and
trailers, slow clients, clients that never read, floods of idle connections, HTTP corners,
big bodies, and a fuzz of thousands of bodies.

Every loop here is bounded in count and in time; nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import itertools
import json
import math
import random
import socket
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from serving_helpers import TRIP, LoopServer, ServerProcess, read_until_close, responses, send_until_stopped

from taxifare.serving import DEFAULT_MAX_BODY_BYTES


@pytest.fixture(scope="module")
def server(trained: dict, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("hostile") / "server.log"
    args = [
        "--model-dir",
        trained["export_dir"],
        "--head-seconds",
        "1",
        "--body-seconds",
        "2",
        "--max-connections",
        "24",
    ]
    proc = ServerProcess(args, str(log))
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def chunked(body: bytes, size: int, extension: bytes = b"") -> bytes:
    out = [
        b"%x%s\r\n%s\r\n" % (len(body[i : i + size]), extension, body[i : i + size]) for i in range(0, len(body), size)
    ]
    return b"".join(out) + b"0\r\n\r\n"


def post_chunked(framed: bytes) -> bytes:
    return b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + framed


def send_until_answered(server: ServerProcess, head: bytes, filler: bytes, limit: int) -> bytes:
    """Send `head`, then `filler` over and over (at most `limit` bytes) until the server answers."""
    with socket.create_connection((server.address, server.port), timeout=10) as sock:
        sock.sendall(head)
        sock.settimeout(0.0)
        sent = 0
        while sent < limit:
            try:
                answer = sock.recv(65536)
                if answer:
                    return answer
            except BlockingIOError:
                pass
            try:
                sent += sock.send(filler)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                time.sleep(0.01)
        sock.settimeout(10)
        return sock.recv(65536)


def test_one_byte_chunks_are_read_and_answered(server: ServerProcess) -> None:
    body = json.dumps({"instances": [{**TRIP, "key": str(i)} for i in range(200)]}).encode()
    out = responses(server.raw(post_chunked(chunked(body, 1)), timeout=30))
    assert out[0][0] == 200
    assert [p["key"] for p in json.loads(out[0][1])["predictions"]] == [str(i) for i in range(200)]


def test_long_chunk_extensions_are_refused(server: ServerProcess) -> None:
    body = json.dumps({"instances": [TRIP] * 50}).encode()
    out = responses(server.raw(post_chunked(chunked(body, 1, b";x=" + b"y" * 1000)), timeout=30))
    assert out[0][0] == 400 and b"chunk extensions" in out[0][1]
    # Short ones are allowed.
    out = responses(server.raw(post_chunked(chunked(body, 100, b";name=value"))))
    assert out[0][0] == 200


def test_endless_trailer_and_endless_head_are_cut_off(server: ServerProcess) -> None:
    head = post_chunked(b"0\r\nX-Trailer: ")
    answer = send_until_answered(server, head, b"a" * 4096, limit=4 << 20)
    assert answer.startswith(b"HTTP/1.1 400") and b"trailers" in answer
    head = b"GET /health/live HTTP/1.1\r\nX-Endless: "
    answer = send_until_answered(server, head, b"a" * 4096, limit=4 << 20)
    assert answer.startswith(b"HTTP/1.1 431")
    assert server.call("GET", "/health/ready")[0] == 200


@pytest.mark.slow
def test_slow_heads_and_bodies_get_408(server: ServerProcess) -> None:
    with socket.create_connection((server.address, server.port), timeout=15) as sock:
        for byte in b"GET /health/li":  # a byte at a time, slower than the head deadline allows
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
        out = sock.recv(65536)
    assert out.startswith(b"HTTP/1.1 408") and b"head" in out
    with socket.create_connection((server.address, server.port), timeout=15) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        out = sock.recv(65536)
    assert out.startswith(b"HTTP/1.1 408") and b"body" in out and b"Connection: close" in out


def test_connections_past_the_cap_get_503_when_none_is_idle(server: ServerProcess) -> None:
    head = b"POST /predict HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n"
    held = []
    try:
        for _ in range(40):  # more than --max-connections 24, less than any open-files limit
            sock = socket.create_connection((server.address, server.port), timeout=10)
            held.append(sock)
            sock.sendall(head)
            first = sock.recv(65536)
            if first.startswith(b"HTTP/1.1 100"):
                continue  # a request in progress (until the body deadline): not idle, not closed for room
            assert first.startswith(b"HTTP/1.1 503") and b"limit of 24 connections" in first
            break
        else:
            pytest.fail("no 503 after 40 connections, each with a request in progress")
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while server.call("GET", "/health/live")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.05)


def test_idle_sockets_never_shut_out_a_working_client(server: ServerProcess) -> None:
    """Cap + 20 sockets that send nothing: each new connection closes the longest idle one."""
    idle = [socket.create_connection((server.address, server.port), timeout=10) for _ in range(24 + 20)]
    try:
        for _ in range(5):
            status, _, body = server.call("POST", "/predict", {"instances": [TRIP]})
            assert status == 200 and len(body["predictions"]) == 1
        # The oldest idle ones made the room (closed, no 503 on them); under that pressure the rest
        # are closed after seconds, not the 75 s an idle keep-alive connection gets otherwise.
        for sock in idle:
            sock.settimeout(30)
            assert sock.recv(65536) == b""
    finally:
        for sock in idle:
            sock.close()


def _predictions(instances: int) -> Iterator[bytes]:
    """POST /predict requests without end, request i with keys "i.j.kkk…" (answers about 7 KB each)."""
    for i in itertools.count():
        body = json.dumps({"instances": [{**TRIP, "key": f"{i}.{j}." + "k" * 100} for j in range(instances)]})
        yield b"POST /predict HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body.encode())


def test_a_client_that_never_reads_is_stopped_not_buffered(server: ServerProcess) -> None:
    """Pipelined predictions, no answer read: the server stops reading (the client's sends block)
    instead of buffering answers without bound; once the client reads, every answer comes, in order."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
        sock.settimeout(10)
        sock.connect((server.address, server.port))
        sent, begun, rest, stopped = send_until_stopped(sock, _predictions(50), limit=256 << 20)
        # Without backpressure the server reads on (answers pile up in its memory) and this
        # client sends its 256 MiB; with it, the kernel buffers and a bounded queue fill, and stop.
        assert stopped and sent < 64 << 20, f"the server took {sent:,} bytes and did not stop"
        # Now read (in a thread: the server reads the rest only as its answers are taken) and finish.
        sock.settimeout(30)
        with concurrent.futures.ThreadPoolExecutor(1) as reader:
            answers = reader.submit(read_until_close, sock)
            sock.sendall(rest + b"GET /health/live HTTP/1.1\r\nConnection: close\r\n\r\n")
            out = responses(answers.result(timeout=60))
    assert len(out) == begun + 1 and {status for status, _ in out} == {200}
    keys = [[p["key"] for p in json.loads(body)["predictions"]] for _, body in out[:-1]]
    assert keys == [[f"{i}.{j}." + "k" * 100 for j in range(50)] for i in range(begun)]


def test_unsent_answers_stay_under_the_mark_and_are_dropped_when_stuck(tmp_path: Any) -> None:
    """Inside the server: a connection whose client never reads holds at most the transport's
    high-water mark (plus one answer) of answers, and is dropped after --send-seconds."""
    from taxifare.serving.protocol import WRITE_HIGH_BYTES

    loop_server = LoopServer(str(tmp_path), send_seconds=1.0)
    long_404 = b"GET /" + b"x" * 4000 + b" HTTP/1.1\r\n\r\n"  # answers of about 4 KB
    try:
        with socket.create_connection((loop_server.address, loop_server.port), timeout=10) as sock:
            _, _, _, stopped = send_until_stopped(sock, itertools.repeat(long_404), limit=256 << 20)
            assert stopped

            def state() -> list[tuple[int, bool, bool]]:
                return [
                    (c.transport.get_write_buffer_size(), c.write_paused, c.paused) for c in loop_server.app.connections
                ]

            [(unsent, write_paused, read_paused)] = loop_server.on_loop(state)
            assert write_paused and read_paused
            assert unsent <= WRITE_HIGH_BYTES + 8192
            deadline = time.monotonic() + 20
            while loop_server.on_loop(lambda: len(loop_server.app.connections)) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert loop_server.on_loop(lambda: len(loop_server.app.connections)) == 0
    finally:
        loop_server.stop()


def test_head_answers_never_carry_a_body(server: ServerProcess) -> None:
    """404, 405 and 200 to HEAD on one kept-alive connection: the GET after them still parses."""
    heads = [b"HEAD /nowhere HTTP/1.1\r\n\r\n", b"HEAD /predict HTTP/1.1\r\n\r\n", b"HEAD /model HTTP/1.1\r\n\r\n"]
    last = b"GET /health/live HTTP/1.1\r\nConnection: close\r\n\r\n"
    out = responses(server.raw(b"".join(heads) + last), bodiless=[True, True, True])
    assert [status for status, _ in out] == [404, 405, 200, 200]
    assert json.loads(out[-1][1]) == {"status": "alive"}
    # Errors found while parsing (a body over the limit, a bad target) answer a HEAD without a body too.
    for request, status in (
        (b"HEAD /health/live HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", b"413"),
        (b"HEAD http://x:99999999999/a HTTP/1.1\r\n\r\n", b"400"),
    ):
        answer = server.raw(request)
        assert answer.startswith(b"HTTP/1.1 " + status) and answer.endswith(b"\r\n\r\n"), answer


def test_a_client_that_half_closes_gets_its_answers(server: ServerProcess) -> None:
    one = json.dumps({"instances": [TRIP]}).encode()
    post = b"POST /predict HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(one), one)
    with socket.create_connection((server.address, server.port), timeout=10) as sock:
        sock.sendall(post + b"GET /health/live HTTP/1.1\r\n\r\n" + post)
        sock.shutdown(socket.SHUT_WR)
        out = responses(read_until_close(sock))
    assert [status for status, _ in out] == [200, 200, 200]
    assert "predictions" in json.loads(out[2][1])
    # A request cut short by the half-close never completes: the ones before it are answered, then close.
    with socket.create_connection((server.address, server.port), timeout=10) as sock:
        sock.sendall(post + post[:-3])
        sock.shutdown(socket.SHUT_WR)
        out = responses(read_until_close(sock))
    assert [status for status, _ in out] == [200]


def _chunked_head() -> bytes:
    return b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize(
    "size_line",
    [b"FFFFFFFF\r\n", b"00000000000000ffffffff\r\n", b"2000000;ext=1\r\n", b"10\r\n0123456789abcdef\r\n170000\r\n"],
)
def test_a_chunk_size_over_the_limit_is_a_413_at_once(server: ServerProcess, size_line: bytes) -> None:
    """Announced, not sent: 413 from the size line, not 408 after the --body-seconds deadline."""
    out = responses(server.raw(_chunked_head() + size_line + b"{", timeout=30))
    assert out[0][0] == 413, out
    assert b"--max-body-bytes" in out[0][1]


def test_a_chunk_size_cut_across_reads_is_a_413_at_once(server: ServerProcess) -> None:
    with socket.create_connection((server.address, server.port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for part in (_chunked_head() + b"7F", b"FF", b"FFFF", b"\r\n{"):
            sock.sendall(part)
            time.sleep(0.05)  # most likely separate reads on the server; the answer must not depend on it
        out = responses(read_until_close(sock))
    assert out[0][0] == 413


def test_chunk_sizes_under_the_limit_and_look_alikes_are_not_refused(server: ServerProcess) -> None:
    # A big chunk inside the limit, a trailer whose name is hex, data with a hex line in it.
    one = json.dumps({"instances": [TRIP]}).encode()
    big = one[:-1] + b" " * (1_100_000 - len(one)) + b"}"
    assert 16**5 < len(big) < DEFAULT_MAX_BODY_BYTES
    out = responses(server.raw(_chunked_head() + b"%x\r\n%s\r\n0\r\nABCDEF0: 1\r\n\r\n" % (len(big), big)))
    assert out[0][0] == 200, out
    data = b'{"instances": [%s], "parameters": {"a":\r\n12345678\r\n}}' % json.dumps(TRIP).encode()
    out = responses(server.raw(_chunked_head() + b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)))
    assert out[0][0] == 200, out


def test_the_default_body_limit_is_vertex_s(server: ServerProcess) -> None:
    """1.5 MB, as Vertex AI: a 2 MB request is a 413 that names the limit and the flag to raise it."""
    one = json.dumps({"instances": [TRIP]}).encode()
    for size, want in ((DEFAULT_MAX_BODY_BYTES, 200), (2_000_000, 413)):
        status, _, body = server.call("POST", "/predict", one[:-1] + b" " * (size - len(one)) + b"}")
        assert status == want, body
    message = body["error"]["message"]
    assert "1,500,000 bytes" in message and "--max-body-bytes" in message


def test_pipelined_requests_after_an_error_are_not_read(server: ServerProcess) -> None:
    one = json.dumps({"instances": [TRIP]}).encode()
    post = b"POST /predict HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(one), one)
    out = responses(server.raw(post + b"BROKEN\r\n\r\n" + post))
    assert [status for status, _ in out] == [200, 400]


def test_many_pipelined_requests_are_all_answered_in_order(server: ServerProcess) -> None:
    """More than a connection queues before it stops reading: reading resumes, nothing is lost."""
    one = json.dumps({"instances": [TRIP]}).encode()
    post = b"POST /predict HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(one), one)
    get = b"GET /health/live HTTP/1.1\r\n\r\n"
    data = (post + get) * 150 + b"GET /health/live HTTP/1.1\r\nConnection: close\r\n\r\n"
    out = responses(server.raw(data, timeout=60))
    assert len(out) == 301 and {status for status, _ in out} == {200}
    assert all(("predictions" in json.loads(body)) == (i % 2 == 0) for i, (_, body) in enumerate(out[:-1]))


def test_a_big_body_is_checked_in_slices_that_let_other_clients_in() -> None:
    from taxifare.serving import body

    n = body.SLICE_INSTANCES * 3 + 5
    instances = [{**TRIP, "key": str(i)} for i in range(n)]
    data = json.dumps({"instances": instances, "parameters": {"a": [1]}}).encode()
    assert len(data) > body.SYNC_BODY_BYTES

    async def parse_beside_a_ticker(data: bytes) -> tuple[Any, int]:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.ensure_future(ticker())
        try:
            return await body.parse_instances_async(data), ticks
        finally:
            done = True
            await task

    (rows, keys), ticks = asyncio.run(parse_beside_a_ticker(data))
    assert ticks >= 3  # the loop ran other work between the slices
    want_rows, want_keys = body.parse_instances(data)
    assert np.array_equal(rows, want_rows) and keys == want_keys == [str(i) for i in range(n)]
    instances[n - 2]["passengers"] = "two"
    with pytest.raises(body.HttpError) as err:
        asyncio.run(body.parse_instances_async(json.dumps({"instances": instances}).encode()))
    assert (err.value.instance, err.value.field) == (n - 2, "passengers")


def _mutations(rng: random.Random, n: int) -> list[bytes]:
    """Bodies near valid ones: flipped and inserted bytes, truncations, odd values and shapes."""
    values: list[Any] = [
        None, True, "x", "\ud800", [], {}, 1e308, -1e308, 1e-320, 10**30, -(10**30), 0, -0.0, 2.5, 7, "2",
        [[[[1]]]], {"a": {"b": 1}}, math.inf, math.nan, -73.9, 40.7, 1, 6,
    ]  # fmt: skip
    good = json.dumps({"instances": [{**TRIP, "key": "k"}, TRIP]}).encode()
    out = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            data = bytearray(good)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            out.append(bytes(data))
        elif kind == 1:
            cut = rng.randrange(len(good))
            out.append(good[:cut] + bytes(rng.randrange(256) for _ in range(rng.randint(0, 3))) + good[cut:])
        elif kind == 2:
            instance = {**TRIP, "key": "k"}
            instance[rng.choice([*TRIP, "key", "extra"])] = rng.choice(values)
            out.append(json.dumps({"instances": [TRIP, instance]}, allow_nan=True).encode())
        elif kind == 3:
            shape = rng.choice([[], {}, "x", None, [[TRIP]], {"instances": TRIP}, [TRIP], 5])
            extra = {"parameters": rng.choice(values)} if rng.random() < 0.5 else {}
            out.append(json.dumps({"instances": shape, **extra} if rng.random() < 0.7 else shape).encode())
        else:
            out.append(good[: rng.randrange(len(good))])
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzzed_bodies_never_get_a_5xx_or_a_non_finite_fare(server: ServerProcess, seed: int) -> None:
    bodies = _mutations(random.Random(seed), 2500)
    seen: dict[int, int] = {}
    conn = http.client.HTTPConnection(server.address, server.port, timeout=30)
    deadline = time.monotonic() + 240
    try:
        for data in bodies:
            if time.monotonic() > deadline:
                break
            conn.request("POST", "/predict", data, {"Content-Type": "application/json"})
            response = conn.getresponse()
            answer = json.loads(response.read())
            seen[response.status] = seen.get(response.status, 0) + 1
            assert response.status in (200, 400), (data, answer)
            if response.status == 200:
                fares = [p["fare_amount"] for p in answer["predictions"]]
                assert all(isinstance(f, float) and math.isfinite(f) for f in fares), (data, answer)
            else:
                assert answer["error"]["message"], data
            if response.getheader("Connection") == "close":
                conn.close()
                conn = http.client.HTTPConnection(server.address, server.port, timeout=30)
    finally:
        conn.close()
    assert sum(seen.values()) >= 500 and seen.get(200, 0) > 0 and seen.get(400, 0) > 0, seen
    assert "Traceback" not in server.output()
