"""TensorFlow's start-up noise is held back; when the import fails, what it said is shown after all."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
QUIET_IMPORT = "from trainer import logs; logs.quiet_tensorflow(); print('imported')"


def _python(code: str, tensorflow: str | None, tmp_path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter; `tensorflow`: the source of a stand-in package that writes to fd 2
    from C-level (os.write, as TensorFlow's C++ banners do), or None for the real one."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    if tensorflow is not None:
        package = tmp_path / "stand-in" / "tensorflow"
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(tensorflow)
        env["PYTHONPATH"] = f"{package.parent}{os.pathsep}{ROOT}"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                          cwd=str(tmp_path), check=False)  # fmt: skip


def test_a_failing_import_shows_what_tensorflow_said_and_the_error(tmp_path):
    stand_in = (
        "import os\n"
        "os.write(2, b'libcudart.so.12: cannot open shared object file\\n')\n"
        "raise ImportError('DLL load failed')\n"
    )
    proc = _python(QUIET_IMPORT, stand_in, tmp_path)
    assert proc.returncode == 1 and "imported" not in proc.stdout
    assert "libcudart.so.12: cannot open shared object file" in proc.stderr  # replayed, not swallowed
    assert proc.stderr.index("libcudart") < proc.stderr.index("ImportError: DLL load failed")


def test_a_successful_import_says_nothing(tmp_path):
    stand_in = "import os\nos.write(2, b'oneDNN custom operations are on.\\n')\n"
    proc = _python(QUIET_IMPORT, stand_in, tmp_path)
    assert proc.returncode == 0 and proc.stdout == "imported\n" and proc.stderr == ""
    # And later writes to standard error still arrive: it was given back.
    after = _python(QUIET_IMPORT + "; import sys; print('later', file=sys.stderr)", stand_in, tmp_path)
    assert after.stderr == "later\n"


def test_no_temporary_directory_still_imports_and_loses_nothing(tmp_path):
    """A read-only or missing temporary directory is no reason to stop the run, nor to drop what
    TensorFlow says: with nowhere to hold it, it is shown as it comes."""
    stand_in = "import os\nos.write(2, b'oneDNN custom operations are on.\\n')\n"
    code = f"import tempfile; tempfile.tempdir = {str(tmp_path / 'gone')!r}; " + QUIET_IMPORT
    proc = _python(code, stand_in, tmp_path)
    assert proc.returncode == 0 and proc.stdout == "imported\n" and "oneDNN" in proc.stderr
    failing = stand_in + "raise ImportError('DLL load failed')\n"
    proc = _python(code, failing, tmp_path)
    assert proc.returncode == 1 and "oneDNN" in proc.stderr and "ImportError: DLL load failed" in proc.stderr


@pytest.mark.slow
def test_the_real_tensorflow_starts_without_its_banners(tmp_path):
    proc = _python(QUIET_IMPORT, None, tmp_path)
    assert proc.returncode == 0 and proc.stdout == "imported\n"
    assert "oneDNN" not in proc.stderr and "cpu_feature_guard" not in proc.stderr, proc.stderr
