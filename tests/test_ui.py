"""The console (taxifare/ui) over hand-made run records and a hand-made registry: what each page shows,
its JSON, and hostile input of every kind answered with a 4xx and never a file outside the runs
root. The browser tests are in test_ui_browser.py."""

from __future__ import annotations

import html
import json
import os
import re
import socket
import subprocess
import sys
import time

import console_fakes as fakes
import pytest

from taxifare.runs import records, summary
from taxifare.ui import files
from taxifare.ui.guard import host_name

A, B, C = "20261201-100000-aaaaaa", "20261201-110000-bbbbbb", "20261201-120000-cccccc"
BROKEN, HOSTILE, ELSEWHERE = "20261201-090000-dddddd", "20261201-080000-eeeeee", "20261201-070000-ffffff"
SECRET = "the secret outside the runs root"


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("console")
    runs, outside = root / "runs", root / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    fakes.run(str(runs), A, rmse=2.5, version="v0001", started=time.time() - 7200)
    fakes.run(str(runs), B, train_steps=600, rmse=2.7, blessed=False, version=None, started=time.time() - 3600)
    fakes.run(str(runs), C, status="running", upto=1)
    (runs / BROKEN).mkdir()
    (runs / BROKEN / "run.json").write_text('{"version": 2, "run_id": ')
    _hostile_run(str(runs))
    os.symlink(outside, runs / A / "leak")  # a link inside a run's folder that leads out of it
    os.symlink(outside / "secret.txt", runs / A / "tasks" / "evil.log")
    fakes.run(str(outside), ELSEWHERE)  # a whole run outside, linked in under a run id
    os.symlink(outside / ELSEWHERE, runs / ELSEWHERE)
    registry = fakes.registry(str(root / "registry"), {
        "v0001": fakes.version_meta(A, 2.5),
        "v0002": {"run_id": ["not", "a", "string"], "metrics": {"candidate": {"rmse": "2.4"}}, "hparams": 7,
                  "created": None, "source": {"a": 1}, "test_rows": "many"},
    }, "v0001", [{"time": "2026-12-01T10:00:00Z", "to": "v0001", "from": None, "run_id": A, "reason": "first"},
                 {"to": 5}])  # fmt: skip
    os.makedirs(os.path.join(registry, "versions", "v0003"))
    with open(os.path.join(registry, "versions", "v0003", "metadata.json"), "w") as f:
        f.write("{damaged")
    return {"runs": str(runs), "registry": registry}


@pytest.fixture(scope="module")
def served(ws):
    """`taxifare ui` itself, on a free port: what a browser or curl reaches."""
    proc = subprocess.Popen([sys.executable, "-m", "taxifare.cli", "ui", "--port", "0", "--runs-root", ws["runs"],
                             "--registry", ws["registry"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert found, line + proc.stdout.read() if proc.poll() is not None else line
    yield int(found.group(1))
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def client(served):
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{served}", timeout=60) as c:
        yield c


def _hostile_run(runs_root: str) -> None:
    """A record whose free-form parts hold every wrong type and some markup."""
    record = fakes.run(runs_root, HOSTILE, version=None, blessed=False)
    record.tasks["evaluate-model"].summary = ["<script>alert('said')</script>"]
    record.tasks["evaluate-model"].outputs = {
        "metrics": {"uri": 5, "nan": "NaN", "list": [1, 2], "big": 1e308, "flag": True, "ok": 1.5},
        "escape": {"uri": "/etc/passwd", "note": "<img src=x onerror=alert(1)>"},
        "relative": {"uri": "../../outside/secret.txt"},
        "trials": {"uri": "", "trials": [{"learning_rate": 0.01, "rmse": 2.6}, {"learning_rate": "<b>", "x": None}]},
        "Output": {"nested": {"deep": [1, {"x": "y"}]}},
    }
    record.params["hidden_units"] = [{"a": "<i>"}, None]
    records.save(record)


def test_the_runs_table_lists_every_run_with_its_status_source_parameters_and_metrics(ws, client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    for run_id in (A, B, C, BROKEN, HOSTILE):
        assert f'data-run="{run_id}"' in html
    assert ELSEWHERE not in html  # a run folder that is a link elsewhere is not a run here
    assert f'data-run="{C}" data-status="running"' in html and "running train" in html
    assert f'data-run="{BROKEN}" data-status="unreadable"' in html
    assert "generated sample" in html and "train_steps=600" in html and "2.500" in html
    assert 'href="/models/v0001"' in html


def test_the_runs_table_filters_and_sorts(ws, client):
    only = client.get("/parts/runs", params={"status": "running"})
    assert only.headers["x-taxifare-live"] == "1" and re.findall(r'data-run="([^"]+)"', only.text) == [C]
    found = client.get("/", params={"q": 'train_steps": 600'}).text
    assert re.findall(r'data-run="([^"]+)"', found) == [B]
    by_rmse = re.findall(r'data-run="([^"]+)"', client.get("/", params={"sort": "rmse", "order": "asc"}).text)
    assert by_rmse[:2] == [A, B] and set(by_rmse[2:]) == {C, BROKEN, HOSTILE}  # runs without one last
    for bad, said in ({"sort": "evil"}, "sort 'evil' is not one of"), ({"status": "x"}, "status 'x'"), (
        {"order": "up"}, "order 'up'"), ({"q": "x" * 300}, "at most 200"):  # fmt: skip
        answer = client.get("/", params=bad)
        assert answer.status_code == 400 and said in html.unescape(answer.text), bad


def test_a_run_page_shows_its_dag_tasks_artifacts_evaluation_and_lineage(ws, client):
    html = client.get(f"/runs/{A}").text
    states = dict(re.findall(r'<g class="task" data-task="([^"]+)" data-state="([^"]+)"', html))
    assert states == {"stage-data": "succeeded", "train-model": "succeeded", "evaluate-model": "succeeded",
                      "deploy-model": "succeeded"}  # fmt: skip
    assert "if blessed (blessed)" in html and "By kind of trip" in html  # condition; evaluate's own visuals
    assert f'href="/runs/{A}/files/pipeline-root/train-model/model"' in html  # an artifact folder, linked
    assert 'href="/models/v0001"' in html and "16d0479d0134818d" in html  # data -> run -> version
    assert "said its piece" in html and "candidate_rmse" in html
    assert f'data-url="/runs/{A}/log"' in html


def test_a_running_run_is_live_and_its_log_is_followed_from_an_offset(ws, client):
    part = client.get(f"/parts/runs/{C}")
    assert part.headers["x-taxifare-live"] == "1" and 'data-task="train-model" data-state="running"' in part.text
    assert "if blessed<" in part.text  # a pending condition says no verdict yet
    assert client.get(f"/parts/runs/{A}").headers["x-taxifare-live"] == "0"
    first = client.get(f"/runs/{C}/log", params={"task": "train-model"}).json()
    assert first["text"] == "train-model is running\n" and first["live"] and not first["more"]
    with open(os.path.join(ws["runs"], C, "tasks", "train-model.log"), "a") as f:
        f.write("a new line\nhalf a li")
    more = client.get(f"/runs/{C}/log", params={"task": "train-model", "offset": first["offset"]}).json()
    assert more["text"] == "a new line\n"  # a line not ended yet waits for its end
    assert client.get(f"/runs/{C}/log").json()["text"] == f"run {C}\n"  # the run's own log
    assert client.get(f"/runs/{C}/log", params={"task": "deploy-model"}).json()["missing"] is True  # not yet
    assert client.get(f"/runs/{C}/log", params={"task": "nope"}).status_code == 404
    assert client.get(f"/runs/{C}/log", params={"offset": "x"}).status_code == 400


def test_compare_shows_parameter_differences_metric_deltas_and_curves(ws, client):
    html = client.get("/compare", params=[("run", A), ("run", B)]).text
    assert re.search(r'<tr class="differs"><td>train_steps</td><td>300</td><td>600</td>', html)
    assert '<tr class="same"><td>learning_rate</td>' in html
    assert "-0.2000" not in html and "+0.2000" in html  # candidate_rmse 2.5 -> 2.7, a worse change
    assert 'class="delta worse"' in html and "by slice (1)" in html
    assert html.count("<svg") >= 2 and "RMSE by training step" in html  # curves from the logs' progress events
    assert client.get("/compare", params={"run": A}).status_code == 400
    assert client.get("/compare", params=[("run", A), ("run", "20991231-000000-000000")]).status_code == 404
    many = client.get("/compare", params=[("run", f"20261201-10000{i}-aaaaaa") for i in range(9)])
    assert many.status_code == 400 and "at most 8" in many.text


def test_charts_draw_a_metric_by_run_over_time(ws, client):
    html = client.get("/charts").text
    assert "<svg" in html and "candidate_rmse by run" in html and f'href="/runs/{A}"' in html
    assert "baseline_rmse" in html  # the candidate's companions
    assert client.get("/charts", params={"metric": "valid_rmse"}).status_code == 200
    answer = client.get("/charts", params={"metric": "nope"})
    assert answer.status_code == 400 and "choose one of" in answer.text


def test_models_show_versions_the_champion_its_history_and_survive_any_metadata(ws, client):
    html = client.get("/models").text
    assert 'data-version="v0001" class="is-champion"' in html and "★ v0001" in html
    assert 'data-version="v0002"' in html and 'data-version="v0003"' in html and "damaged" in html
    assert "line 2: not a champion move" in html  # the history's bad line, said
    assert f'href="/runs/{A}"' in html and "first" in html
    version = client.get("/models/v0001").text
    assert "generated sample" in version and f'href="/runs/{A}"' in version and "train_steps" in version
    assert client.get("/models/champion").text == version
    assert client.get("/models/v0002").status_code == 200  # wrong types everywhere: shown, not a 500
    assert client.get("/models/v0009").status_code == 404
    assert client.get("/models/latest").status_code == 200


def test_a_hostile_record_is_shown_escaped_and_links_nothing_outside(ws, client):
    html = client.get(f"/runs/{HOSTILE}").text
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#39;said&#39;)&lt;/script&gt;" in html
    assert "<img src=x" not in html and 'href="/etc/passwd"' not in html and "/files/etc" not in html
    assert "<b>" not in html.split("trials")[1][:2000]  # a trials table, cells escaped
    assert "learning_rate" in html and "0.01" in html


def test_the_json_is_what_runs_list_and_show_print(ws, client):
    listed = client.get("/api/runs").json()
    assert listed == [summary.to_json(r) for r in records.list_runs(ws["runs"]) if r.run_id != ELSEWHERE]
    one = client.get(f"/api/runs/{A}").json()
    assert one["run_id"] == A and one["folder"] == os.path.join(ws["runs"], A) and one["tasks"]["train-model"]
    assert client.get("/api/runs/nope").json() == {"error": "no run 'nope': a run id looks like 20250101-120000-a1b2c3"}


def test_paths_from_urls_stay_inside_their_root(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.txt").write_text("x")
    os.symlink("/etc", tmp_path / "a" / "out")
    assert files.inside(str(tmp_path / "a"), "f.txt") == str(tmp_path / "a" / "f.txt")
    for bad in ("", "/etc/passwd", "../a/f.txt", "x/../../f", ".", "a//b", "f.txt\x00", "a\\..\\b", "out/passwd",
                "x" * 2000):  # fmt: skip
        assert files.inside(str(tmp_path / "a"), bad) is None, bad
    assert host_name("127.0.0.1:8765") == "127.0.0.1" and host_name("[::1]:80") == "::1"
    assert host_name("LOCALHOST") == "localhost" and host_name("evil.example:80") == "evil.example"


def _raw(port: int, target: bytes, host: bytes = b"127.0.0.1", method: bytes = b"GET") -> tuple[int, bytes]:
    """One request as written, with no client normalising its path."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data


HOSTILE_TARGETS = [
    f"/runs/{A}/files/../../outside/secret.txt", f"/runs/{A}/files/..%2F..%2Foutside%2Fsecret.txt",
    f"/runs/{A}/files/%2e%2e/%2e%2e/outside/secret.txt", f"/runs/{A}/files//etc/passwd",
    f"/runs/{A}/files/%2Fetc%2Fpasswd", f"/runs/{A}/files/leak/secret.txt", f"/runs/{A}/files/tasks/evil.log",
    f"/runs/{A}/files/a%5c..%5c..%5coutside%5csecret.txt", f"/runs/{A}/files/x%00", f"/runs/{A}/files/",
    f"/runs/{ELSEWHERE}", f"/runs/{ELSEWHERE}/files/run.json", f"/runs/{ELSEWHERE}/log",
    f"/runs/{A}/log?task=../../../outside/secret", f"/runs/{A}/log?task=evil", f"/runs/{A}/log?task=%00",
    f"/runs/{A}/log?offset=99999999999999999999999", "/runs/..%2F..%2Foutside/files/secret.txt", "/runs/%00",
    "/runs/latest", "/static/../../../etc/passwd", "/static/%2e%2e/%2e%2e/app.py", "/static/..%2Fapp.py",
    "/models/..%2F..%2Fetc", "/models/v0001%00", "/models/" + "v" + "9" * 5000, "/nope", "/runs/" + "2" * 3000,
    "/compare?run=../../x&run=%00", "/api/runs/..", "/charts?metric=%ff%fe", "/?q=%ff%fe",
    "/?" + "q=" + "x" * 100_000, "/compare?" + "&".join(f"run={i}" for i in range(5000)),
]  # fmt: skip


@pytest.mark.parametrize("target", HOSTILE_TARGETS, ids=lambda t: t[:60])
def test_hostile_urls_are_a_4xx_or_nothing_secret(served, target):
    status, data = _raw(served, target.encode())
    assert SECRET.encode() not in data and b"root:x:0:0" not in data
    assert b"Traceback" not in data
    assert 400 <= status < 500 or (status == 200 and target.endswith(("%ff%fe", "offset=99999999999999999999999"))), (
        status,
        data[:300],
    )


def test_an_oversized_request_gets_its_4xx_not_a_reset(served):
    """The server refuses a 100 KB request line before reading all of it; closed at once, the unread rest
    made the kernel reset the connection, and the client lost the answer (3 times in 4 here)."""
    for _ in range(20):
        status, data = _raw(served, b"/?q=" + b"x" * 100_000)
        assert 400 <= status < 500 and b"Traceback" not in data


def test_the_console_answers_only_reads_for_this_machine(served):
    assert _raw(served, b"/", host=b"evil.example")[0] == 400  # DNS rebinding: another name for this address
    assert _raw(served, b"/", host=b"localhost:1")[0] == 200
    assert _raw(served, b"/", method=b"POST")[0] == 405
    status, data = _raw(served, b"/")
    head = data.split(b"\r\n\r\n")[0].lower()
    assert status == 200 and b"content-security-policy: default-src 'none'; script-src 'self'" in head
    status, data = _raw(served, f"/runs/{A}/files/pipeline-root/evaluate-model/report".encode())
    assert status == 200 and b"content-security-policy: sandbox;" in data.split(b"\r\n\r\n")[0].lower()


def test_binding_beyond_loopback_needs_a_flag_that_says_there_is_no_authentication(tmp_path):
    from taxifare.ui import server

    argv = [sys.executable, "-m", "taxifare.cli", "ui", "--host", "0.0.0.0", "--port", "0", "--runs-root",
            str(tmp_path)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "no authentication" in done.stderr and "--allow-remote" in done.stderr
    sock = server.bind("0.0.0.0", 0, allow_remote=True)
    sock.close()
    assert server.is_loopback("127.0.0.1") and server.is_loopback("::1") and not server.is_loopback("0.0.0.0")
    done = subprocess.run([*argv[:4], "--port", "70000"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "is not a port" in done.stderr


def test_runs_list_and_show_json(ws, capsys):
    from taxifare import cli

    assert cli.main(["runs", "list", "--json", "--runs-root", ws["runs"]]) == 0
    listed = json.loads(capsys.readouterr().out)
    keys = {
        "run_id",
        "pipeline",
        "status",
        "started",
        "seconds",
        "source",
        "data_fingerprint",
        "test_fingerprint",
        "params",
        "metrics",
        "outcome",
        "deployed_version",
        "champion_change",
        "failed_task",
        "error",
        "folder",
    }
    assert all(set(r) == keys for r in listed)
    first = next(r for r in listed if r["run_id"] == A)
    assert first["metrics"]["candidate_rmse"] == 2.5 and first["deployed_version"] == "v0001"
    assert first["source"] == "generated sample" and first["champion_change"] == [None, "v0001"]
    assert cli.main(["runs", "show", A, "--json", "--runs-root", ws["runs"]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == records.VERSION and shown["dag"][3]["condition"] == "blessed"
    assert shown["tasks"]["deploy-model"]["state"] == "succeeded" and shown["folder"].endswith(A)
