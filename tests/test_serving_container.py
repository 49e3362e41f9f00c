"""`taxifare serve` as Vertex AI runs it in a custom serving container: the AIP_* variables,
health before and after the model is fetched from Cloud Storage, SIGTERM, and the deploy's
pre-flight check through the same server.

The image itself is started the same way by tests/test_image.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time

import numpy as np
import pytest
from cloud_fakes import free_port, gated_proxy, gcs_emulator, upload_dir
from serving_helpers import ServerProcess

from taxifare import serving
from taxifare.serving import container, preflight
from trainer import gcs, servable

TRIPS = preflight.probe_instances()


def vertex_env(storage_uri: str, **extra: str) -> dict[str, str]:
    return {
        "AIP_HTTP_PORT": str(free_port()),
        "AIP_HEALTH_ROUTE": "/v1/endpoints/123/deployedModels/456",
        "AIP_PREDICT_ROUTE": "/v1/endpoints/123/deployedModels/456:predict",
        "AIP_STORAGE_URI": storage_uri,
        "AIP_DEPLOYED_MODEL_ID": "456",
        "AIP_MODE": "PREDICTION",
        **extra,
    }


@pytest.fixture
def started(tmp_path):
    servers: list[ServerProcess] = []

    def start(env: dict[str, str], *args: str) -> ServerProcess:
        server = ServerProcess(list(args), str(tmp_path / f"serve{len(servers)}.log"), env=env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_the_aip_variables_set_address_routes_and_model(started, trained):
    env = vertex_env(trained["export_dir"])
    server = started(env)
    assert (server.host, server.port) == ("0.0.0.0", int(env["AIP_HTTP_PORT"]))
    health = env["AIP_HEALTH_ROUTE"]
    assert server.wait_ready(route=health)["status"] == "ready"
    status, headers, body = server.call("POST", env["AIP_PREDICT_ROUTE"], {"instances": TRIPS, "parameters": {}})
    assert status == 200 and headers["content-type"] == "application/json"
    # The container answers predictions only: Vertex AI adds deployedModelId and the model names.
    assert list(body) == ["predictions"]
    fares = [p["fare_amount"] for p in body["predictions"]]
    np.testing.assert_allclose(fares, servable.python_loader_fares(trained["export_dir"]), atol=1e-4)
    assert server.call("GET", env["AIP_PREDICT_ROUTE"])[0] == 405
    assert server.call("POST", health, {"instances": TRIPS})[0] == 405
    # Bad input is the same clear 400 on Vertex AI's route.
    status, _, body = server.call("POST", env["AIP_PREDICT_ROUTE"], {"instances": [{**TRIPS[0], "passengers": "2"}]})
    assert status == 400 and body["error"]["field"] == "passengers"


def test_health_is_503_until_the_model_is_fetched_from_cloud_storage(started, trained, monkeypatch, tmp_path):
    with gcs_emulator(monkeypatch):
        bucket = gcs.client().create_bucket("vertex-copies")
        upload_dir(bucket, trained["export_dir"], "model-456")
        with gated_proxy(os.environ["STORAGE_EMULATOR_HOST"]) as (proxy, gate):
            scratch = tmp_path / "scratch"
            scratch.mkdir()
            env = vertex_env("gs://vertex-copies/model-456", STORAGE_EMULATOR_HOST=proxy, TMPDIR=str(scratch))
            server = started(env)
            for _ in range(3):  # the download is held at the proxy: no model yet
                status, _, body = server.call("GET", env["AIP_HEALTH_ROUTE"])
                assert status == 503 and body["status"] == "unavailable"
                assert server.call("POST", env["AIP_PREDICT_ROUTE"], {"instances": TRIPS})[0] == 503
                time.sleep(0.2)
            assert server.call("GET", "/health/live")[0] == 200  # alive all along (Vertex's TCP probe)
            gate.set()
            assert server.wait_ready(route=env["AIP_HEALTH_ROUTE"], timeout=60)["modelVersionId"] == "model-456"
            status, _, body = server.call("POST", env["AIP_PREDICT_ROUTE"], {"instances": TRIPS})
            assert status == 200 and len(body["predictions"]) == len(TRIPS)
            # Loaded, the downloaded copy is gone (it still serves), and the model is named by its URI.
            assert list(scratch.glob("taxifare-model-*")) == []
            assert server.call("GET", "/model")[2]["modelDir"].startswith("gs://vertex-copies/model-456")


def test_sigterm_answers_the_request_in_flight_then_exits_0(started, trained):
    env = vertex_env(trained["export_dir"])
    server = started(env)
    server.wait_ready(route=env["AIP_HEALTH_ROUTE"])
    body = json.dumps({"instances": TRIPS}).encode()
    head = (
        f"POST {env['AIP_PREDICT_ROUTE']} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + body[:10])  # a request half-way in when the signal comes
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # it stops accepting new connections ...
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            except OSError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("still accepting connections 10 s after SIGTERM")
        assert server.proc.poll() is None  # ... but waits for the request it is receiving
        sock.sendall(body[10:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK", answer[:300]
    assert b"Connection: close" in rest
    assert len(json.loads(rest.split(b"\r\n\r\n", 1)[1])["predictions"]) == len(TRIPS)
    assert server.proc.wait(timeout=30) == 0
    assert "taxifare serve: stopped" in server.output()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AIP_HTTP_PORT": "http"}, "AIP_HTTP_PORT='http' is not a port number"),
        ({"AIP_HTTP_PORT": "8080", "AIP_PREDICT_ROUTE": "predict"}, "AIP_PREDICT_ROUTE='predict' is not a URL path"),
        ({"AIP_HTTP_PORT": "8080", "AIP_STORAGE_URI": ""}, "no model to serve: AIP_STORAGE_URI is empty"),
    ],
)
def test_unusable_container_variables_are_one_line_errors(env, message, capsys, monkeypatch):
    from taxifare import cli

    for name in ("AIP_HTTP_PORT", "AIP_PREDICT_ROUTE", "AIP_HEALTH_ROUTE", "AIP_STORAGE_URI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_the_spec_the_deploy_uploads_is_what_the_server_reads():
    spec = container.container_spec("REGION-docker.pkg.dev/p/r/taxifare:1")
    settings = container.settings(container.environ_for(spec, "gs://b/model"))
    assert (settings.host, settings.port) == ("0.0.0.0", spec["ports"][0]["container_port"])
    assert (settings.predict_route, settings.health_route) == (spec["predict_route"], spec["health_route"])
    assert settings.model_uri == "gs://b/model"
    assert spec["command"] == ["taxifare", "serve"]  # overrides the image's ENTRYPOINT, whatever it is
    # No body limit of its own: the server's default is Vertex AI's request limit, 1.5 MB.
    assert "args" not in spec and "--max-body-bytes" not in spec["command"]
    assert serving.DEFAULT_MAX_BODY_BYTES == serving.VERTEX_REQUEST_BYTES == 1_500_000
    # Vertex AI's start-up and health probes ask the route the server answers readiness on, on its port: 503
    # while TensorFlow imports and the model downloads (the start-up probe waits up to 10 minutes), 200 after.
    for probe in (spec["startup_probe"], spec["health_probe"]):
        assert probe["http_get"] == {"path": settings.health_route, "port": settings.port}
    startup = spec["startup_probe"]
    assert startup["period_seconds"] * startup["failure_threshold"] >= 600 > spec["health_probe"]["failure_threshold"]


def test_preflight_serves_the_model_as_the_container_would(trained):
    spec = container.container_spec("image")
    expected = servable.python_loader_fares(trained["export_dir"])
    fares = preflight.check_server(trained["export_dir"], spec, expected)
    np.testing.assert_allclose(fares, expected, atol=1e-4)
    with pytest.raises(servable.NotServable, match="server answers"):
        preflight.check_server(trained["export_dir"], spec, expected + 1.0)


def test_preflight_refuses_a_model_the_server_cannot_load(trained, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(trained["export_dir"], broken)
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(servable.NotServable, match="broken"):
        preflight.check_server(str(broken), container.container_spec("image"))
