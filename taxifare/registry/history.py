"""Every champion move, in order: `<registry>/history.jsonl`, one JSON object per line, appended
under the registry's lock by the move itself (`taxifare models history` reads it).

The file is untrusted input like every registry file: a line that is not a move is reported, not
trusted; the log never decides anything (aliases.json does), it only tells the story.
"""

from __future__ import annotations

import json
import os
import time
from typing import IO

import msgspec

from taxifare.errors import RegistryError
from taxifare.files import read_regular

FILE = "history.jsonl"
MAX_BYTES = 64 << 20
FIX = "it is only the story of the champion's moves: move it aside to start a new one"


class Move(msgspec.Struct, kw_only=True):
    time: str  # UTC, ISO 8601
    to: str  # the version that became the champion
    previous: str | None = msgspec.field(default=None, name="from")
    run_id: str | None = None  # the run that moved it (None: a person, `taxifare models promote`)
    reason: str = ""


_decoder = msgspec.json.Decoder(Move)


def append(root: str, locked: IO[str], to: str, previous: str | None, run_id: str | None, reason: str) -> Move:
    """Add a move (the caller holds the registry's lock, `locked`: moves are written in the order made)."""
    del locked  # held, not written: the lock file orders the appends
    move = Move(time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), to=to, previous=previous, run_id=run_id,
                reason=" ".join(reason.split())[:500])  # fmt: skip
    fd = os.open(os.path.join(root, FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    with os.fdopen(fd, "ab") as f:
        f.write(msgspec.json.encode(move) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return move


def read(root: str) -> tuple[list[Move], list[str]]:
    """The moves, oldest first, and what is wrong with the lines that are not moves (by line number)."""
    path = os.path.join(root, FILE)
    try:
        raw = read_regular(path, MAX_BYTES, RegistryError, FIX)
    except FileNotFoundError:
        return [], []
    moves, problems = [], []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            moves.append(_decoder.decode(line))
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            problems.append(f"{path} line {number}: not a champion move ({err})")
    return moves, problems


def to_json(move: Move) -> dict[str, object]:
    out: dict[str, object] = json.loads(msgspec.json.encode(move))
    return out
