"""A registered version's files as registered: each file's size and SHA-256, kept in its metadata.

`models list` compares sizes (cheap: a truncated or missing file shows at once); `promote` compares
hashes too before a version may become the champion. Versions registered before manifests were
kept have none, and are checked by the serving check alone.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any


def of(folder: str) -> dict[str, list[Any]]:
    """{relative path: [size, sha256]} for every file under `folder`."""
    out: dict[str, list[Any]] = {}
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            out[os.path.relpath(path, folder)] = [os.path.getsize(path), digest]
    return out


def changed(folder: str, files: Any, deep: bool) -> str | None:
    """What differs from the manifest `files` (None if nothing, or if there is no manifest); with
    `deep`, contents too. The manifest is untrusted input: a path in it never leaves `folder`."""
    if files is None:
        return None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) for k, v in files.items()
    ):
        return f"{folder}: its metadata's file list is damaged"
    base = os.path.realpath(folder)
    for rel, (size, _) in sorted(files.items()):
        path = os.path.realpath(os.path.join(folder, rel))
        if not path.startswith(base + os.sep):
            return f"{folder}: its metadata names a file outside the model ({rel!r})"
        if not os.path.isfile(path):
            return f"{os.path.join(folder, rel)} is missing"
        if os.path.getsize(path) != size:
            return f"{os.path.join(folder, rel)} is {os.path.getsize(path):,} bytes; it was {size:,} when registered"
    if deep:
        now = of(folder)
        for rel, (_, digest) in sorted(files.items()):
            if now.get(rel, [0, ""])[1] != digest:
                return f"{os.path.join(folder, rel)} changed since it was registered"
    return None
