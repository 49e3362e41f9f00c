"""The whole DAG through kfp's local runner: both branches of the gate, and failure safety."""

from __future__ import annotations

import json
import os

import pytest
from cli_capture import run_cli
from cloud_fakes import Webhook, free_port

from taxifare.registry.local import LocalRegistry
from taxifare.runs import local, records

pytestmark = pytest.mark.slow


def _params(sample_dir: str, registry: str, **overrides) -> dict:
    params = {f"{s}_source": os.path.join(sample_dir, f"{s}.csv") for s in ("train", "valid", "test")}
    params.update({"train_steps": 300, "registry": registry, **overrides})
    return params


class _Recorder:
    """A watcher that keeps what it was told, and what was on disk when it was told."""

    def __init__(self, runs_root: str):
        self.runs_root, self.events = runs_root, []

    def started(self, record, log_path):
        on_disk = os.path.join(self.runs_root, record.run_id, "run.json")
        self.events.append(("started", record.run_id, log_path, os.path.isfile(on_disk)))

    def task(self, task):
        self.events.append(("task", task.name, task.state))

    def training(self, progress):
        self.events.append(("training", progress))


@pytest.fixture(scope="module")
def history(tmp_path_factory, sample_dir):
    """One workspace, built whole by this fixture (so each test also passes alone): a deployed run,
    a run the gate stopped, and a run that failed on bad data."""
    root = tmp_path_factory.mktemp("pipeline")
    ws = {"runs": str(root / "runs"), "registry": str(root / "registry")}
    ws["events"] = _Recorder(ws["runs"])
    ws["first"] = local.run(ws["runs"], _params(sample_dir, ws["registry"]), ws["events"])
    # Two steps of training cannot beat the distance rule: the gate must hold. Its webhook is down: a good run
    # tells it nothing, and the exit handler's task does not fail the run.
    down = f"http://127.0.0.1:{free_port()}/hook"
    ws["second"] = local.run(ws["runs"], _params(sample_dir, ws["registry"], train_steps=2, notify_webhook=down))
    bad = root / "bad.csv"
    bad.write_text("8.5,0,0,-73.97,40.76,1,k1\n" * 50 + "8.5,-73.98,40.75,-73.97,40.76,1,k2\n")
    ws["bad_data"] = str(bad)
    ws["hook"] = Webhook()
    ws["failed"] = run_cli("run", "--data", str(bad), "--runs-root", ws["runs"], "--registry", ws["registry"],
                        "--train-steps", "10", "--param", f"notify_webhook={ws['hook'].url}")  # fmt: skip
    yield ws
    ws["hook"].close()


def test_a_watcher_sees_the_run_id_first_then_tasks_and_training_progress(history):
    events, first = history["events"].events, history["first"]
    # The id and log come before anything runs, with the record already on disk (`runs show` works).
    assert events[0] == ("started", first.run_id, os.path.join(first.folder, "pipeline.log"), True)
    tasks = [e[1:] for e in events if e[0] == "task"]
    names = ("stage-data", "tune-hparams", "train-model", "evaluate-model", "deploy-model", "notify-failure")
    assert tasks == [(t, s) for t in names
                     for s in ("running", "succeeded")]  # fmt: skip
    # Training progress arrives while train-model runs, as structured events, ending at the last step.
    names = [e[1] if e[0] == "task" else e[0] for e in events]
    steps = [e[1].step for e in events if e[0] == "training"]
    assert names.index("train-model") < names.index("training") and steps == sorted(steps) and steps[-1] == 300
    assert all(e[1].total == 300 and e[1].eval_rmse > 0 for e in events if e[0] == "training")
    # The warm Python started before the runs root existed: its log waited in the temp folder, then moved in.
    with open(os.path.join(first.folder, "warm.log")) as log:
        assert "zygote: could not preload" not in log.read()
    # Watching takes nothing from the logs: every progress event is still in the run's and the task's.
    for log in (first.log_path(), first.log_path("train-model")):
        with open(log) as f:
            logged = [line for line in f if '"taxifare_event":"progress"' in line]
        assert len(logged) == len(steps)


def test_good_candidate_is_deployed_then_a_worse_one_is_not(history):
    first, second = history["first"], history["second"]
    assert first.status == "succeeded", first.error
    assert [first.tasks[t].state for t in ("stage-data", "train-model", "evaluate-model", "deploy-model")] == [
        "succeeded"
    ] * 4
    assert first.task("evaluate-model").outputs["decision"]["blessed"] and first.deployed_version == "v0001"
    reg = LocalRegistry(history["registry"])
    champion = reg.champion()
    # One run id: the version records the id `taxifare runs show` takes.
    assert champion.name == "v0001" and champion.metadata["run_id"] == first.run_id
    assert champion.metadata["data_fingerprint"]

    assert second.status == "succeeded"
    decision = second.task("evaluate-model").outputs["decision"]
    assert decision["blessed"] is False and "does not beat the distance baseline" in decision["reason"]
    rmse = first.task("evaluate-model").outputs["decision"]  # the candidate that became v0001
    said = second.task("evaluate-model").summary[0]
    assert said.endswith(" (v0001)") and "champion " in said and rmse["blessed"]
    deploy = second.task("deploy-model")
    assert deploy.state == "skipped" and deploy.error.startswith("skipped by the condition 'blessed': not blessed")
    assert second.deployed_version is None
    assert reg.champion().name == "v0001"
    # The exit handler ran after all (its webhook is down, and a good run tells it nothing anyway); the run's
    # headline is still what it came to, not how it was reported.
    notify = second.task("notify-failure")
    assert notify.state == "succeeded" and notify.summary == ["the run succeeded: nothing to report"]
    assert second.headline.startswith("not blessed: ")

    listed = [r.run_id for r in records.list_runs(history["runs"])]
    assert set(listed) >= {first.run_id, second.run_id}
    assert first.run_id != second.run_id


def test_new_data_is_compared_with_the_champions_training_data_before_training(history):
    """The second run's staged rows against v0001's training statistics: same source, no drift; the report shows it."""
    from taxifare.report import run as run_report

    first, second = history["first"], history["second"]
    assert not any("drift" in line for line in first.task("stage-data").summary)  # no champion yet
    said = second.task("stage-data").summary[-1]
    assert said.startswith("drift vs the training data of the champion v0001: PSI") and "threshold 0.25" in said
    assert second.metric("drift_max_psi") < 0.1 and second.metric("drift_flagged") == 0
    page = run_report.html_page(second)
    assert "<h2>Drift</h2>" in page and "no feature moved beyond PSI 0.25" in page


def test_bad_data_fails_the_run_names_the_task_and_leaves_the_champion(history, tmp_path):
    code, out, _ = history["failed"]
    assert code == 1
    assert "FAILED in task stage-data" in out and "pickup_outside_nyc=50" in out
    assert "champion were not changed" in out
    reg = LocalRegistry(history["registry"])
    assert reg.champion().name == "v0001"
    run_id = out.split("taxifare runs show ")[1].split()[0]
    record = records.load(history["runs"], run_id)
    assert record.status == "failed" and record.failed_task == "stage-data"
    assert record.tasks["train-model"].state == "skipped"
    code, shown, _ = run_cli("runs", "show", run_id, "--runs-root", history["runs"])
    assert code == 0 and "✘ stage-data" in shown
    # The exit handler told the webhook, and the run stayed failed (its own task succeeding changes nothing).
    ((path, kind, body),) = history["hook"].posts
    assert path == "/hook" and kind == "application/json" and body["state"] == "FAILED"
    assert body["run"] == record.kfp_job_name and "failed" in body["error"]
    notify = record.tasks["notify-failure"]
    assert notify.state == "succeeded" and notify.summary[-1].startswith("the run ended FAILED: told the webhook")
    assert "finally" in shown and "notify" in shown and record.headline != notify.summary[-1]

    # The same command works once the data is fixed.
    from trainer import sample_data

    fixed = tmp_path / "fixed.csv"
    sample_data.write_csv(sample_data.generate(3000, seed=11), str(fixed))
    code, out, _ = run_cli("run", "--data", str(fixed), "--runs-root", history["runs"], "--registry",
                        history["registry"], "--train-steps", "10")  # fmt: skip
    assert code == 0, out
    assert "SUCCEEDED" in out and "not blessed" in out  # ten steps cannot beat the champion
    assert reg.champion().name == "v0001"


def test_runs_and_models_commands(history):
    runs = ["--runs-root", history["runs"]]
    code, listing, _ = run_cli("runs", "list", *runs)
    assert code == 0 and "succeeded" in listing and "failed" in listing
    code, out, _ = run_cli("models", "list", "--registry", history["registry"])
    assert code == 0 and "★ v0001" in out and history["first"].run_id in out
    code, _, err = run_cli("models", "promote", "v0042", "--registry", history["registry"])
    assert code == 1 and "no version 'v0042'" in err

    # A run by its id, `latest`, a unique prefix, or the kfp job name of its pipeline root.
    first = history["first"]
    newest = records.list_runs(history["runs"])[0].run_id
    assert run_cli("runs", "show", "latest", *runs)[1].startswith(f"run {newest} ")
    assert run_cli("runs", "show", first.run_id[:-2], *runs)[1].startswith(f"run {first.run_id} ")
    assert run_cli("runs", "show", first.kfp_job_name, *runs)[1].startswith(f"run {first.run_id} ")
    code, _, err = run_cli("runs", "show", "2", *runs)  # every run id starts with the year
    assert code == 2 and "matches" in err and "type more of the id" in err
    code, _, err = run_cli("runs", "show", "nope", *runs)
    assert code == 2 and "no run 'nope'" in err and first.run_id in err


def test_run_record_is_json_with_task_durations(history):
    with open(os.path.join(history["first"].folder, "run.json")) as f:
        record = json.load(f)
    for name in ("stage-data", "train-model", "evaluate-model", "deploy-model"):
        assert record["tasks"][name]["state"] == "succeeded"
        assert isinstance(record["tasks"][name]["seconds"], float)
    assert record["params"]["run_id"] == record["run_id"] and record["version"] == records.VERSION
    # The DAG the views draw is the pipeline's own, with its display names and condition.
    assert [(t["name"], t["display"], t["condition"], t["exit"]) for t in record["dag"]] == [
        ("stage-data", "stage data", "", False), ("tune-hparams", "tune", "", False),
        ("train-model", "train", "", False), ("evaluate-model", "evaluate", "", False),
        ("deploy-model", "deploy", "blessed", False), ("notify-failure", "notify", "", True),
    ]  # fmt: skip
    # deploy's `registered` artifact: what the registry got (locally: the version and its metrics).
    registered = record["tasks"]["deploy-model"]["outputs"]["registered"]
    assert registered["version"] == "v0001" and registered["registry"] == "local"


def test_each_run_has_a_report_that_renders_its_dag_evaluation_and_lineage(history, tmp_path):
    from browser import CHROMIUM, not_blank, render

    first, second = history["first"], history["second"]
    code, out, _ = run_cli(
        "runs", "report", first.run_id, "--runs-root", history["runs"], "--out", str(tmp_path / "r.html")
    )
    assert code == 0 and out.strip() == str(tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    for task in ("stage-data", "train-model", "evaluate-model", "deploy-model", "notify-failure"):
        assert f'data-task="{task}" data-state="succeeded"' in html
    assert f"-> run <code>{first.run_id}</code> -> <b>v0001</b>" in html  # data -> run -> version
    assert "By kind of trip" in html and "<svg" in html  # evaluate's own visuals, embedded
    code, _, _ = run_cli(
        "runs", "report", second.run_id, "--runs-root", history["runs"], "--out", str(tmp_path / "s.html")
    )
    assert 'data-task="deploy-model" data-state="skipped"' in (tmp_path / "s.html").read_text()
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium to render (.ci/run installs it)")
    page = render(str(tmp_path / "r.html"))
    assert page.errors == [] and page.requests == [f"file://{tmp_path / 'r.html'}"]
    assert all(t in page.text for t in ("stage data", "train", "evaluate", "deploy"))  # display names
    assert not_blank(page.png)


def test_show_says_where_the_report_is_and_models_show_tells_a_versions_story(history):
    first = history["first"]
    run_cli("runs", "report", first.run_id, "--runs-root", history["runs"])
    code, out, _ = run_cli("runs", "show", first.run_id, "--runs-root", history["runs"])
    assert code == 0 and f"report: {first.folder}/report.html" in out
    code, out, _ = run_cli("models", "show", "v0001", "--registry", history["registry"], "--runs-root", history["runs"])
    assert code == 0
    assert f"run: {first.run_id}" in out and "data fingerprint: " in out and "candidate  RMSE" in out
    assert "train_steps = 300" in out  # the run's parameters, from its record


def test_runs_list_fits_the_terminal_and_never_cuts_a_word(history):
    from taxifare.cli import render

    runs = records.list_runs(history["runs"])
    for width in (80, 100, 160):
        lines = render.runs_table(runs, width=width).splitlines()
        assert all(len(line) <= width for line in lines), width
        head = lines[0].index("OUTCOME")
        for run, line in zip(runs, lines[1:], strict=True):
            reason = " ".join(run.headline.split())
            shown = line[head:]
            if shown.endswith("…"):  # cut where a word ends
                kept = shown[:-1]
                assert reason.startswith(kept) and reason[len(kept) :][:1] in (" ", ",", ";", ":"), (shown, reason)
            else:
                assert shown == reason


def test_tensorboard_is_one_command_away_with_train_and_eval_rmse(history):
    import importlib.util
    import json as _json
    import re
    import subprocess
    import sys
    import time
    import urllib.request

    if importlib.util.find_spec("tensorboard") is None:
        pytest.skip("tensorboard is not installed (make install adds the [tensorboard] extra)")
    argv = [
        sys.executable,
        "-m",
        "taxifare.cli",
        "tensorboard",
        "latest",
        "--runs-root",
        history["runs"],
        "--port",
        "0",
    ]
    # `latest` may be a failed run without logs; ask for the first run explicitly then.
    argv[4] = history["first"].run_id
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, seen, deadline = None, [], time.monotonic() + 120
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            seen.append(line)
            found = re.search(r"(http://[\w.:-]+:\d+)/", line)
            url = found.group(1) if found else None
        assert url, "".join(seen)
        tags = _json.load(urllib.request.urlopen(f"{url}/data/plugin/scalars/tags", timeout=30))
        assert {"rmse", "loss"} <= set(tags["train"]) and {"rmse", "mae", "loss"} <= set(tags["eval"])
    finally:
        proc.terminate()
        proc.wait(30)
    # Stopping the command stops TensorBoard: nothing serving these logs is left behind.
    left = subprocess.run(["pgrep", "-f", f"tensorboard.main --logdir {history['first'].folder}"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert left.stdout == "", left.stdout
    # kfp's per-task temporary folders went under the run's folder, and are gone with the run.
    assert not os.path.exists(os.path.join(history["first"].folder, "tmp"))


def test_a_demo_on_generated_data_does_not_replace_a_champion_of_real_data(tmp_path):
    """The new user's path: a champion trained on their own CSV, then `taxifare run` with no data (the
    generated sample) does not replace it, says why, and --allow-new-source lets it."""
    from trainer import sample_data

    own = tmp_path / "trips.csv"  # the user's own file: no generator's marker beside it
    sample_data.write_csv(sample_data.generate(4000, seed=5), str(own))
    where = ["--runs-root", str(tmp_path / "runs"), "--registry", str(tmp_path / "reg"), "--train-steps", "300"]
    code, out, _ = run_cli("run", "--data", str(own), *where)
    assert code == 0 and "deployed: v0001" in out, out
    code, out, _ = run_cli("run", *where)
    assert code == 0 and "deployed: nothing (the champion stays)" in out
    assert f"the champion v0001 stays: it was trained on files {own}; this candidate on generated sample" in out
    code, out, _ = run_cli("run", *where, "--allow-new-source")
    assert code == 0 and "deployed: v0002" in out and "(a new data source: " in out
    code, listed, _ = run_cli("models", "list", "--registry", str(tmp_path / "reg"))
    assert "/trips.csv" in listed and "generated sample" in listed
    code, moves, _ = run_cli("models", "history", "--registry", str(tmp_path / "reg"), "--json")
    assert [(m["from"], m["to"]) for m in json.loads(moves)] == [(None, "v0001"), ("v0001", "v0002")]
