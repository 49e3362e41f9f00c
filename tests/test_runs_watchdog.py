"""Runs that die are visible and do no harm: the record exists from the start, a killed run shows
as interrupted, its task processes die with it, and what it left behind is cleaned up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from taxifare.registry.local import LocalRegistry
from taxifare.runs import local, records, watchdog


def _wait(predicate, seconds: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="the watchdog needs /proc")
def test_task_processes_die_when_the_run_is_killed(tmp_path) -> None:
    """A parent that started the watchdog and two generations of children is SIGKILLed: they all die."""
    pids = tmp_path / "pids"
    parent = textwrap.dedent(
        f"""
        import subprocess, sys, time
        from taxifare.runs import watchdog
        with watchdog.guarded(watchdog.new_token()):
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
            shell = subprocess.Popen(["sh", "-c", "sleep 120 & sleep 120; wait"])
            time.sleep(0.5)
            open({str(pids)!r}, "w").write(f"{{child.pid}} {{shell.pid}}")
            time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        assert _wait(lambda: pids.exists() and pids.read_text(), 60)
        children = [int(p) for p in pids.read_text().split()]
        assert all(_alive(p) for p in children)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert _wait(lambda: not any(_alive(p) for p in children), 30), "task processes outlived the run"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_record_whose_process_is_gone_is_interrupted(tmp_path, capsys) -> None:
    from taxifare import cli

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runs = tmp_path / "runs"
    for run_id, pid in (("20260101-000000-aaaaaa", dead.pid), ("20260101-000001-bbbbbb", os.getpid())):
        (runs / run_id / "tmp" / "tmp.x").mkdir(parents=True)
        process = records.ProcessInfo(pid=pid, host=os.uname().nodename, start=records._process_start(pid), token="t")
        record = records.RunRecord(version=records.VERSION, run_id=run_id, started=time.time(), process=process)
        records.save(record.at(str(runs / run_id)))
    (runs / "20260101-000002-cccccc").mkdir()
    (runs / "20260101-000002-cccccc" / "run.json").write_text('{"run_id": "trunc')
    status = {r.run_id: r.status for r in records.list_runs(str(runs))}
    assert status == {
        "20260101-000000-aaaaaa": "interrupted",
        "20260101-000001-bbbbbb": "running",
        "20260101-000002-cccccc": "unreadable",
    }
    assert cli.main(["runs", "list", "--runs-root", str(runs)]) == 0
    listing = capsys.readouterr().out
    assert "interrupted" in listing and "running" in listing and "unreadable" in listing
    assert cli.main(["runs", "show", "20260101-000000", "--runs-root", str(runs)]) == 0
    assert "INTERRUPTED: the run's process" in capsys.readouterr().out
    local.clean_leftovers(str(runs), str(tmp_path / "registry"))
    assert not (runs / "20260101-000000-aaaaaa" / "tmp").exists()  # the dead run's task folders
    assert (runs / "20260101-000001-bbbbbb" / "tmp").exists()  # a live run's are left alone


@pytest.mark.slow
def test_killing_taxifare_run_kills_its_tasks_and_leaves_a_record(tmp_path, sample_dir) -> None:
    runs, registry = tmp_path / "runs", tmp_path / "registry"
    data = [f"--{s}-data={os.path.join(sample_dir, s + '.csv')}" for s in ("train", "valid", "test")]
    cmd = [sys.executable, "-m", "taxifare.cli", "run", *data, "--train-steps", "200000",
           "--runs-root", str(runs), "--registry", str(registry)]  # fmt: skip
    log = open(tmp_path / "run.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:

        def training() -> records.RunRecord | None:
            found = records.list_runs(str(runs)) if runs.exists() else []
            if found and found[0].task("train-model").state == "running":
                return found[0]
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            return None

        assert _wait(lambda: training() is not None, 300, 0.2), (tmp_path / "run.log").read_text()
        record = training()
        assert record is not None and record.status == "running" and record.process.pid == proc.pid
        token = record.process.token
        assert watchdog.processes_with(token)  # the train task runs in processes of its own
        time.sleep(1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert _wait(lambda: not watchdog.processes_with(token), 30), "task processes outlived taxifare run"
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    [after] = records.list_runs(str(runs))
    assert after.status == "interrupted" and after.tasks["train-model"].state == "running"
    assert LocalRegistry(str(registry)).versions() == [] and not os.path.exists(registry / "aliases.json")


def test_a_run_stopped_by_its_checks_leaves_no_warm_python_and_no_log(tmp_path):
    """`taxifare run` starts the warm Python before it checks its parameters: a check that fails takes
    it down, and its log, at once."""
    from taxifare.errors import UsageError
    from taxifare.runs.subprocess_runner import SubprocessRunner

    with pytest.raises(UsageError, match="bad parameter"), local.preparing(str(tmp_path / "runs")) as prepared:
        assert isinstance(prepared.runner, SubprocessRunner) and prepared.runner.zygote is not None
        pid = prepared.runner.zygote.proc.pid
        assert _alive(pid) and os.path.isfile(prepared.warm_log)
        raise UsageError("bad parameter")
    assert not _alive(pid) and not os.path.exists(prepared.warm_log)
    assert not (tmp_path / "runs").exists()  # no runs root, no run folder, no record: nothing ran
