"""Run records are untrusted input: checked by type and shape, one line naming the file when they are
not records, and never used as a path outside their own folder."""

from __future__ import annotations

import json
import os
import time

import pytest

from taxifare.errors import RecordError
from taxifare.runs import local, records
from taxifare.runs.status import Status


def _write(folder, payload) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "run.json"), "w") as f:
        f.write(payload if isinstance(payload, str) else json.dumps(payload))


def test_a_crafted_record_never_makes_a_run_delete_outside_its_folder(tmp_path):
    """The hostile tester's record: `"run_id": "/some/dir"`, status running, a dead process. The next
    run's clean-up used to delete /some/dir/tmp and exit 0."""
    victim = tmp_path / "victim"
    (victim / "tmp").mkdir(parents=True)
    (victim / "tmp" / "precious").write_text("keep me")
    runs = tmp_path / "runs"
    dead = {"pid": 2**22 + 7, "host": os.uname().nodename, "start": None, "token": "t"}
    crafted = {"version": records.VERSION, "run_id": str(victim), "status": "running", "started": time.time(),
               "process": dead}  # fmt: skip
    _write(runs / "x", crafted)  # not a run folder's name: not a run
    _write(runs / "20260101-000000-aaaaaa", crafted)  # a run folder's name, another run's id
    (runs / "20260101-000000-aaaaaa" / "tmp").mkdir()
    local.clean_leftovers(str(runs), "")
    assert (victim / "tmp" / "precious").read_text() == "keep me"
    (listed,) = records.list_runs(str(runs))
    assert listed.status == Status.UNREADABLE and f"names run {str(victim)!r}, not its folder's" in listed.error


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ('{"version": 2, "run_id": "20260101-000000-aaaaaa", "started": "yesterday"}', "Expected `float`"),
        ('{"version": 2, "run_id": "20260101-000000-aaaaaa", "started": 1, "tasks": {"t": {"name": 5}}}',
         "Expected `str`, got `int` - at `$.tasks[...].name`"),
        ('{"version": 2, "run_id": "20260101-000000-aaaaaa", "started": 1, "status": "bogus"}', "Invalid enum"),
        ('{"version": 2, "run_id": "20260101-000000-aaaaaa", "started": 1, "dag": "stage"}', "Expected `array`"),
        ('{"run_id": "20260101-000000-aaaaaa", "status": "running", "started": 1}', "written by an older taxifare"),
        ('{"version": 9, "run_id": "20260101-000000-aaaaaa", "started": 1}', "a version 9 record"),
        ('{"version": 2, "run_id": "trunc', "not valid JSON"),
        ("[" * 100_000, "Expected `object`, got `array`"),
    ],
)  # fmt: skip
def test_a_record_that_is_not_one_is_one_line_naming_the_file(tmp_path, payload, problem):
    folder = tmp_path / "20260101-000000-aaaaaa"
    _write(folder, payload)
    with pytest.raises(RecordError) as err:
        records.read(str(folder))
    assert problem in str(err.value) and str(folder / "run.json") in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["a directory", "a named pipe", "huge"])
def test_a_record_file_that_is_not_a_file_is_refused_without_blocking(tmp_path, kind):
    folder = tmp_path / "20260101-000000-aaaaaa"
    folder.mkdir()
    path = folder / "run.json"
    if kind == "a directory":
        path.mkdir()
    elif kind == "a named pipe":
        os.mkfifo(path)
    else:
        path.write_bytes(b" " * (records.MAX_RECORD_BYTES + 1))
    (listed,) = records.list_runs(str(tmp_path))
    assert listed.status == Status.UNREADABLE and "run.json" in listed.error


def test_a_typed_record_goes_to_json_and_back(tmp_path):
    run_id, folder = records.new_run_dir(str(tmp_path))
    record = records.RunRecord(version=records.VERSION, run_id=run_id, started=1.5, params={"a": [1, 2]}).at(folder)
    record.tasks["t"] = records.TaskRecord(name="t", state=Status.FAILED, summary=["x"], error="E: y")
    records.save(record)
    back = records.read(folder)
    assert back == record and back.folder == folder and back.tasks["t"].state is Status.FAILED
    assert records.to_dict(back)["tasks"]["t"]["state"] == "failed"
