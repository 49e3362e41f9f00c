"""`taxifare completion bash` run by bash itself: commands, options, choices, run ids and versions are
completed from the parser and the folders; and `taxifare --version`."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess

import pytest

from taxifare import cli

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _script() -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["completion", "bash"]) == 0
    return out.getvalue()


def _complete(script: str, cwd: str, *lines: str) -> list[list[str]]:
    """What bash offers at the end of each line (a trailing space: a new word)."""
    calls = []
    for line in lines:
        new_word = 'COMP_WORDS+=(""); ' if line.endswith(" ") else "COMP_CWORD=$((COMP_CWORD - 1)); "
        calls.append(f"COMP_WORDS=({line}); COMP_CWORD=${{#COMP_WORDS[@]}}; {new_word}"
                     'COMPREPLY=(); _taxifare; echo "${COMPREPLY[*]}"')  # fmt: skip
    calls = "\n".join(calls)
    done = subprocess.run(["bash", "-c", f"{script}\n{calls}"], cwd=cwd, capture_output=True, text=True, check=True)
    assert done.stderr == ""
    return [line.split() for line in done.stdout.splitlines()]


def test_bash_completes_commands_options_choices_runs_and_versions(tmp_path):
    for name in ("20261201-100000-aaaaaa", "20261202-100000-bbbbbb", "sample-data"):
        os.makedirs(tmp_path / "runs" / name)
    os.makedirs(tmp_path / "elsewhere" / "20261203-100000-cccccc")
    for name in ("v0001", "v0002", ".incoming-x"):
        os.makedirs(tmp_path / "runs" / "registry" / "versions" / name)
    lines = ["taxifare r", "taxifare runs ", "taxifare runs show ", "taxifare runs show --runs-root elsewhere ",
             "taxifare runs list --j", "taxifare models show ", "taxifare run --pipeline ", "taxifare ui --al",
             "taxifare completion ", "taxifare --vers"]  # fmt: skip
    got = _complete(_script(), str(tmp_path), *lines)
    assert got == [
        ["run", "runs"],
        ["list", "show", "report"],
        ["latest", "20261201-100000-aaaaaa", "20261202-100000-bbbbbb"],
        ["latest", "20261203-100000-cccccc"],
        ["--json"],
        ["champion", "latest", "v0001", "v0002"],
        ["training", "batch"],  # the pipelines
        ["--allow-remote"],
        ["bash"],
        ["--version"],
    ]


def test_every_command_is_in_the_script():
    script = _script()
    for module in cli.COMMANDS:
        name = module.__name__.rsplit(".", 1)[1].replace("_", "-")
        commands = script.split("_taxifare_commands[taxifare]=")[1].splitlines()[0].strip("'").split()
        assert name in commands, name


def test_version(capsys):
    from importlib import metadata

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"taxifare {metadata.version('taxifare')}"
