"""Cloud Storage FUSE's rule (no directory renames) on the pipeline root, for every step.

On Vertex AI every artifact path is a gcsfuse mount (/gcs/...), which refuses to rename a
directory. gcsfuse itself is not available here, so tests/support/no_dir_rename.c (built with
the machine's C compiler, LD_PRELOADed into every process of the run) makes rename(2) of a
directory under the runs root fail the way gcsfuse does, for Python and TensorFlow's C++ alike.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

SHIM = pathlib.Path(__file__).parent / "support" / "no_dir_rename.c"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler for the LD_PRELOAD shim"),
]


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("shim") / "no_dir_rename.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM), "-ldl"], check=True)
    return str(out)


def _env(shim: str, prefix: pathlib.Path, log: pathlib.Path) -> dict[str, str]:
    return {
        **os.environ,
        "LD_PRELOAD": shim,
        "TAXIFARE_NO_DIR_RENAME": str(prefix),
        "TAXIFARE_NO_DIR_RENAME_LOG": str(log),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def test_the_shim_refuses_directory_renames_like_gcsfuse(shim, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    code = (
        "import os, errno\n"
        "os.rename('file', 'file2')\n"
        "try:\n    os.rename('dir', 'dir2')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\n"
    )
    log = tmp_path / "refused.log"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(shim, tmp_path, log),
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert out.strip() == "ENOSYS" and (tmp_path / "file2").exists() and (tmp_path / "dir").is_dir()
    assert log.read_text().strip() == str(tmp_path / "dir")


def test_train_evaluate_and_deploy_never_rename_a_directory_under_the_pipeline_root(shim, sample_dir, tmp_path):
    runs, registry, log = tmp_path / "runs", tmp_path / "registry", tmp_path / "refused.log"
    splits = [f"--{s}-data={os.path.join(sample_dir, f'{s}.csv')}" for s in ("train", "valid", "test")]
    argv = [sys.executable, "-m", "taxifare.cli", "run", *splits, "--runs-root", str(runs), "--registry",
            str(registry), "--train-steps", "400"]  # fmt: skip
    proc = subprocess.run(argv, env=_env(shim, runs, log), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "deployed: v0001" in proc.stdout
    assert not log.exists() or log.read_text() == "", f"steps tried to rename directories:\n{log.read_text()}"
    exports = list(runs.glob("*/pipeline-root/*/train-model/trainer-output/export/exporter/*"))
    assert exports and all((e / "taxifare-export.json").is_file() for e in exports)
