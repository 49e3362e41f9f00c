"""The open connections: the cap, who makes room at it, and how long an idle one is kept.

At the cap a new connection closes the one that has been idle longest (no request arriving,
waiting or being answered): a flood of idle sockets only pushes itself out, and never shuts
out a client that is sending. Only when every open connection has a request in progress is a
new one refused (503). Idle keep-alive connections are closed after KEEPALIVE_SECONDS, or
after PRESSURE_IDLE_SECONDS while more than half the cap is open.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taxifare.serving.protocol import Connection

KEEPALIVE_SECONDS = 75.0
PRESSURE_IDLE_SECONDS = 5.0


class Connections:
    """The open connections, least recently active first."""

    def __init__(self, cap: int):
        self.cap = cap
        self._open: OrderedDict[Connection, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._open))  # a copy: closing one while iterating is fine

    def admit(self, conn: Connection) -> bool:
        """Make room for `conn` (closing the longest idle connection at the cap); False if there is none."""
        if len(self._open) >= self.cap:
            # Answering moves a connection to the end, so the first idle one found is the longest idle.
            idle = next((c for c in self._open if c.idle()), None)
            if idle is None:
                return False
            self.discard(idle)
            idle.evict()
        self._open[conn] = None
        return True

    def touch(self, conn: Connection) -> None:
        """`conn` just answered: it is the most recently active."""
        if conn in self._open:
            self._open.move_to_end(conn)

    def discard(self, conn: Connection) -> None:
        self._open.pop(conn, None)

    def idle_seconds(self) -> float:
        """How long an idle keep-alive connection is kept: shorter while the connections are over half the cap."""
        return PRESSURE_IDLE_SECONDS if len(self._open) * 2 > self.cap else KEEPALIVE_SECONDS


@dataclass(frozen=True)
class Deadlines:
    """What a connection is allowed, in seconds: for a request's head, its body, unsent answers to move, idling."""

    head_seconds: float
    body_seconds: float
    send_seconds: float
    idle_seconds: float
