"""The container image: built with scripts/build_image.sh, then run as Vertex AI would run it.

Slow (a cold build is minutes; a rebuild after a source change is about one), so behind the
`image` marker and skipped where podman is absent. TAXIFARE_TEST_IMAGE names the tag to build.
"""

import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from taxifare.errors import UsageError

ROOT = pathlib.Path(__file__).resolve().parent.parent
PODMAN = [str(ROOT / "scripts" / "podman.sh")]
IMAGE = os.environ.get("TAXIFARE_TEST_IMAGE", "localhost/taxifare:test")

pytestmark = [
    pytest.mark.image,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (apt-get install podman runc)"),
]


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def _podman_run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return _run(*PODMAN, "run", "--rm", "--network=none", *args, timeout=timeout)


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    if proc.returncode != 0:
        pytest.fail(f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc.stdout


@pytest.fixture(scope="module")
def image() -> str:
    _ok(_run(str(ROOT / "scripts" / "build_image.sh"), IMAGE, timeout=1800))
    return IMAGE


def test_no_entrypoint_the_default_command_is_taxifare_help(image: str) -> None:
    """Every consumer gives the whole command; the image only says what it holds."""
    entrypoint = _ok(_run(*PODMAN, "image", "inspect", "--format", "{{json .Config.Entrypoint}}", image)).strip()
    assert entrypoint in ("null", "[]")
    labels = json.loads(_ok(_run(*PODMAN, "image", "inspect", "--format", "{{json .Config.Labels}}", image)))
    assert labels["io.taxifare.accelerator"] == "cpu"
    # What `taxifare submit --accelerator-type` reads, through podman on PATH as a user's machine has it.
    from pipeline import images

    assert images.accelerator(image) == "cpu"
    with pytest.raises(UsageError, match="is a CPU-only image"):
        images.check_accelerators(image, "NVIDIA_TESLA_T4")
    assert images.accelerator("localhost/taxifare:no-such-tag") is None
    assert "sample-data" in _ok(_podman_run(image))
    out = _ok(_podman_run(image, "python", "-m", "trainer.task", "--help"))
    assert out.startswith("usage: python -m trainer.task") and "--train_data_paths" in out


def test_python_on_path_runs_trainer_and_kfp_executor_as_non_root(image: str) -> None:
    script = "id -u; python -m trainer.task --help >/dev/null; python3 -m kfp.dsl.executor_main --help; taxifare --help"
    out = _ok(_podman_run("--entrypoint", "sh", image, "-c", script))
    assert out.splitlines()[0] == "10001"
    assert "--function_to_execute" in out
    assert "sample-data" in out


def test_no_build_secret_or_pip_cache_in_the_image(image: str) -> None:
    script = "ls /run/secrets /root/.cache/pip /src /tmp/dist 2>/dev/null; true"
    out = _ok(_podman_run("--user", "0", "--entrypoint", "sh", image, "-c", script))
    assert out.strip() == ""


def test_one_training_step_inside_the_image(image: str, tmp_path: pathlib.Path) -> None:
    """A Vertex custom job's life in small: sample data, train 20 steps, export where mounted."""
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)  # the image runs as uid 10001
    script = (
        "set -e; taxifare sample-data --rows 2000 --out /tmp/data >/dev/null; "
        "python -m trainer.task --train_data_paths /tmp/data/train.csv --eval_data_paths /tmp/data/valid.csv "
        "--output_dir /work/out --train_steps 20 --hidden_units 8 4"
    )
    out = _ok(_podman_run("-v", f"{work}:/work", "--entrypoint", "sh", image, "-c", script))
    result = json.loads(out.strip().splitlines()[-1])
    assert result["steps"] == 20
    export = work / "out" / result["export_dir"].removeprefix("/work/out/")
    assert (export / "saved_model.pb").is_file()


def test_kfp_executor_runs_a_lightweight_component(image: str, tmp_path: pathlib.Path) -> None:
    """What a KFP lightweight component with base_image=IMAGE runs on Vertex, minus the launcher."""
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)
    (work / "component.py").write_text(
        textwrap.dedent(
            """
            from kfp import dsl

            @dsl.component
            def fare_sum(a: float, b: float) -> float:
                import trainer.features  # the project's own package, from the image

                return a + b
            """
        )
    )
    executor_input = {
        "inputs": {"parameterValues": {"a": 2.5, "b": 4}},
        "outputs": {
            "parameters": {"Output": {"outputFile": "/work/Output"}},
            "outputFile": "/work/executor_output.json",
        },
    }
    _ok(
        _podman_run(
            "-v",
            f"{work}:/work",
            "--entrypoint",
            "python3",
            image,
            "-m",
            "kfp.dsl.executor_main",
            "--component_module_path",
            "/work/component.py",
            "--function_to_execute",
            "fare_sum",
            "--executor_input",
            json.dumps(executor_input),
        )
    )
    output = json.loads((work / "executor_output.json").read_text())
    assert output["parameterValues"]["Output"] == 6.5


def test_stage_data_step_runs_as_kfp_runs_it(image: str, tmp_path: pathlib.Path) -> None:
    """components/stage_data.py's own container command and args, with the launcher's executor input."""
    stage_data = pytest.importorskip("components.stage_data")
    if not hasattr(stage_data, "component"):
        pytest.skip("components.stage_data has no component(image) yet")
    spec = stage_data.component(image).component_spec
    container = spec.implementation.container
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)
    _ok(
        _podman_run(
            "-v",
            f"{work}:/work",
            "--entrypoint",
            "taxifare",
            image,
            "sample-data",
            "--rows",
            "2000",
            "--out",
            "/work/data",
        )
    )

    known = {"source": "/work/data/train.csv", "valid_fraction": 0.1, "test_fraction": 0.1, "max_bad_fraction": 0.05}
    params = {}
    for name, spec_input in (spec.inputs or {}).items():
        if name in known:
            params[name] = known[name]
        elif spec_input.default is not None:
            params[name] = spec_input.default
        else:  # an empty value of the declared type: "", 0, 0.0
            params[name] = {"String": "", "Integer": 0, "Float": 0.0, "Boolean": False}[spec_input.type]
    artifacts = {
        name: {
            "artifacts": [{"name": name, "type": {"schemaTitle": out.type.split("@")[0]}, "uri": f"/work/out/{name}"}]
        }
        for name, out in (spec.outputs or {}).items()
    }
    executor_input = {
        "inputs": {"parameterValues": params},
        "outputs": {"artifacts": artifacts, "outputFile": "/work/out/executor_output.json"},
    }
    args = [a.replace("{{$}}", json.dumps(executor_input)) for a in container.args]
    (work / "out").mkdir()
    (work / "out").chmod(0o777)
    _ok(_podman_run("-v", f"{work}:/work", "--entrypoint", container.command[0], image, *container.command[1:], *args))

    output = json.loads((work / "out" / "executor_output.json").read_text())
    rows = {name: output["artifacts"][name]["artifacts"][0]["metadata"]["rows"] for name in ("train", "valid", "test")}
    assert rows["train"] > rows["valid"] > 0
    assert "fare_amount" in (work / "out" / "train").read_text().splitlines()[0]


COMPONENT_MODULES = sorted(p.stem for p in (ROOT / "components").glob("*.py") if p.stem != "__init__")


@pytest.mark.skipif(not COMPONENT_MODULES, reason="no components/*.py yet")
def test_every_component_module_imports_inside_the_image(image: str) -> None:
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module('components.' + name)\n"
    _ok(_podman_run("--entrypoint", "python", image, "-c", code, *COMPONENT_MODULES))


@contextlib.contextmanager
def _serving_container(image: str, export: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, dict]]:
    """The uploaded container spec, started the way Vertex AI starts it (for an endpoint or a batch prediction
    job): command `taxifare serve`, the AIP_* variables, the model fetched from Cloud Storage (the GCS
    emulator); yields (port, spec) once it answers its health route, and removes it after."""
    import http.client
    import time

    from cloud_fakes import free_port, gcs_emulator, upload_dir

    from taxifare.serving import container
    from trainer import gcs

    spec = container.container_spec(image)
    port = free_port()
    with gcs_emulator(monkeypatch):
        bucket = gcs.client().create_bucket("vertex-model-copies")
        upload_dir(bucket, export, "v1")
        env = {**container.environ_for(spec, "gs://vertex-model-copies/v1", port=port),
               "STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"]}  # fmt: skip
        name = f"taxifare-serve-{port}"
        flags = [f"--env={k}={v}" for k, v in env.items()]
        command, *args = spec["command"]
        _ok(_run(*PODMAN, "run", "-d", "--name", name, "--network=host", *flags, "--entrypoint", command, image,
                 *args))  # fmt: skip
        try:
            deadline, status = time.monotonic() + 120, 0
            while time.monotonic() < deadline and status != 200:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    conn.request("GET", spec["health_route"])
                    reply = conn.getresponse()
                    status = reply.status
                    reply.read()
                    conn.close()
                except OSError:
                    pass
                if status != 200:
                    time.sleep(0.5)
            assert status == 200, _run(*PODMAN, "logs", name).stderr[-3000:]
            yield port, spec
            _ok(_run(*PODMAN, "stop", "--time", "30", name))
            state = _ok(_run(*PODMAN, "inspect", "--format", "{{.State.ExitCode}}", name)).strip()
            assert state == "0", _run(*PODMAN, "logs", name).stderr[-3000:]
        finally:
            _run(*PODMAN, "rm", "-f", name)


def _post(port: int, route: str, body: dict) -> tuple[int, dict]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", route, json.dumps(body), {"Content-Type": "application/json"})
    reply = conn.getresponse()
    return reply.status, json.loads(reply.read())


def test_the_image_serves_as_vertex_ai_runs_it(image: str, trained: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Health and a prediction over HTTP from the host, then SIGTERM (podman stop) and a clean exit."""
    from taxifare.serving import preflight
    from trainer import servable

    export = trained["export_dir"]
    with _serving_container(image, export, monkeypatch) as (port, spec):
        status, answer = _post(port, spec["predict_route"], {"instances": preflight.probe_instances()})
        assert status == 200 and list(answer) == ["predictions"]
        fares = [p["fare_amount"] for p in answer["predictions"]]
        expected = servable.python_loader_fares(export)
        assert max(abs(a - b) for a, b in zip(fares, expected, strict=True)) < 1e-3


def test_the_image_answers_batch_prediction_requests_as_vertex_ai_sends_them(
    image: str, trained: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    """A batch prediction job's requests: `batch_size` instances each, objects of the five features (the key
    kept out by instanceConfig.keyField), integers where a BigQuery INT64 column gives them; the answers, in
    order, are the fares local batch scoring gives the same rows."""
    from taxifare.batch import inputs, scoring
    from trainer import sample_data
    from trainer.predict import Predictor

    data = str(tmp_path / "trips.csv")  # more rows than one request of the job's batch size
    sample_data.write_csv(sample_data.generate(2500, seed=5), data)
    export = trained["export_dir"]
    scoring.score([data], str(tmp_path / "p.csv"), Predictor(export).predict)
    with open(tmp_path / "p.csv") as f:
        local = [float(line.rsplit(",", 1)[1]) for line in f.read().splitlines()[1:]]
    rows = [row for part in inputs.read([data]) for row in part.raw.tolist()]
    names = ("pickuplon", "pickuplat", "dropofflon", "dropofflat", "passengers")
    instances = [{**dict(zip(names, row, strict=True)), "passengers": int(row[4])} for row in rows]
    fares: list[float] = []
    with _serving_container(image, export, monkeypatch) as (port, spec):
        for start in range(0, len(instances), 1000):  # the job's batch_size
            status, answer = _post(port, spec["predict_route"], {"instances": instances[start : start + 1000]})
            assert status == 200, answer
            fares += [p["fare_amount"] for p in answer["predictions"]]
    assert len(fares) == len(local) > 1000
    assert max(abs(a - b) for a, b in zip(fares, local, strict=True)) <= 1e-4


def _pipeline_in_containers(image: str, sample_dir: str, tmp: pathlib.Path, docker_host: str | None) -> None:
    splits = [f"--{s}-data={os.path.join(sample_dir, f'{s}.csv')}" for s in ("train", "valid", "test")]
    runs, registry = tmp / "runs", tmp / "registry"
    argv = [sys.executable, "-m", "taxifare.cli", "run", "--runner", "container", "--image", image, *splits,
            "--runs-root", str(runs), "--registry", str(registry), "--train-steps", "400"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "deployed: v0001" in proc.stdout
    (record,) = runs.glob("*/run.json")
    succeeded = {name for name, task in json.loads(record.read_text())["tasks"].items() if task["state"] == "succeeded"}
    assert {"stage-data", "train-model", "evaluate-model", "deploy-model"} <= succeeded
    outputs = {o.parent.name: o for o in runs.glob("*/pipeline-root/*/*/executor_output.json")}
    assert set(outputs) == succeeded  # each task that ran wrote its outputs...
    assert {o.stat().st_uid for o in outputs.values()} == {10001}  # ...inside, as the image's user
    champion = json.loads((registry / "aliases.json").read_text())["champion"]
    assert (registry / "versions" / champion / "model" / "saved_model.pb").is_file()
    # Shared with the image's user through ownership and the user's group, never opened to every user.
    everything = [registry, *registry.rglob("*")]
    assert registry.stat().st_uid == 10001 and registry.stat().st_gid == os.getgid()
    assert not [str(p) for p in everything if p.stat().st_mode & 0o002], "world-writable files in the registry"
    # The subprocess runner (this user) shares the same registry: its next run registers beside it.
    again = [a for a in argv if a not in ("--runner", "container", "--image", image)] + ["--train-steps", "401"]
    proc = subprocess.run(again, capture_output=True, text=True, timeout=900, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


def test_the_whole_pipeline_runs_in_containers(image: str, sample_dir: str, tmp_path: pathlib.Path) -> None:
    """`taxifare run --runner container`: each compiled task's own command in the image, through kfp's
    DockerRunner on podman's Docker API (started and stopped by the command), as the image's user."""
    _pipeline_in_containers(image, sample_dir, tmp_path, docker_host=None)


@pytest.fixture(scope="module")
def docker_engine(image: str) -> Iterator[str]:
    """A real Docker engine (Debian's docker.io) on a private socket, holding the image."""
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd is not installed (apt-get install docker.io)")
    from engines import dockerd

    with dockerd() as host:
        save = subprocess.Popen([*PODMAN, "save", image], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "-H", host, "load"], stdin=save.stdout, capture_output=True, text=True,
                              timeout=600, check=False)  # fmt: skip
        save.wait()
        assert save.returncode == 0 and load.returncode == 0, load.stderr
        yield host


def test_the_image_runs_as_its_user_under_docker(image: str, docker_engine: str) -> None:
    """Docker shows what podman hides: the image's / must be 0755 for uid 10001 to run anything."""
    script = "stat -c %a /; id -u; python -c 'import trainer.features'; taxifare --help >/dev/null"
    out = _ok(_run("docker", "-H", docker_engine, "run", "--rm", "--network=none", image, "sh", "-c", script))
    assert out.split() == ["755", "10001"]


def test_the_whole_pipeline_runs_in_a_docker_engine(
    image: str, docker_engine: str, sample_dir: str, tmp_path: pathlib.Path
) -> None:
    _pipeline_in_containers(image, sample_dir, tmp_path, docker_host=docker_engine)


def test_a_container_run_gives_the_image_users_files_back(image: str, docker_engine: str, tmp_path) -> None:
    """A user who is not root would otherwise be left with a run folder they cannot delete: the run's
    files change hands, through the engine. The registry stays writable by both: the next run's steps
    (uid 10001 again) add versions and take the lock, and the user (through their group) deletes and
    adds too; other owners' files keep theirs."""
    from taxifare.runs import containers

    eng = containers.Engine(docker_engine, "docker")
    assert containers.host_owner(eng) == (os.getuid(), os.getgid())  # a rootful engine: the user's own ids
    run, registry = tmp_path / "run", tmp_path / "registry"
    written, others = run / "out" / "model.pb", run / "someone-elses.txt"
    model, lock, theirs = registry / "versions" / "v0001" / "saved_model.pb", registry / ".lock", registry / "mine"
    for folder in (written.parent, model.parent, theirs):
        folder.mkdir(parents=True)
    registry.chmod(0o2775)  # as `prepare` shares a new one: the image's user's, the user's group
    os.chown(registry, containers.IMAGE_UID, 1235)
    for path in (written, others, model, lock):
        path.write_text("x")
    ids = containers.IMAGE_UID
    for path in (written, written.parent, model, model.parent, model.parent.parent, lock, others, theirs):
        path.chmod(0o755 if path.is_dir() else 0o644)  # as the steps' umask leaves them
    for path in (written, written.parent, model, model.parent, model.parent.parent, lock):
        os.chown(path, ids, ids)  # as the steps inside the container leave them
    for path in (others, theirs):
        os.chown(path, 4242, 4242)

    containers.hand_back(eng, image, str(run), str(registry), (1234, 1235))

    def owner_mode(*paths: pathlib.Path) -> list[tuple[int, int, str]]:
        return [(p.stat().st_uid, p.stat().st_gid, oct(p.stat().st_mode & 0o7777)) for p in paths]

    assert owner_mode(written, written.parent, others) == [
        (1234, 1235, "0o644"), (1234, 1235, "0o755"), (4242, 4242, "0o644")
    ]  # fmt: skip
    # The user's group may write (new folders inherit it), other users may not.
    assert owner_mode(model.parent.parent, model.parent, model, lock, theirs) == [
        (ids, 1235, "0o2775"), (ids, 1235, "0o2775"), (ids, ids, "0o644"), (ids, 1235, "0o664"), (4242, 4242, "0o755")
    ]  # fmt: skip
    mount = f"{registry}:/registry"
    next_step = "cd /registry && mkdir versions/v0002 && echo >> .lock && echo {} > aliases.json"
    _ok(_run("docker", "-H", docker_engine, "run", "--rm", "--network=none", "-v", mount, image, "sh", "-c", next_step))
    user = "cd /registry && rm -r versions/v0001 && echo >> .lock && mkdir versions/v0003 && mv aliases.json a.json"
    _ok(_run("docker", "-H", docker_engine, "run", "--rm", "--network=none", "--user", "1234:1235", "-v", mount,
             image, "sh", "-c", user))  # fmt: skip
    assert sorted(p.name for p in (registry / "versions").iterdir()) == ["v0002", "v0003"]
    stranger = _run("docker", "-H", docker_engine, "run", "--rm", "--network=none", "--user", "4321:4321", "-v", mount,
                    image, "sh", "-c", "rm -r /registry/versions/v0002")  # fmt: skip
    assert stranger.returncode != 0 and (registry / "versions" / "v0002").is_dir()


def test_a_registry_volume_the_image_user_cannot_write_is_said_before_deploying(image: str, tmp_path) -> None:
    """A Kubeflow claim mounted root-owned: evaluate's check, as the image's user on that mount, is
    one line naming the folder and the fix (before the gate), not a PermissionError from deploy."""
    locked, unlocked, lock_held = tmp_path / "locked", tmp_path / "unlocked", tmp_path / "lock-held"
    (locked / "versions").mkdir(parents=True)
    unlocked.mkdir()
    (lock_held / "versions").mkdir(parents=True)
    (lock_held / ".lock").write_text("")  # left by a run as root: open folders, a lock only root may open
    modes = {locked: 0o755, locked / "versions": 0o755, unlocked: 0o777,
             lock_held: 0o777, lock_held / "versions": 0o777, lock_held / ".lock": 0o644}  # fmt: skip
    for path, mode in modes.items():
        path.chmod(mode)
    check = textwrap.dedent("""
        import sys
        from taxifare.errors import TaxifareError
        from taxifare.registry.local import LocalRegistry
        try:
            LocalRegistry(sys.argv[1]).check_writable()
        except TaxifareError as err:
            sys.exit(str(err))
    """)
    mounts = ["-v", f"{locked}:/mnt/locked", "-v", f"{unlocked}:/mnt/unlocked", "-v", f"{lock_held}:/mnt/lock-held"]

    def as_image_user(path: str) -> subprocess.CompletedProcess[str]:
        return _podman_run(*mounts, "--entrypoint", "python", image, "-c", check, path)

    refused = as_image_user("/mnt/locked")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "/mnt/locked/versions is not writable by uid 10001" in refused.stderr
    assert "chmod -R a+rwX /mnt/locked" in refused.stderr and "fsGroup" in refused.stderr
    # Not there yet: its nearest existing parent decides.
    assert "/mnt/locked/versions is not writable" in as_image_user("/mnt/locked/versions/new/registry").stderr
    assert "/mnt/lock-held/.lock is not writable by uid 10001" in as_image_user("/mnt/lock-held").stderr
    assert as_image_user("/mnt/unlocked/registry").returncode == 0
