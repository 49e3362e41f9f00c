"""The export through TF Serving's own loading path, in this project's TensorFlow and in the
TensorFlow of Vertex AI's prebuilt container (its own virtualenv, created once and reused).

`saved_model_cli run` loads with the session-based `LoadSavedModel`, as TF Serving does;
`tf.saved_model.load` (what evaluate and `taxifare serve` use) is the reference.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from taxifare.errors import NotServable
from taxifare.registry import vertex
from trainer import features as F
from trainer import servable
from trainer.predict import KEYED_SIGNATURE, SIGNATURE

PREBUILT_TF = vertex.SERVING_TF_VERSION.replace("-", ".")  # "2.15": tf2-cpu.2-15's TensorFlow
CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "taxifare"


def saved_model_cli_run(cli: str, export_dir: str, signature: str, tmp_path: pathlib.Path) -> dict[str, np.ndarray]:
    """`saved_model_cli run` with the probe trips as inputs; its outputs as written to --outdir."""
    inputs = tmp_path / f"{signature}-in.npz"
    feeds = servable.probe_feeds()
    if signature == KEYED_SIGNATURE:
        feeds[F.KEY] = servable.PROBE_KEYS
    np.savez(inputs, **feeds)
    outdir = tmp_path / f"{signature}-out"
    spec = ";".join(f"{name}={inputs}[{name}]" for name in feeds)
    cmd = [cli, "run", "--dir", export_dir, "--tag_set", "serve", "--signature_def", signature,
           "--inputs", spec, "--outdir", str(outdir), "--overwrite"]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Result for output key" in proc.stdout or outdir.is_dir(), proc.stdout
    return {p.stem: np.load(p, allow_pickle=True) for p in outdir.glob("*.npy")}  # keys: an object array


def assert_serves(cli: str, export_dir: str, tmp_path: pathlib.Path) -> None:
    expected = servable.python_loader_fares(export_dir)
    plain = saved_model_cli_run(cli, export_dir, SIGNATURE, tmp_path)
    np.testing.assert_allclose(plain["fare_amount"], expected, rtol=0, atol=servable.TOLERANCE)
    keyed = saved_model_cli_run(cli, export_dir, KEYED_SIGNATURE, tmp_path)
    np.testing.assert_allclose(keyed["fare_amount"], expected, rtol=0, atol=servable.TOLERANCE)
    assert list(keyed[F.KEY]) == list(servable.PROBE_KEYS)
    assert 4 < expected[0] < expected[1]  # a Midtown hop costs less than a ride to JFK


def test_export_serves_through_saved_model_cli(trained, tmp_path):
    cli = shutil.which("saved_model_cli", path=os.path.dirname(sys.executable))
    assert cli, "saved_model_cli comes with TensorFlow"
    assert_serves(cli, trained["export_dir"], tmp_path)


def test_export_serves_through_the_session_loader_in_process(trained):
    fares = servable.check_session_loader(trained["export_dir"])
    assert fares.shape == (len(servable.PROBE),) and np.isfinite(fares).all()


def test_a_keras_model_tracked_by_a_plain_module_is_caught(tmp_path):
    """The export this project shipped before: it loads in Python and fails in TF Serving."""
    import keras
    import tensorflow as tf

    from trainer import model

    stats = {
        "mean": [0.0] * 12, "variance": [1.0] * 12, "fare_mean": 11.0,
        "feature_min": [-1e3] * 12, "feature_max": [1e3] * 12, "fare_min": 2.5, "fare_max": 500.0,
    }  # fmt: skip
    net = model.build((8, 4), stats, seed=1)

    class Wrapped(tf.Module):
        def __init__(self, m: keras.Model):
            super().__init__()
            self.model = m

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name=n) for n in F.FEATURES])
        def serve(self, pickuplon, pickuplat, dropofflon, dropofflat, passengers):
            raw = tf.stack([pickuplon, pickuplat, dropofflon, dropofflat, passengers], axis=1)
            return {"fare_amount": tf.reshape(self.model(raw), [-1])}

    module = Wrapped(net)
    path = str(tmp_path / "old-export")
    tf.saved_model.save(module, path, signatures={SIGNATURE: module.serve, KEYED_SIGNATURE: module.serve})
    assert np.isfinite(servable.python_loader_fares(path)).all()  # the Python loader is fooled ...
    with pytest.raises(servable.NotServable, match=r"session-based loader: .*Could not find variable"):
        servable.check_session_loader(path)  # ... TF Serving's is not


def prebuilt_tf_venv() -> pathlib.Path:
    """A virtualenv with the prebuilt container's TensorFlow, made once under ~/.cache/taxifare."""
    venv = CACHE / f"tf-{PREBUILT_TF}"
    done = venv / ".complete"
    if done.is_file():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    proc = subprocess.run([*pip, f"tensorflow-cpu=={PREBUILT_TF}.*"], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        pytest.fail(f"could not install tensorflow-cpu=={PREBUILT_TF}.*:\n{proc.stderr[-3000:]}")
    done.write_text(f"tensorflow-cpu=={PREBUILT_TF}.*\n")
    return venv


@pytest.mark.tfserving
def test_export_serves_in_the_prebuilt_containers_tensorflow(trained, tmp_path):
    venv = prebuilt_tf_venv()
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import tensorflow as tf; print(tf.__version__)"],
        capture_output=True, text=True, check=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout.strip()  # fmt: skip
    assert version.startswith(PREBUILT_TF + "."), version
    assert_serves(str(venv / "bin" / "saved_model_cli"), trained["export_dir"], tmp_path)


DAMAGE = {
    "truncated graph": lambda d: (d / "saved_model.pb").write_bytes((d / "saved_model.pb").read_bytes()[:100]),
    "garbage graph": lambda d: (d / "saved_model.pb").write_bytes(b"\x00not a protobuf" * 50),
    "no variables": lambda d: [p.unlink() for p in (d / "variables").iterdir()],
    "no graph": lambda d: (d / "saved_model.pb").unlink(),
    "zeroed variables": lambda d: (d / "variables" / "variables.data-00000-of-00001").write_bytes(b"\0" * 64),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_export_is_not_servable_with_a_reason(trained, tmp_path, damage):
    """What a half-copied or corrupted export raises on loading is one NotServable naming the folder."""
    copy = tmp_path / "export"
    shutil.copytree(trained["export_dir"], copy)
    damage(copy)
    with pytest.raises(NotServable, match=re.escape("does not load and predict with tf.saved_model.load")):
        servable.python_loader_fares(str(copy))
