"""`taxifare serve` over real HTTP: the contract, bad input, hot swap under load, and the clients."""

from __future__ import annotations

import http.client
import http.server
import json
import math
import re
import socket
import threading
import time
from typing import Any

import numpy as np
import pytest
from serving_helpers import TRIP, ServerProcess, responses

from taxifare.errors import CloudError
from taxifare.registry.local import LocalRegistry
from trainer.features import FEATURES

INSTANCES: list[dict[str, Any]] = [
    {**TRIP, "key": "a"},
    {**TRIP, "pickuplon": -73.87, "pickuplat": 40.77},
    {**TRIP, "dropofflon": -73.78, "dropofflat": 40.64, "passengers": 1, "key": 7},
]
MAX_BODY = 1 << 20
VERTEX_PATH = "/v1/projects/my-project/locations/us-central1/endpoints/1234:predict"


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Two tiny, different models (different seeds): export directories."""
    from trainer import sample_data, train

    root = tmp_path_factory.mktemp("serving-models")
    sample_data.write_splits(str(root / "data"), rows=2000, seed=1)
    exports = []
    for seed in (1, 2):
        cfg = train.TrainConfig(
            train_data_paths=str(root / "data" / "train.csv"),
            eval_data_paths=str(root / "data" / "valid.csv"),
            output_dir=str(root / f"run{seed}"),
            train_steps=50,
            seed=seed,
        )
        exports.append(train.train_and_evaluate(cfg)["export_dir"])
    return exports


@pytest.fixture(scope="session")
def expected(models: list[str]) -> list[list[dict]]:
    """What `taxifare predict --model-dir` gives for INSTANCES, per model."""
    from trainer.predict import Predictor

    return [Predictor(m).predict_instances(INSTANCES) for m in models]


@pytest.fixture(scope="module")
def server(models: list[str], tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("registry")
    registry = LocalRegistry(str(root / "reg"))
    registry.promote(registry.register(models[0], {"rmse": 4.5, "mae": 2.5, "run_id": "r1"}).name)
    proc = ServerProcess(["--registry", registry.root, "--max-body-bytes", str(MAX_BODY)], str(root / "server.log"))
    try:
        proc.wait_ready("v0001")
        yield proc
    finally:
        proc.stop()


# --- the contract ---------------------------------------------------------------------


def test_predict_route_matches_local_predictions(server: ServerProcess, expected: list[list[dict]]) -> None:
    status, headers, body = server.call("POST", "/predict", {"instances": INSTANCES})
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert body == {
        "predictions": expected[0],
        "deployedModelId": "taxifare-v0001",
        "model": "taxifare",
        "modelVersionId": "v0001",
    }
    assert body["predictions"][0]["key"] == "a" and "key" not in body["predictions"][1]
    assert body["predictions"][2]["key"] == "7"  # integer keys come back as strings, as from --model-dir


def test_vertex_route_speaks_the_vertex_contract(server: ServerProcess, expected: list[list[dict]]) -> None:
    status, _, body = server.call("POST", VERTEX_PATH, {"instances": INSTANCES, "parameters": {"anything": 1}})
    assert status == 200, body
    assert body["predictions"] == expected[0]
    assert body["model"] == "projects/my-project/locations/us-central1/models/taxifare"
    assert body["modelVersionId"] == "v0001" and body["deployedModelId"]
    # A percent-encoded colon is the same route.
    status, _, body = server.call("POST", VERTEX_PATH.replace(":", "%3A"), {"instances": INSTANCES[:1]})
    assert status == 200 and body["predictions"] == expected[0][:1]


def test_many_instances_in_one_request(server: ServerProcess, models: list[str]) -> None:
    from trainer.predict import Predictor

    rng = np.random.default_rng(0)
    instances = [
        {
            "pickuplon": float(rng.uniform(-74.05, -73.75)),
            "pickuplat": float(rng.uniform(40.6, 40.85)),
            "dropofflon": float(rng.uniform(-74.05, -73.75)),
            "dropofflat": float(rng.uniform(40.6, 40.85)),
            "passengers": int(rng.integers(1, 7)),
            "key": f"k{i}",
        }
        for i in range(2000)
    ]
    status, _, body = server.call("POST", "/predict", {"instances": instances})
    assert status == 200
    assert body["predictions"] == Predictor(models[0]).predict_instances(instances)


def test_health_and_model_routes(server: ServerProcess) -> None:
    assert server.call("GET", "/health/live")[:3:2] == (200, {"status": "alive"})
    assert server.call("GET", "/health/ready")[:3:2] == (200, {"status": "ready", "modelVersionId": "v0001"})
    status, _, model = server.call("GET", "/model")
    assert status == 200
    assert model["modelVersionId"] == "v0001" and model["source"] == "registry"
    assert model["metrics"] == {"rmse": 4.5, "mae": 2.5}
    assert model["metadata"]["run_id"] == "r1"
    assert model["signature"]["name"] == "serving_default"
    assert sorted(model["signature"]["inputs"]) == sorted(FEATURES)
    assert model["signature"]["inputs"]["pickuplon"] == {"dtype": "float32", "shape": [None]}
    assert list(model["signature"]["outputs"]) == ["fare_amount"]
    status, _, body = server.call("HEAD", "/health/ready")
    assert status == 200 and body is None


# --- bad input: always a 4xx with a JSON error, never a 500, never a dead server -----

BAD_BODIES = {
    "malformed JSON": (b'{"instances": [', None, None, "not valid JSON"),
    "not UTF-8": (b'{"instances": [\xff]}', None, None, "not valid JSON"),
    "body not an object": (b"[1, 2]", None, None, "must be a JSON object"),
    "no instances": (b'{"parameters": {}}', None, "instances", "missing"),
    "instances not a list": (b'{"instances": {"a": 1}}', None, "instances", "not a JSON array"),
    "empty instances": (b'{"instances": []}', None, "instances", "empty"),
    "unknown top-level field": (b'{"instances": [], "inputs": []}', None, "inputs", "unknown top-level field"),
    "instance not an object": (b'{"instances": [[1, 2, 3, 4, 5]]}', 0, None, "expected a JSON object"),
    "missing field": (
        {"instances": [TRIP, {k: v for k, v in TRIP.items() if k != "dropofflat"}]},
        1,
        "dropofflat",
        "missing",
    ),
    "extra field": ({"instances": [{**TRIP, "color": "yellow"}]}, 0, "color", "unknown field"),
    "string number": ({"instances": [TRIP, TRIP, {**TRIP, "passengers": "2"}]}, 2, "passengers", "not a number"),
    "null value": ({"instances": [{**TRIP, "pickuplat": None}]}, 0, "pickuplat", "not a number"),
    "boolean value": ({"instances": [{**TRIP, "passengers": True}]}, 0, "passengers", "not a number"),
    "NaN": (
        b'{"instances": [%s, {"pickuplon": -73.9, "pickuplat": NaN, "dropofflon": -73.9, "dropofflat": 40.7, '
        b'"passengers": 1}]}' % json.dumps(TRIP).encode(),
        1,
        "pickuplat",
        "finite",
    ),
    "Infinity": (json.dumps({"instances": [{**TRIP, "dropofflon": math.inf}]}).encode(), 0, "dropofflon", "finite"),
    "-Infinity": (json.dumps({"instances": [{**TRIP, "pickuplon": -math.inf}]}).encode(), 0, "pickuplon", "finite"),
    "overflowing float": (
        json.dumps({"instances": [TRIP]}).replace("40.75", "1e400").encode(),
        0,
        "pickuplat",
        "finite",
    ),
    "overflowing integer": (
        json.dumps({"instances": [{**TRIP, "passengers": 10**400}]}).encode(),
        0,
        "passengers",
        "finite",
    ),
    "integer past Python's digit limit": (
        b'{"instances": [%s]}' % json.dumps({**TRIP, "passengers": 0}).replace("0}", "1" * 5000 + "}").encode(),
        0,
        "passengers",
        "finite",
    ),
    "beyond float32": ({"instances": [{**TRIP, "dropofflat": 1e39}]}, 0, "dropofflat", "outside"),
    "huge longitude": ({"instances": [TRIP, {**TRIP, "pickuplon": 1e30}]}, 1, "pickuplon", "outside"),
    "outside NYC": ({"instances": [{**TRIP, "dropofflat": 45.0}]}, 0, "dropofflat", "outside 40.2 to 41.7"),
    "too many passengers": ({"instances": [{**TRIP, "passengers": 1e20}]}, 0, "passengers", "outside 1 to 6"),
    "no passengers": ({"instances": [{**TRIP, "passengers": 0}]}, 0, "passengers", "outside 1 to 6"),
    "half a passenger": ({"instances": [{**TRIP, "passengers": 2.5}]}, 0, "passengers", "whole number"),
    "lone surrogate in a key": (
        b'{"instances": [%s]}' % json.dumps({**TRIP, "key": "\ud800"}).encode(),
        0,
        "key",
        "Unicode",
    ),
    "surrogate bytes in a key": (
        b'{"instances": [%s]}' % json.dumps({**TRIP, "key": "K"}).encode().replace(b'"K"', b'"\xed\xa0\x80"'),
        0,
        "key",
        "Unicode",
    ),
    "invalid UTF-8 in a key": (
        b'{"instances": [%s]}' % json.dumps({**TRIP, "key": "K"}).encode().replace(b'"K"', b'"a\xffb"'),
        0,
        "key",
        "Unicode",
    ),
    "boolean key": ({"instances": [{**TRIP, "key": True}]}, 0, "key", "string or an integer"),
    "parameters nested deep": (
        b'{"instances": [%s], "parameters": %s}' % (json.dumps(TRIP).encode(), b"[" * 1000 + b"]" * 1000),
        None,
        "parameters",
        "nested too deeply",
    ),
    "key not a scalar": ({"instances": [{**TRIP, "key": ["a"]}]}, 0, "key", "string or an integer"),
    "deep nesting": (b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None, "instances", "nested"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
@pytest.mark.parametrize("path", ["/predict", VERTEX_PATH])
def test_bad_input_is_a_400_naming_instance_and_field(server: ServerProcess, case: str, path: str) -> None:
    body, instance, field, words = BAD_BODIES[case]
    status, headers, answer = server.call("POST", path, body)
    assert status == 400, answer
    assert headers["content-type"] == "application/json"
    error = answer["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert words in error["message"]
    assert error.get("instance") == instance
    assert error.get("field") == field
    if instance is not None:
        assert f"instance {instance}" in error["message"]
    if field is not None:
        assert repr(field) in error["message"] or field in error["message"]


def test_body_over_the_limit_is_a_413(server: ServerProcess) -> None:
    big = {"instances": [TRIP] * (MAX_BODY // len(json.dumps(TRIP)) + 10)}
    status, headers, body = server.call("POST", "/predict", big)
    assert status == 413 and body["error"]["code"] == 413
    assert headers["connection"] == "close"
    # Announced but never sent: refused from the headers alone.
    out = server.raw(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
    assert responses(out)[0][0] == 413
    # Chunked bodies count too.
    chunk = b"x" * 65536
    data = b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    data += (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 20
    assert responses(server.raw(data))[0][0] == 413


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/", 404, None),
        ("POST", "/v1/predict", 404, None),
        ("POST", "/v1/projects/p/locations/l/endpoints/e:explain", 404, None),
        ("GET", "/predict", 405, "POST"),
        ("PUT", VERTEX_PATH, 405, "POST"),
        ("POST", "/health/live", 405, "GET, HEAD"),
        ("DELETE", "/model", 405, "GET, HEAD"),
    ],
)
def test_unknown_routes_404_wrong_methods_405(
    server: ServerProcess, method: str, path: str, status: int, allow: str | None
) -> None:
    got, headers, body = server.call(method, path, {"instances": INSTANCES} if method != "GET" else None)
    assert got == status
    assert body["error"]["code"] == status
    assert headers.get("allow") == allow


def test_http_details(server: ServerProcess, expected: list[list[dict]]) -> None:
    one = json.dumps({"instances": INSTANCES[:1]}).encode()
    post = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(one), one)
    # Pipelined requests on one connection are answered in order.
    out = responses(server.raw(post * 3 + b"GET /health/live HTTP/1.1\r\nConnection: close\r\n\r\n"))
    assert [s for s, _ in out] == [200, 200, 200, 200]
    assert json.loads(out[0][1])["predictions"] == expected[0][:1]
    # Chunked request bodies.
    chunked = b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    chunked += b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, one[:10], len(one) - 10, one[10:])
    out = responses(server.raw(chunked))
    assert out[0][0] == 200 and json.loads(out[0][1])["predictions"] == expected[0][:1]
    # Expect: 100-continue gets its interim answer first.
    head = b"POST /predict HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head % len(one))
        assert sock.recv(1000) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(one)
        out = responses(b"".join(iter(lambda: sock.recv(65536), b"")))
    assert out[0][0] == 200 and json.loads(out[0][1])["predictions"] == expected[0][:1]
    # Broken or ambiguous HTTP gets a 400 and a closed connection, not a crash: strict
    # where h11 is (the request-smuggling vectors a proxy in front could read differently).
    for broken, status in (
        (b"NONSENSE\r\n\r\n", 400),
        (b"POST /predict HTTP/1.1\r\nContent-Length: nope\r\n\r\n", 400),
        (b"POST /predict HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
        (b"POST /predict HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
        (b"POST /predict HTTP/1.1\r\nContent-Length:\x0b3\x0b\r\n\r\nabc", 400),
        (b"POST /predict HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST /predict HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST /predict HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\na\r\n0\r\n\r\n", 400),
        (b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\na\r\n0\r\n\r\n", 400),
        (b"GET /health/live HTTP/2.0\r\n\r\n", 400),
        (b"GET /health/live HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /health/live HTTP/1.1\nHost: x\n\n", 400),  # bare LF: refused, not left hanging
        (b"GET /health/live HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
        (b"GET /health/live HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (b"CONNECT example.com:443 HTTP/1.1\r\n\r\n", 400),
    ):
        out = responses(server.raw(broken))
        assert out and out[0][0] == status, broken
        assert b"connection: close" in server.raw(broken).lower(), broken
    # HEAD says what GET would send.
    get = server.raw(b"GET /model HTTP/1.1\r\nConnection: close\r\n\r\n")
    head = server.raw(b"HEAD /model HTTP/1.1\r\nConnection: close\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
    assert length == len(get.partition(b"\r\n\r\n")[2]) > 0 and head.endswith(b"\r\n\r\n")
    out = responses(server.raw(b"GET /health/live HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"))
    assert out[0][0] == 431
    # A client that hangs up mid-request does no harm.
    server.raw(post[:-5], timeout=0.2)
    assert server.call("GET", "/health/ready")[0] == 200


def test_server_is_still_healthy_after_the_abuse(server: ServerProcess, expected: list[list[dict]]) -> None:
    status, _, body = server.call("POST", "/predict", {"instances": INSTANCES})
    assert status == 200 and body["predictions"] == expected[0]
    assert "Traceback" not in server.output()


# --- the clients ----------------------------------------------------------------------


def test_cli_predict_endpoint_matches_model_dir(
    server: ServerProcess, models: list[str], tmp_path: Any, capsys: pytest.CaptureFixture
) -> None:
    from taxifare import cli

    path = tmp_path / "instances.json"
    path.write_text("\n".join(json.dumps(i) for i in INSTANCES) + "\n")
    assert cli.main(["predict", "--endpoint", server.url, "--json-instances", str(path)]) == 0
    served = capsys.readouterr().out
    assert cli.main(["predict", "--endpoint", server.url + VERTEX_PATH, "--json-instances", str(path)]) == 0
    served_vertex_route = capsys.readouterr().out
    assert cli.main(["predict", "--model-dir", models[0], "--json-instances", str(path)]) == 0
    local = capsys.readouterr().out
    assert served == local == served_vertex_route
    assert len(local.splitlines()) == len(INSTANCES)


def test_client_errors_name_the_problem(server: ServerProcess) -> None:
    from taxifare.serving import client

    with pytest.raises(CloudError, match=r"400: instance 1, field 'passengers': not a number"):
        client.predict(server.url, [TRIP, {**TRIP, "passengers": "two"}])
    with pytest.raises(CloudError, match="cannot reach"):
        client.predict("http://127.0.0.1:9/predict", [TRIP], timeout=5)
    with pytest.raises(CloudError, match="projects/P/locations/R/endpoints/ID"):
        client.predict("my-endpoint", [TRIP])


class _Capture(http.server.BaseHTTPRequestHandler):
    """Stands in for Vertex AI's REST API: records requests, answers like a TF Serving deployment."""

    requests: list[dict] = []  # noqa: RUF012 - reset per test
    status = 200

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.loads(raw)
        request = {"path": self.path, "body": body, "content_type": self.headers["Content-Type"], "bytes": len(raw)}
        type(self).requests.append(request)
        if type(self).status == 200:
            n = len(body["instances"])
            answer: dict = {
                "predictions": [10.5 + i for i in range(n)],
                "deployedModelId": "555",
                "model": "projects/1/locations/us-central1/models/9",
                "modelVersionId": "1",
            }
        else:
            answer = {"error": {"code": 400, "message": "bad instances", "status": "INVALID_ARGUMENT"}}
        data = json.dumps(answer).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def vertex_capture():
    _Capture.requests, _Capture.status = [], 200
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_vertex_endpoint_client_sends_five_fields_and_reattaches_keys(vertex_capture: str) -> None:
    from google.auth.credentials import AnonymousCredentials

    from taxifare.serving import client

    name = "projects/my-project/locations/us-central1/endpoints/1234"
    got = client.predict(name, INSTANCES, api_endpoint=vertex_capture, credentials=AnonymousCredentials())
    assert got == [{"fare_amount": 10.5, "key": "a"}, {"fare_amount": 11.5}, {"fare_amount": 12.5, "key": "7"}]
    [request] = _Capture.requests
    path, _, query = request["path"].partition("?")
    assert path == f"/v1/{name}:predict"
    assert "alt=json" in query  # the REST transport's own query
    assert request["content_type"].startswith("application/json")
    assert request["body"] == {"instances": [{f: float(i[f]) for f in FEATURES} for i in INSTANCES]}

    _Capture.status = 400
    with pytest.raises(CloudError, match="bad instances"):
        client.predict(name, INSTANCES, api_endpoint=vertex_capture, credentials=AnonymousCredentials())


def test_vertex_endpoint_client_splits_batches_under_the_request_limit(vertex_capture: str) -> None:
    from google.auth.credentials import AnonymousCredentials

    from taxifare.serving import VERTEX_REQUEST_BYTES, client

    name = "projects/my-project/locations/us-central1/endpoints/1234"
    instances = [{**TRIP, "key": f"k{i}"} for i in range(2500)]
    for limit, most in ((VERTEX_REQUEST_BYTES, client.VERTEX_CHUNK), (10_000, 10_000 // client.VERTEX_INSTANCE_BYTES)):
        _Capture.requests = []
        got = client.predict(
            name, instances, api_endpoint=vertex_capture, credentials=AnonymousCredentials(), max_request_bytes=limit
        )
        sizes = [len(r["body"]["instances"]) for r in _Capture.requests]
        assert sum(sizes) == len(instances) and max(sizes) <= most and len(sizes) >= len(instances) / most
        assert max(r["bytes"] for r in _Capture.requests) <= limit
        # The capture answers 10.5 + i for the i-th instance of each request: joined in order, keys put back.
        want = [{"fare_amount": 10.5 + j, "key": f"k{start + j}"} for start, n in _runs(sizes) for j in range(n)]
        assert got == want


def _runs(sizes: list[int]) -> list[tuple[int, int]]:
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return list(zip(starts, sizes, strict=True))


def test_client_splits_big_batches_into_requests_under_the_limit(server: ServerProcess, models: list[str]) -> None:
    """The server here takes 1 MiB bodies: 2.4 MB of instances go as three requests, answered in order."""
    from taxifare.serving import client
    from trainer.predict import Predictor

    instances = [{**INSTANCES[i % 3], "key": f"{i}:" + "k" * 700} for i in range(3000)]
    assert len(json.dumps({"instances": instances})) > 2 * MAX_BODY
    got = client.predict(server.url, instances, max_request_bytes=MAX_BODY)
    assert got == Predictor(models[0]).predict_instances(instances)
    parts = list(client.batches([len(json.dumps(i)) for i in instances], MAX_BODY, client.LOCAL_CHUNK))
    assert len(parts) == 3 and [p.start for p in parts] == sorted(p.start for p in parts)
    with pytest.raises(CloudError, match=r"instance 1 alone is [\d,]+ bytes of JSON, over the request limit"):
        client.predict(server.url, [TRIP, {**TRIP, "key": "k" * MAX_BODY}], max_request_bytes=MAX_BODY)


def test_client_normalises_prediction_shapes() -> None:
    from taxifare.serving.client import _normalise

    assert _normalise(12.34567, "k", "x") == {"fare_amount": 12.3457, "key": "k"}
    assert _normalise([12.5], None, "x") == {"fare_amount": 12.5}
    assert _normalise({"fare_amount": [3.25], "key": "z"}, "k", "x") == {"fare_amount": 3.25, "key": "k"}
    with pytest.raises(CloudError):
        _normalise({"price": 1}, None, "x")


# --- units behind the fast path -------------------------------------------------------


def test_rounding_matches_format_predictions() -> None:
    from taxifare.serving.body import rounded
    from trainer.predict import format_predictions

    rng = np.random.default_rng(1)
    fares = np.concatenate(
        [
            rng.uniform(0, 200, 20_000),
            rng.uniform(-1e6, 1e6, 5_000),
            np.round(rng.uniform(0, 100, 5_000), 4) + 0.00005,  # near ties
            [0.0, -0.0, 1e-8, 0.00005, 123456.78125, 3.4e38, -3.4e38],
        ]
    ).astype(np.float32)
    assert rounded(fares) == [p["fare_amount"] for p in format_predictions(fares, [None] * len(fares))]


@pytest.mark.parametrize(
    "instances",
    [
        [TRIP],
        INSTANCES,
        [{**TRIP, "key": ""}, {**TRIP, "key": None}, {**TRIP, "key": 12345678901234567890}],
        [{**TRIP, "passengers": 3.0, "pickuplon": -74}],
        [{**TRIP, "passengers": 6, "pickuplat": 41.7, "pickuplon": -74.5, "dropofflon": -72.8, "dropofflat": 40.2}],
    ],
)
def test_fast_parse_agrees_with_check_instances(instances: list[dict]) -> None:
    from taxifare.serving.body import parse_instances
    from trainer.predict import check_instances

    raw, keys = parse_instances(json.dumps({"instances": instances}).encode())
    want_raw, want_keys = check_instances(instances)
    assert raw.dtype == np.float32 and np.array_equal(raw, want_raw)
    assert keys == want_keys


def test_serve_flags_are_checked(tmp_path: Any, capsys: pytest.CaptureFixture, monkeypatch) -> None:
    from taxifare import cli

    monkeypatch.delenv("AIP_HTTP_PORT", raising=False)
    assert cli.main(["serve", "--model-dir", str(tmp_path / "nothing")]) == 2
    assert "--model-dir" in capsys.readouterr().err
    assert cli.main(["serve", "--registry", str(tmp_path / "nothing")]) == 2
    assert "--registry" in capsys.readouterr().err
    # Outside a Vertex AI container one of --model-dir / --registry is required.
    assert cli.main(["serve"]) == 2
    assert "give --model-dir DIR or --registry DIR" in capsys.readouterr().err
    assert cli.main(["serve", "--model-dir", "gs://a/b", "--registry", "b"]) == 2  # not both
    assert "not allowed with argument" in capsys.readouterr().err


# --- a new champion, under load -------------------------------------------------------


def test_promoted_champion_is_swapped_in_under_load(
    models: list[str], expected: list[list[dict]], tmp_path: Any
) -> None:
    registry = LocalRegistry(str(tmp_path / "reg"))
    first = registry.register(models[0], {"rmse": 5.0}).name
    second = registry.register(models[1], {"rmse": 4.0}).name
    proc = ServerProcess(["--registry", registry.root, "--poll-seconds", "0.05"], str(tmp_path / "server.log"))
    try:
        # Up but nothing to serve yet: alive, not ready, predictions refused with 503.
        assert proc.call("GET", "/health/live")[0] == 200
        assert proc.call("GET", "/health/ready")[0] == 503
        status, _, body = proc.call("POST", "/predict", {"instances": INSTANCES})
        assert status == 503 and "no champion" in body["error"]["message"]
        registry.promote(first)
        proc.wait_ready(first)

        want = {first: expected[0], second: expected[1]}
        assert want[first] != want[second]
        seen: list[list[tuple[int, str | None]]] = [[] for _ in range(4)]
        wrong: list[Any] = []
        stop = threading.Event()

        def hammer(log: list[tuple[int, str | None]]) -> None:
            conn = http.client.HTTPConnection(proc.host, proc.port, timeout=30)
            data = json.dumps({"instances": INSTANCES}).encode()
            try:
                for _ in range(20_000):  # bounded; normally stopped by `stop` well before
                    if stop.is_set():
                        break
                    conn.request("POST", "/predict", data, {"Content-Type": "application/json"})
                    response = conn.getresponse()
                    answer = json.loads(response.read())
                    version = answer.get("modelVersionId")
                    log.append((response.status, version))
                    if response.status != 200 or answer["predictions"] != want.get(version):
                        wrong.append(answer)
            finally:
                conn.close()

        threads = [threading.Thread(target=hammer, args=(log,)) for log in seen]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 30
            while min(len(log) for log in seen) < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            registry.promote(second)
            while time.monotonic() < deadline:
                if (
                    all(log and log[-1][1] == second for log in seen)
                    and min(sum(v == second for _, v in log) for log in seen) >= 20
                ):
                    break
                time.sleep(0.01)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)

        assert not wrong, wrong[:3]
        for log in seen:
            versions = [v for _, v in log]
            assert versions[0] == first and versions[-1] == second
            swap = versions.index(second)
            assert set(versions[:swap]) == {first} and set(versions[swap:]) == {second}  # no flapping back
        assert proc.call("GET", "/model")[2]["modelVersionId"] == second
        assert "serving v0002" in proc.output() and "replacing v0001" in proc.output()
    finally:
        proc.stop()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--poll-seconds", "nan"], "'nan' is not a finite number"),
        (["--poll-seconds", "inf"], "'inf' is not a finite number"),  # would never poll again
        (["--poll-seconds", "0"], "poll_seconds must be a number above 0 and at most 3600, got 0"),
        (["--drain-seconds", "nan"], "'nan' is not a finite number"),
        (["--drain-seconds", "-1"], "drain_seconds must be from 0 to 3600, got -1"),
        (["--tf-threads", "-1"], "tf_threads must be a whole number from 0 to 256, got -1"),
        (["--max-body-bytes", "10"], "max_body_bytes must be a whole number from 1024 to 1,073,741,824, got 10"),
        (["--max-connections", "0"], "max_connections must be a whole number from 1 to 100,000, got 0"),
        (["--head-seconds", "1e400"], "'1e400' is not a finite number"),
    ],
)
def test_every_numeric_serve_flag_is_checked_once_before_anything_loads(flags, message, tmp_path, capsys):
    """One line naming the flag and the allowed range, exit status 2, no traceback, nothing served."""
    from taxifare import cli

    code = cli.main(["serve", "--registry", str(tmp_path), *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
