"""How long a connection may take: for a request's head and body, for its answers to move, idling.

`App` checks every connection once a second against these (`Connection.check_deadlines`).
"""

from __future__ import annotations

from dataclasses import dataclass

KEEPALIVE_SECONDS = 75.0


@dataclass(frozen=True)
class Deadlines:
    """What a connection is allowed, in seconds: for a request's head, its body, unsent answers to move, idling."""

    head_seconds: float
    body_seconds: float
    send_seconds: float
    idle_seconds: float
