"""`taxifare serve`'s settings, each defined once (default, help, check): its flags and their one check.

TF-free and server-free, so `taxifare serve --help` and a bad flag answer without loading anything.
"""

from __future__ import annotations

import dataclasses

from taxifare.serving import (
    DEFAULT_BODY_SECONDS,
    DEFAULT_DRAIN_SECONDS,
    DEFAULT_HEAD_SECONDS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_POLL_SECONDS,
)
from trainer.settings import between, setting, whole

HOUR = 3600.0


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    """How the server treats its clients and its model: sizes, deadlines, connections, threads."""

    max_body_bytes: int = setting(
        DEFAULT_MAX_BODY_BYTES,
        "larger bodies get 413 (the default is Vertex AI's 1.5 MB request limit; raise it for local use)",
        whole(1024, 1 << 30),
    )
    poll_seconds: float = setting(DEFAULT_POLL_SECONDS, "how often to check the registry's champion",
                                  between(0, HOUR, low_open=True))  # fmt: skip
    tf_threads: int = setting(1, "TensorFlow intra/inter-op threads (0: TF's default)", whole(0, 256))
    drain_seconds: float = setting(
        DEFAULT_DRAIN_SECONDS, "on SIGTERM, how long requests already arriving may take to be answered",
        between(0, HOUR),
    )  # fmt: skip
    head_seconds: float = setting(
        DEFAULT_HEAD_SECONDS, "a request's head must arrive within this many seconds of its first byte (else 408)",
        between(0, HOUR, low_open=True),
    )  # fmt: skip
    body_seconds: float = setting(
        DEFAULT_BODY_SECONDS, "a request's body must arrive within this many seconds of its head (else 408)",
        between(0, HOUR, low_open=True),
    )  # fmt: skip
    max_connections: int = setting(
        DEFAULT_MAX_CONNECTIONS,
        "open connections at most; past them a new one closes the longest idle, or gets 503 if none is idle",
        whole(1, 100_000),
    )
