"""TensorFlow's start-up banners and per-checkpoint chatter off, unless someone asks for them.

The entry points that load TensorFlow (`python -m trainer.task`, `taxifare train|serve|predict`)
call `quiet_tensorflow` first. TensorFlow 2.21 logs its oneDNN and CPU-feature banners from C++
before absl's logging is set up, which TF_CPP_MIN_LOG_LEVEL does not reach: standard error is
held in a temporary file for the import alone, and shown only if the import fails (with
the error itself, raised after). A C++ abort during the import (no Python exception) takes
what was held with it: `--debug` (or `verbose`) shows everything as it is written, as does
a machine with no writable temporary directory.
Task processes the CLI starts inherit TF_CPP_MIN_LOG_LEVEL. Errors always show.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile

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
    try:
        held = tempfile.TemporaryFile()  # noqa: SIM115 - closed below; what the import writes
    except OSError:  # no writable temporary directory: better the banners than losing why an import failed
        import tensorflow  # imported here for the caller, unquietly

        return
    saved = os.dup(2)
    with held:
        try:
            os.dup2(held.fileno(), 2)
            import tensorflow  # noqa: F401 - imported here, quietly, for the caller
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            os.write(2, held.read()[-65536:])  # TensorFlow's own account of why, before the exception
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
