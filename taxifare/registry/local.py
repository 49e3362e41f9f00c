"""A local model registry: a directory of immutable versions and a movable `champion` alias.

Layout:
    <root>/versions/v0001/model/          the SavedModel
    <root>/versions/v0001/metadata.json   run id, metrics, data fingerprint, created time
    <root>/aliases.json                   {"champion": "v0001"}

A version folder appears only when complete (written aside, then renamed), and the alias
file is replaced atomically, so readers never see a half-written model or alias.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taxifare.errors import ChampionMoved, RegistryError

CHAMPION = "champion"
VERSION_NAME = re.compile(r"^v\d+$")
ANY = object()  # set_alias without a compare-and-set condition


@dataclass(frozen=True)
class Version:
    name: str
    path: str
    metadata: dict[str, Any]

    @property
    def model_dir(self) -> str:
        return os.path.join(self.path, "model")


class LocalRegistry:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.versions_dir = os.path.join(self.root, "versions")
        self.aliases_path = os.path.join(self.root, "aliases.json")

    def versions(self) -> list[Version]:
        if not os.path.isdir(self.versions_dir):
            return []
        names = sorted(n for n in os.listdir(self.versions_dir) if n.startswith("v") and n[1:].isdigit())
        return [self.get(n) for n in names]

    def get(self, name: str) -> Version:
        if not VERSION_NAME.match(name):
            raise RegistryError(f"{name!r} is not a version name (v0001, v0002, ...)")
        path = os.path.join(self.versions_dir, name)
        meta_path = os.path.join(path, "metadata.json")
        if not os.path.isfile(meta_path):
            known = ", ".join(v.name for v in self.versions())
            raise RegistryError(f"no version {name!r} in {self.root}" + (f"; known: {known}" if known else ""))
        with open(meta_path) as f:
            return Version(name, path, json.load(f))

    def aliases(self) -> dict[str, str]:
        try:
            with open(self.aliases_path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def champion(self) -> Version | None:
        name = self.aliases().get(CHAMPION)
        return self.get(name) if name else None

    def register(self, model_dir: str, metadata: Mapping[str, Any]) -> Version:
        """Copy a SavedModel in as the next version; the version is immutable from then on."""
        if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
            raise RegistryError(f"{model_dir} holds no SavedModel (saved_model.pb missing)")
        os.makedirs(self.versions_dir, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".incoming-", dir=self.versions_dir)
        try:
            shutil.copytree(model_dir, os.path.join(staging, "model"))
            while True:
                name = self._next_name()
                record = {**metadata, "version": name, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                with open(os.path.join(staging, "metadata.json"), "w") as f:
                    json.dump(record, f, indent=2, sort_keys=True)
                try:
                    # rename() onto an existing (non-empty) version fails: another run took the name.
                    os.rename(staging, os.path.join(self.versions_dir, name))
                    break
                except OSError:
                    if not os.path.isdir(os.path.join(self.versions_dir, name)):
                        raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.get(name)

    def _next_name(self) -> str:
        numbers = [int(v.name[1:]) for v in self.versions()]
        return f"v{max(numbers, default=0) + 1:04d}"

    def set_alias(self, alias: str, version: str, expected: object = ANY) -> None:
        """Point `alias` at `version`; with `expected`, only if it still points there (else fail)."""
        self.get(version)  # must exist
        # The lock serialises read-modify-write of the alias file between concurrent runs.
        with open(os.path.join(self.root, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.aliases().get(alias)
            if expected is not ANY and current != expected:
                raise ChampionMoved(
                    f"{alias} moved to {current} while this run was evaluated against {expected}; "
                    f"{version} stays registered but not {alias} (promote it by hand if it should be)"
                )
            aliases = {**self.aliases(), alias: version}
            fd, tmp = tempfile.mkstemp(prefix=".aliases-", dir=self.root)
            with os.fdopen(fd, "w") as f:
                json.dump(aliases, f, indent=2, sort_keys=True)
            os.replace(tmp, self.aliases_path)

    def promote(self, version: str, expected: object = ANY) -> Version:
        self.set_alias(CHAMPION, version, expected)
        return self.get(version)
