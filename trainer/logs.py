"""TensorFlow's start-up banners and per-checkpoint chatter off, unless someone asks for them.

The entry points that load TensorFlow (`python -m trainer.task`, `taxifare train|serve|predict`)
call `quiet_tensorflow` first. TensorFlow 2.21 logs its oneDNN and CPU-feature banners from C++
before absl's logging is set up, which TF_CPP_MIN_LOG_LEVEL does not reach: standard error is
pointed at /dev/null for the import alone (an import error is still raised, and shown, after).
Task processes the CLI starts inherit TF_CPP_MIN_LOG_LEVEL. Errors always show.
"""

from __future__ import annotations

import logging
import os
import sys

NOISY = ("tensorflow", "absl", "h5py")


def quiet_tensorflow(verbose: bool = False, load: bool = True) -> None:
    """Quiet TensorFlow for this process and the ones it starts; `load`: import it now, quietly."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO and WARNING after start-up
    for name in NOISY:  # Python: "Sharding callback duration", "Function `serve` contains input name(s)..."
        logging.getLogger(name).setLevel(logging.ERROR)
    if not load or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401 - imported here, quietly, for the caller
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
