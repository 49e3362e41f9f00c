"""Run an export the way TensorFlow Serving does, and compare with the Python loader.

TF Serving (and Vertex AI's prebuilt TF2 container, which runs it) loads a SavedModel with the
session-based `LoadSavedModel`: the MetaGraph as written, variables set by its restore op,
signatures run by tensor name. `tf.saved_model.load` rebuilds Python objects instead and can
succeed where TF Serving fails, so an export is only known to serve once it has answered here.
`saved_model_cli run` takes the same path.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from taxifare.errors import NotServable, TaxifareError
from trainer import features as F

# A few trips across the city (Midtown hop, to JFK, from LaGuardia, to Newark): the probe
# every servability check sends. Columns in FEATURES order.
PROBE = np.array(
    [
        [-73.9857, 40.7484, -73.9680, 40.7850, 1.0],
        [-73.9857, 40.7484, -73.7781, 40.6413, 2.0],
        [-73.8740, 40.7769, -73.9442, 40.8075, 3.0],
        [-74.0060, 40.7128, -74.1745, 40.6895, 1.0],
    ],
    np.float32,
)
PROBE_KEYS = np.array([b"probe-0", b"probe-1", b"probe-2", b"probe-3"])
TOLERANCE = 1e-4  # dollars: the same graph on the same CPU should agree far closer


def probe_feeds(raw: np.ndarray = PROBE) -> dict[str, np.ndarray]:
    return {name: np.ascontiguousarray(raw[:, i]) for i, name in enumerate(F.FEATURES)}


def session_run(export_dir: str, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One call of `signature` through the session-based loader (TF Serving's path)."""
    import tensorflow as tf

    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, [tf.saved_model.SERVING], export_dir)
        if signature not in meta.signature_def:
            raise NotServable(f"{export_dir}: no signature {signature!r} (has {sorted(meta.signature_def)})")
        sig = meta.signature_def[signature]
        missing = sorted(set(sig.inputs) - set(feeds))
        if missing:
            raise NotServable(f"{export_dir}: signature {signature!r} wants inputs {missing} that were not given")
        feed = {sig.inputs[name].name: value for name, value in feeds.items() if name in sig.inputs}
        fetch = {name: info.name for name, info in sig.outputs.items()}
        return session.run(fetch, feed)


def python_loader_fares(export_dir: str) -> np.ndarray:
    """PROBE through `tf.saved_model.load` (what evaluate scored with); NotServable if it fails."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    from trainer.predict import Predictor

    try:
        return Predictor(export_dir).predict(PROBE).astype(np.float64)
    # What a missing, truncated or foreign export raises on the way in (a short checkpoint is an
    # IndexError from its reader), or a broken graph when run;
    # anything else is a bug and keeps its traceback.
    except (TaxifareError, OSError, ValueError, LookupError, DecodeError, tf.errors.OpError) as err:
        first = _reason(str(getattr(err, "message", "")) or str(err))
        raise NotServable(f"{export_dir}: does not load and predict with tf.saved_model.load: {first}") from err


def check_session_loader(export_dir: str, signature_output: str = "fare_amount") -> np.ndarray:
    """Both signatures through TF Serving's loader must match the Python loader; return the fares.

    NotServable names the signature and what went wrong (a load error, a failed run, a mismatch).
    """
    import tensorflow as tf

    from trainer.predict import KEYED_SIGNATURE, SIGNATURE

    expected = python_loader_fares(export_dir)
    feeds = probe_feeds()
    for signature, extra in ((SIGNATURE, {}), (KEYED_SIGNATURE, {F.KEY: PROBE_KEYS})):
        try:
            out = session_run(export_dir, signature, {**feeds, **extra})
        except tf.errors.OpError as err:
            first = _reason(err.message)
            raise NotServable(
                f"{export_dir}: signature {signature!r} fails in TF Serving's session-based loader: {first}"
            ) from err
        fares = np.asarray(out.get(signature_output), np.float64).reshape(-1)
        if fares.shape != expected.shape or not np.allclose(fares, expected, rtol=0, atol=TOLERANCE):
            raise NotServable(
                f"{export_dir}: signature {signature!r} answers {fares.tolist()} through TF Serving's loader "
                f"but {expected.tolist()} through tf.saved_model.load"
            )
        if signature == KEYED_SIGNATURE and list(np.asarray(out.get(F.KEY))) != list(PROBE_KEYS):
            raise NotServable(f"{export_dir}: signature {signature!r} does not echo the keys it is given")
    return expected


def _reason(message: str) -> str:
    """The line of a TensorFlow error that says what is wrong (not "Graph execution error:")."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [line for line in lines if not line.endswith("error:") and not line.startswith(("[[", "Detected at"))]
    return (useful or lines or ["(no message)"])[0][:400]
