"""The local registry under damage: any content of aliases.json or of a version folder is a
one-line error naming the file and the fix; `models list` shows what is readable; `models
promote` repairs aliases.json; a server's registry watch survives it all; files follow the umask."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import stat
import subprocess
import sys
import time

import pytest
from cli_capture import run_cli
from serving_helpers import ServerProcess

from taxifare.errors import RegistryError
from taxifare.registry.local import LocalRegistry

ALIAS_DAMAGE = {
    "empty": b"",
    "truncated": b'{"champion": "v00',
    "a number": b'{"champion": 5}',
    "a list": b'["v0001"]',
    "a string": b'"v0001"',
    "a path": b'{"champion": "../../etc"}',
    "not UTF-8": b"\xff\xfe\x00",
    "deeply nested": b"[" * 100_000,
    "an unknown version": b'{"champion": "v0009"}',
}


def _fake_model(path) -> str:
    """Enough of a SavedModel for the registry, which only copies it."""
    os.makedirs(path / "variables", exist_ok=True)
    (path / "saved_model.pb").write_bytes(b"pb")
    (path / "variables" / "variables.index").write_bytes(b"index")
    return str(path)


@pytest.fixture
def reg(tmp_path, trained) -> LocalRegistry:
    """Two real, servable versions (promote checks that a version serves)."""
    registry = LocalRegistry(str(tmp_path / "reg"))
    registry.promote(registry.register(trained["export_dir"], {"run_id": "r1"}).name)
    registry.register(trained["export_dir"], {"run_id": "r2"})
    return registry


@pytest.mark.parametrize("damage", list(ALIAS_DAMAGE))
def test_any_aliases_json_is_a_one_line_error_and_promote_repairs_it(reg: LocalRegistry, damage: str) -> None:
    with open(reg.aliases_path, "wb") as f:
        f.write(ALIAS_DAMAGE[damage])
    with pytest.raises(RegistryError) as err:
        reg.champion()
    assert ("aliases.json" in str(err.value) or "champion v0009" in str(err.value)) and "promote" in str(err.value)
    assert "\n" not in str(err.value)
    code, out, err_text = run_cli("models", "list", "--registry", reg.root)
    assert code == 0 and "v0001" in out and "v0002" in out and "★" not in out.split("\n", 1)[1].split("★ =")[0]
    if damage != "an unknown version":
        assert "aliases.json" in err_text and len(err_text.strip().splitlines()) == 1
    code, out, _ = run_cli("models", "promote", "v0002", "--registry", reg.root)
    assert code == 0 and "champion -> v0002" in out
    assert reg.champion().name == "v0002"  # type: ignore[union-attr]


def test_a_damaged_version_is_marked_and_the_rest_still_works(reg: LocalRegistry, tmp_path) -> None:
    model = _fake_model(tmp_path / "model")
    for _ in range(4):
        reg.register(model, {"run_id": "more"})
    versions = reg.versions_dir
    os.remove(os.path.join(versions, "v0002", "metadata.json"))
    with open(os.path.join(versions, "v0003", "metadata.json"), "w") as f:
        f.write('{"run_id": "trunc')
    with open(os.path.join(versions, "v0004", "metadata.json"), "w") as f:
        f.write('["not", "an", "object"]')
    os.remove(os.path.join(versions, "v0005", "model", "saved_model.pb"))

    problems = {v.name: v.problem for v in reg.versions()}
    assert problems["v0001"] is None and problems["v0006"] is None
    assert "v0002/metadata.json is missing" in problems["v0002"]  # type: ignore[operator]
    assert "not valid JSON" in problems["v0003"]  # type: ignore[operator]
    assert "not a JSON object" in problems["v0004"]  # type: ignore[operator]
    assert "no SavedModel" in problems["v0005"]  # type: ignore[operator]

    code, out, _ = run_cli("models", "list", "--registry", reg.root)
    assert code == 0 and "★ v0001" in out and "  v0006" in out
    assert "✘ v0002    damaged:" in out and "✘ v0005    damaged:" in out
    code, _, err = run_cli("models", "promote", "v0003", "--registry", reg.root)
    assert code == 1 and "v0003/metadata.json is not valid JSON" in err and len(err.strip().splitlines()) == 1
    assert reg.register(model, {"run_id": "after"}).name == "v0007"  # registering goes on
    assert reg.champion().name == "v0001"  # type: ignore[union-attr]


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_registry_files_follow_the_umask(tmp_path, umask: int, file_mode: int, dir_mode: int) -> None:
    model = _fake_model(tmp_path / "model")
    os.chmod(os.path.join(model, "saved_model.pb"), 0o600)  # the source's modes are not copied
    old = os.umask(umask)
    try:
        reg = LocalRegistry(str(tmp_path / "reg"))
        version = reg.register(model, {})
        reg.promote(version.name)
    finally:
        os.umask(old)

    def mode(path: str) -> int:
        return stat.S_IMODE(os.stat(path).st_mode)

    assert mode(version.path) == mode(version.model_dir) == mode(os.path.join(version.model_dir, "variables"))
    assert mode(version.path) == dir_mode
    for path in ("metadata.json", "model/saved_model.pb", "model/variables/variables.index"):
        assert mode(os.path.join(version.path, path)) == file_mode, path
    assert mode(reg.aliases_path) == file_mode


def test_leftovers_of_killed_registrations_are_removed(reg: LocalRegistry, tmp_path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    gone = os.path.join(reg.versions_dir, f".incoming-{host}-{dead.pid}-abcd")
    running = os.path.join(reg.versions_dir, f".incoming-{host}-{os.getpid()}-abcd")
    elsewhere_old = os.path.join(reg.versions_dir, ".incoming-otherhost-1-abcd")
    elsewhere_new = os.path.join(reg.versions_dir, ".incoming-otherhost-2-abcd")
    for path in (gone, running, elsewhere_old, elsewhere_new):
        os.makedirs(os.path.join(path, "model"))
    os.utime(elsewhere_old, (time.time() - 2 * 86400,) * 2)
    reg.register(_fake_model(tmp_path / "model"), {})
    left = sorted(n for n in os.listdir(reg.versions_dir) if n.startswith(".incoming"))
    assert left == sorted(os.path.basename(p) for p in (running, elsewhere_new))


def test_the_servers_watch_survives_a_damaged_registry(trained, tmp_path) -> None:
    reg = LocalRegistry(str(tmp_path / "reg"))
    first = reg.register(trained["export_dir"], {"rmse": 5.0}).name
    second = reg.register(trained["export_dir"], {"rmse": 4.0}).name
    with open(reg.aliases_path, "w") as f:
        f.write('{"champion": 5}')
    proc = ServerProcess(["--registry", reg.root, "--poll-seconds", "0.05"], str(tmp_path / "serve.log"))
    try:
        # Started on a damaged registry: alive, not ready, and it says why.
        assert proc.call("GET", "/health/live")[0] == 200
        status, _, body = proc.call("GET", "/health/ready")
        assert status == 503 and "aliases.json" in body["reason"]
        reg.promote(first)
        proc.wait_ready(first)
        for damage in (b'{"champion": 5}', b"{", b"", b"[]"):
            with open(reg.aliases_path, "wb") as f:
                f.write(damage)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                status, _, body = proc.call("GET", "/health/ready")
                if "registry" in body:
                    break
                time.sleep(0.05)
            # Still serving the model it has, and saying what is wrong with the registry.
            assert status == 200 and body["modelVersionId"] == first and "aliases.json" in body["registry"]
            os.remove(reg.aliases_path)  # back to healthy before the next damage
            while "registry" in proc.call("GET", "/health/ready")[2] and time.monotonic() < deadline:
                time.sleep(0.05)
        with open(reg.aliases_path, "w") as f:
            json.dump({"champion": 7}, f)
        assert run_cli("models", "promote", second, "--registry", reg.root)[0] == 0
        assert proc.wait_ready(second)["modelVersionId"] == second  # hot swaps go on
    finally:
        proc.stop()
    assert "Traceback" not in proc.output()


def test_a_run_on_a_damaged_registry_stops_before_it_starts(reg: LocalRegistry, tmp_path) -> None:
    with open(reg.aliases_path, "w") as f:
        f.write('{"champion": ')
    from taxifare.runs import local

    data = tmp_path / "trips.csv"
    data.write_text("12.0,-73.98,40.75,-73.97,40.78,1,k0\n" * 20)
    code, _, err = run_cli("run", "--data", str(data), "--runs-root", str(tmp_path / "runs"), "--registry", reg.root)
    assert code == 1 and "aliases.json is not valid JSON" in err and len(err.strip().splitlines()) == 1

    with pytest.raises(RegistryError, match=r"aliases\.json is not valid JSON.*models promote"):
        local.run(str(tmp_path / "runs"), {"registry": reg.root})
    assert not (tmp_path / "runs").exists() or not os.listdir(tmp_path / "runs")


def test_registry_versions_are_immutable_and_champion_moves_atomically(trained, tmp_path):
    reg = LocalRegistry(str(tmp_path / "reg"))
    assert reg.champion() is None and reg.versions() == []
    v1 = reg.register(trained["export_dir"], {"run_id": "a"})
    v2 = reg.register(trained["export_dir"], {"run_id": "b"})
    assert [v.name for v in reg.versions()] == ["v0001", "v0002"]
    assert reg.champion() is None  # registering does not promote
    reg.promote(v2.name)
    assert reg.champion().name == "v0002"
    reg.promote(v1.name)  # rollback
    assert reg.champion().name == "v0001" and os.path.isfile(os.path.join(v2.model_dir, "saved_model.pb"))
    assert v1.metadata["run_id"] == "a" and "created" in v1.metadata
    with pytest.raises(RegistryError, match=r"no version 'v0009'.*known: v0001, v0002"):
        reg.promote("v0009")
    assert not [n for n in os.listdir(reg.versions_dir) if n.startswith(".incoming")]


def test_version_names_cannot_escape_the_registry(tmp_path):
    with pytest.raises(RegistryError, match="not a version name"):
        LocalRegistry(str(tmp_path)).promote("../../etc/v0001")


@pytest.mark.parametrize("kind", ["a directory", "a named pipe", "a link"])
def test_an_aliases_json_that_is_not_a_file_is_refused_without_blocking(
    reg: LocalRegistry, kind: str, tmp_path
) -> None:
    """A directory used to be a traceback, a named pipe a hang of every registry command (and of the server)."""
    os.remove(reg.aliases_path)
    if kind == "a directory":
        os.mkdir(reg.aliases_path)
    elif kind == "a named pipe":
        os.mkfifo(reg.aliases_path)
    else:
        (tmp_path / "elsewhere.json").write_text('{"champion": "v0002"}')
        os.symlink(tmp_path / "elsewhere.json", reg.aliases_path)
    with pytest.raises(RegistryError, match=r"aliases\.json (is not a regular file|is a link)"):
        reg.aliases()
    code, out, err = run_cli("models", "list", "--registry", reg.root)
    assert code == 0 and "v0001" in out and "aliases.json" in err and "Traceback" not in err


def test_promote_refuses_a_version_that_would_not_serve(reg: LocalRegistry) -> None:
    """A truncated saved_model.pb or missing variables: `models list` marks it, promote refuses it,
    and the champion stays (the server would otherwise answer 503 after its next start)."""
    model = os.path.join(reg.versions_dir, "v0002", "model")
    with open(os.path.join(model, "saved_model.pb"), "r+b") as f:
        f.truncate(100)
    code, out, _ = run_cli("models", "list", "--registry", reg.root)
    assert "✘ v0002    damaged:" in out and "saved_model.pb is 100 bytes; it was" in out
    code, _, err = run_cli("models", "promote", "v0002", "--registry", reg.root)
    assert code == 1 and "saved_model.pb is 100 bytes" in err and len(err.strip().splitlines()) == 1
    # Same size, other bytes: the sizes pass, the hashes do not.
    v3 = reg.register(reg.get("v0001").model_dir, {"run_id": "r3"})
    data = os.path.join(v3.model_dir, "variables", "variables.data-00000-of-00001")
    with open(data, "r+b") as f:
        f.write(b"\0" * 64)
    code, _, err = run_cli("models", "promote", "v0003", "--registry", reg.root)
    assert code == 1 and "changed since it was registered" in err
    # Files as registered but not a model that answers (written by hand): the serving check refuses it.
    v4 = reg.register(_fake_model(pathlib.Path(reg.root + "-fake")), {"run_id": "r4"})
    code, _, err = run_cli("models", "promote", v4.name, "--registry", reg.root)
    assert code == 1 and "v0004" in err and "Traceback" not in err
    assert reg.champion().name == "v0001"  # type: ignore[union-attr]


def test_models_history_show_champion_and_latest(reg: LocalRegistry) -> None:
    code, out, _ = run_cli("models", "promote", "v0002", "--registry", reg.root, "--reason", "roll forward")
    assert code == 0
    code, out, _ = run_cli("models", "history", "--registry", reg.root)
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].split() == ["WHEN", "FROM", "TO", "RUN", "REASON"]
    assert lines[1].split()[1:] == ["-", "v0001", "by", "hand", "promoted", "by", "hand"]
    assert lines[2].split()[1:] == ["v0001", "v0002", "by", "hand", "roll", "forward"]
    code, out, _ = run_cli("models", "history", "--registry", reg.root, "--json")
    assert [(m["from"], m["to"], m["reason"]) for m in json.loads(out)] == [
        (None, "v0001", "promoted by hand"), ("v0001", "v0002", "roll forward")
    ]  # fmt: skip
    assert run_cli("models", "show", "champion", "--registry", reg.root)[1].startswith("v0002 ★ champion")
    reg.register(reg.get("v0001").model_dir, {"run_id": "r3"})
    shown = json.loads(run_cli("models", "show", "latest", "--registry", reg.root, "--json")[1])
    assert (shown["version"], shown["champion"], shown["metadata"]["run_id"]) == ("v0003", False, "r3")
    # A damaged history line is said, not trusted, and the rest is still shown.
    with open(os.path.join(reg.root, "history.jsonl"), "ab") as f:
        f.write(b'{"to": 5}\n')
    code, out, err = run_cli("models", "history", "--registry", reg.root)
    assert code == 0 and "line 3: not a champion move" in err and "roll forward" in out


def test_wrong_typed_metadata_shows_without_a_traceback(reg: LocalRegistry) -> None:
    path = os.path.join(reg.versions_dir, "v0002", "metadata.json")
    with open(path) as f:
        meta = json.load(f)
    meta.update(metrics="fast", created=5, run_id=["x"], source={"a": 1}, test_fingerprint=None)
    with open(path, "w") as f:
        json.dump(meta, f)
    for argv in (("models", "list"), ("models", "show", "v0002"), ("models", "list", "--json")):
        code, out, err = run_cli(*argv, "--registry", reg.root)
        assert code == 0 and "v0002" in out and "Traceback" not in err, (argv, err)
