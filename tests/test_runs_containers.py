"""The container runner's host-side preparation (no engine needed): inputs staged for the image's user."""

from __future__ import annotations

import contextlib
import os
import pathlib

import pytest

from taxifare.errors import UsageError
from taxifare.runs import containers, local, records
from taxifare.runs.subprocess_runner import SubprocessRunner


def test_inputs_are_linked_when_world_readable_and_copied_when_not(tmp_path):
    public, private = tmp_path / "in" / "public.csv", tmp_path / "in" / "private.csv"
    public.parent.mkdir()
    public.write_text("1,2\n")
    private.write_text("3,4\n")
    public.chmod(0o644)
    private.chmod(0o600)
    staged = containers.stage_inputs(f"{public},{private},gs://bucket/more.csv", str(tmp_path / "staged"))
    first, second, remote = staged.split(",")
    assert os.path.samefile(first, public)  # a hard link: nothing copied
    # The private file is copied for the image's user to read, and the user's own stays private.
    assert not os.path.samefile(second, private) and pathlib.Path(second).read_text() == "3,4\n"
    assert (os.stat(second).st_mode & 0o777, private.stat().st_mode & 0o777) == (0o644, 0o600)
    assert remote == "gs://bucket/more.csv"
    # Each file keeps its name (rows without a key are keyed by file name), in a folder of its own.
    assert [os.path.basename(p) for p in (first, second)] == ["public.csv", "private.csv"]
    assert os.path.dirname(first) != os.path.dirname(second)


def _only_record(runs_root: str) -> records.RunRecord:
    (record,) = records.list_runs(runs_root)
    return record


def test_an_engine_that_does_not_answer_is_one_line_and_a_failed_record(tmp_path, sample_dir, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    params = {f"{s}_source": os.path.join(sample_dir, f"{s}.csv") for s in ("train", "valid", "test")}
    runs = str(tmp_path / "runs")
    with pytest.raises(UsageError, match=r"the docker engine at unix://.* does not answer"):
        local.run(runs, {**params, "registry": str(tmp_path / "registry")}, runner_name="container")
    record = _only_record(runs)  # not left "running" (which would read as interrupted)
    assert record.status == "failed" and "does not answer" in record.error


def test_a_runner_failure_that_is_no_tasks_is_recorded_with_its_traceback_logged(tmp_path, sample_dir, monkeypatch):
    """A fault outside every task (here: the disk, as the runner starts) fails the run, not the process."""

    @contextlib.contextmanager
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")
        yield  # pragma: no cover

    monkeypatch.setattr(SubprocessRunner, "prepared", disk_full)
    params = {f"{s}_source": os.path.join(sample_dir, f"{s}.csv") for s in ("train", "valid", "test")}
    runs = str(tmp_path / "runs")
    record = local.run(runs, {**params, "registry": str(tmp_path / "registry")})
    assert record.status == "failed" and record.error.startswith("OSError: [Errno 28] No space left on device")
    assert _only_record(runs).status == "failed"
    log = pathlib.Path(record.folder, "pipeline.log").read_text()
    assert "Traceback" in log and "No space left on device" in log


def test_an_engine_gone_before_the_hand_back_is_a_warning_not_the_runs_outcome(tmp_path, capsys):
    """The run's outcome stands when giving files back fails: one warning with the commands that fix it."""
    gone = containers.Engine(f"unix://{tmp_path / 'no-engine.sock'}", "docker")
    run, registry = tmp_path / "run", tmp_path / "registry"
    run.mkdir()
    containers.hand_back(gone, "localhost/taxifare:latest", str(run), str(registry))
    err = capsys.readouterr().err
    assert err.startswith(f"warning: could not give {run} and {registry} back to you: ")
    assert f"sudo chown -R $(id -u) {run}" in err and "Traceback" not in err


def test_scripts_podman_sh_runs_podman_with_this_machines_containers_conf(tmp_path):
    """`make image` and the image tests go through scripts/podman.sh: it must hand podman a real file."""
    import subprocess

    stand_in = tmp_path / "bin" / "podman"
    stand_in.parent.mkdir()
    stand_in.write_text('#!/bin/sh\necho "$CONTAINERS_CONF" "$@"\n')
    stand_in.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CONTAINERS_CONF"}
    env.update(PATH=f"{stand_in.parent}{os.pathsep}{env['PATH']}", TAXIFARE_IMAGE_CACHE=str(tmp_path / "cache"))
    script = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "podman.sh"
    proc = subprocess.run([str(script), "info"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    conf, arg = proc.stdout.split()
    assert arg == "info" and conf == str(tmp_path / "cache" / "containers.conf")
    assert 'runtime = "runc"' in pathlib.Path(conf).read_text()
