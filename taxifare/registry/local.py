"""A local model registry: a directory of immutable versions and a movable `champion` alias.

Layout:
    <root>/versions/v0001/model/          the SavedModel
    <root>/versions/v0001/metadata.json   run id, metrics, data fingerprint, created time
    <root>/aliases.json                   {"champion": "v0001"}
    <root>/history.jsonl                  every champion move (history.py)

A version folder appears only when complete (written aside in `.incoming-<host>-<pid>-<hex>`,
then renamed), and the alias file is replaced atomically, so readers never see a half-written
model or alias. Files and folders are created with the process's umask (0644/0755 by default),
so a server running as another user can read what a run wrote.

Whatever a file holds, reading it gives a RegistryError naming the file and the fix, never a
traceback: `versions()` lists every version and marks the unreadable ones (`Version.problem`),
and `promote` rewrites a damaged aliases.json.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from taxifare.errors import ChampionMoved, RegistryError
from taxifare.files import pid_alive, read_regular
from taxifare.registry import history, manifest

CHAMPION = "champion"
VERSION_NAME = re.compile(r"^v\d+$")
ANY = object()  # set_alias without a compare-and-set condition
INCOMING = ".incoming-"
MAX_ALIASES_BYTES = 1 << 20
STALE_SECONDS = 24 * 3600  # another host's unfinished copy is removed after this long
FIX_ALIASES = "`taxifare models promote VERSION` rewrites it (see `taxifare models list`)"
FIX_VERSION = "restore that version's folder from a copy, or delete the folder; the other versions are unaffected"


@dataclass(frozen=True)
class Version:
    name: str
    path: str
    metadata: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None  # why this version cannot be used (then metadata is empty)

    @property
    def model_dir(self) -> str:
        return os.path.join(self.path, "model")


class LocalRegistry:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.versions_dir = os.path.join(self.root, "versions")
        self.aliases_path = os.path.join(self.root, "aliases.json")

    # reading

    def names(self) -> list[str]:
        """Every version folder's name, oldest first."""
        try:
            entries = os.listdir(self.versions_dir)
        except FileNotFoundError:
            return []
        except OSError as err:
            raise RegistryError(
                f"{self.versions_dir}: cannot be listed ({err.strerror})", "check its permissions"
            ) from None
        return sorted((n for n in entries if VERSION_NAME.match(n)), key=lambda n: int(n[1:]))

    def versions(self) -> list[Version]:
        """Every version, the unreadable ones too (with `problem` saying why)."""
        return [self._read(name) for name in self.names()]

    def get(self, name: str) -> Version:
        if not VERSION_NAME.match(name):
            raise RegistryError(f"{name!r} is not a version name (v0001, v0002, ...)")
        if not os.path.isdir(os.path.join(self.versions_dir, name)):
            known = ", ".join(self.names())
            raise RegistryError(f"no version {name!r} in {self.root}" + (f"; known: {known}" if known else ""))
        version = self._read(name)
        if version.problem:
            raise RegistryError(version.problem, FIX_VERSION)
        return version

    def _read(self, name: str) -> Version:
        path = os.path.join(self.versions_dir, name)
        meta_path = os.path.join(path, "metadata.json")
        try:
            metadata = json.loads(read_regular(meta_path, MAX_ALIASES_BYTES, RegistryError, FIX_VERSION))
        except FileNotFoundError:
            return Version(name, path, problem=f"{meta_path} is missing")
        except RegistryError as err:
            return Version(name, path, problem=err.message)
        except (ValueError, RecursionError):
            return Version(name, path, problem=f"{meta_path} is not valid JSON (damaged or truncated)")
        if not isinstance(metadata, dict):
            return Version(name, path, problem=f"{meta_path} is not a JSON object")
        model = os.path.join(path, "model")
        if not os.path.isfile(os.path.join(model, "saved_model.pb")):
            return Version(name, path, problem=f"{model} holds no SavedModel")
        if problem := manifest.changed(model, metadata.get("files"), deep=False):
            return Version(name, path, problem=problem)
        return Version(name, path, metadata)

    def aliases(self) -> dict[str, str]:
        """{alias: version name}; RegistryError naming aliases.json and the fix when it is damaged."""
        try:  # a directory, a pipe or a link is refused, not waited on
            raw = read_regular(self.aliases_path, MAX_ALIASES_BYTES, RegistryError, FIX_ALIASES)
        except FileNotFoundError:
            return {}
        try:
            aliases = json.loads(raw)
        except (ValueError, RecursionError):
            raise RegistryError(f"{self.aliases_path} is not valid JSON (damaged or truncated)", FIX_ALIASES) from None
        if not isinstance(aliases, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and VERSION_NAME.match(v) for k, v in aliases.items()
        ):
            raise RegistryError(
                f'{self.aliases_path} should map aliases to version names, like {{"champion": "v0001"}}', FIX_ALIASES
            )
        return aliases

    def champion(self) -> Version | None:
        name = self.aliases().get(CHAMPION)
        if not name:
            return None
        try:
            return self.get(name)
        except RegistryError as err:
            raise RegistryError(f"the champion {name}: {err.message}", err.fix or FIX_ALIASES) from None

    # writing

    def check_writable(self) -> None:
        """Deploying writes versions/ and aliases.json under the lock: a registry this process cannot write is said
        before the run gets that far (evaluate calls this), not after a model was blessed."""
        paths = [self.versions_dir, self.root] if os.path.isdir(self.versions_dir) else [self.root]
        if not os.path.isdir(self.root):  # created by the first deploy: its nearest existing parent must allow it
            parent = os.path.dirname(self.root)
            while parent != os.path.dirname(parent) and not os.path.isdir(parent):
                parent = os.path.dirname(parent)
            paths = [parent]
        lock = os.path.join(self.root, ".lock")  # every deploy opens it for writing
        if os.path.isfile(lock):
            paths.append(lock)
        for path in paths:
            if not os.access(path, os.W_OK | (0 if path == lock else os.X_OK)):
                raise RegistryError(
                    f"the registry cannot be written here: {path} is not writable by uid {os.getuid()}",
                    f"make it writable by that user (chmod -R a+rwX {self.root}, or chown); on Kubeflow the "
                    f"claim's volume must be writable by the image's user: kfp cannot set the pod's fsGroup, "
                    f"so use a storage class that does, or chown it once",
                )

    def register(self, model_dir: str, metadata: Mapping[str, Any]) -> Version:
        """Copy a SavedModel in as the next version; the version is immutable from then on."""
        if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
            raise RegistryError(f"{model_dir} holds no SavedModel (saved_model.pb missing)")
        os.makedirs(self.versions_dir, exist_ok=True)
        self.remove_leftovers()
        staging = os.path.join(
            self.versions_dir, f"{INCOMING}{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        )
        try:
            _copy_tree(model_dir, os.path.join(staging, "model"))
            files = manifest.of(os.path.join(staging, "model"))  # what `models list` and promote check against
            while True:
                name = self._next_name()
                created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                record = {**metadata, "version": name, "created": created, "files": files}
                _write_new(os.path.join(staging, "metadata.json"), json.dumps(record, indent=2, sort_keys=True))
                try:
                    # rename() onto an existing (non-empty) version fails: another run took the name.
                    os.rename(staging, os.path.join(self.versions_dir, name))
                    break
                except OSError:
                    if not os.path.isdir(os.path.join(self.versions_dir, name)):
                        raise
                    os.remove(os.path.join(staging, "metadata.json"))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.get(name)

    def remove_leftovers(self) -> list[str]:
        """Remove unfinished copies of killed registrations: this host's whose process is gone, others' after a day."""
        try:
            entries = [n for n in os.listdir(self.versions_dir) if n.startswith(INCOMING)]
        except OSError:
            return []
        removed = []
        for name in entries:
            path = os.path.join(self.versions_dir, name)
            host, _, rest = name[len(INCOMING) :].rpartition("-")[0].rpartition("-")
            pid = int(rest) if rest.isdigit() else None
            ours = host == socket.gethostname() and pid is not None
            try:
                stale = time.time() - os.stat(path).st_mtime > STALE_SECONDS
            except OSError:
                continue
            if (ours and pid is not None and not pid_alive(pid)) or (not ours and stale):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(name)
        return removed

    def _next_name(self) -> str:
        numbers = [int(name[1:]) for name in self.names()]
        return f"v{max(numbers, default=0) + 1:04d}"

    def set_alias(
        self, alias: str, version: str, expected: object = ANY, reason: str = "", run_id: str | None = None
    ) -> str | None:
        """Point `alias` at `version`; with `expected`, only if it still points there (else fail). A move
        of the champion is added to its history (`reason`, `run_id`: why, and which run made it).

        Without `expected` a damaged aliases.json is rewritten: the problem it had is returned.
        """
        self.get(version)  # must exist and be readable
        # The lock serialises read-modify-write of the alias file between concurrent runs.
        with open(os.path.join(self.root, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            repaired = None
            try:
                aliases = self.aliases()
            except RegistryError as err:
                if expected is not ANY:
                    raise RegistryError(
                        f"{err.message}: cannot check that {alias} is still {expected}", FIX_ALIASES
                    ) from None
                aliases, repaired = {}, err.message
            current = aliases.get(alias)
            if expected is not ANY and current != expected:
                raise ChampionMoved(
                    f"{alias} moved to {current} while this run was evaluated against {expected}; "
                    f"{version} stays registered but not {alias} (promote it by hand if it should be)"
                )
            tmp = os.path.join(self.root, f".aliases-{os.getpid()}-{secrets.token_hex(4)}.tmp")
            try:
                _write_new(tmp, json.dumps({**aliases, alias: version}, indent=2, sort_keys=True))
                os.replace(tmp, self.aliases_path)
            except BaseException:
                if os.path.exists(tmp):
                    os.remove(tmp)
                raise
            if alias == CHAMPION and current != version:
                history.append(self.root, lock, version, current, run_id, reason or "promoted by hand")
        return repaired

    def promote(self, version: str, expected: object = ANY, reason: str = "", run_id: str | None = None) -> Version:
        self.set_alias(CHAMPION, version, expected, reason, run_id)
        return self.get(version)

    def history(self) -> tuple[list[history.Move], list[str]]:
        """Every champion move, oldest first, and the log's lines that could not be read."""
        return history.read(self.root)

    def resolve(self, name: str) -> Version:
        """A version by what a user typed: its name (v0003), `champion` or `latest`."""
        if name in (CHAMPION, "latest"):
            found = self.champion() if name == CHAMPION else (self.get(self.names()[-1]) if self.names() else None)
            if found is None:
                raise RegistryError(f"no {name} in {self.root} yet", "`taxifare run` trains and registers one")
            return found
        return self.get(name)

    def verify(self, version: Version) -> None:
        """Every file of the version as registered (sizes and SHA-256): RegistryError naming the first that is not."""
        if problem := manifest.changed(version.model_dir, version.metadata.get("files"), deep=True):
            raise RegistryError(f"{version.name}: {problem}", FIX_VERSION)

    def find(self, key: str) -> Version | None:
        """The version registered for a candidate key (same data, parameters, seed and code), if any."""
        return next((v for v in self.versions() if not v.problem and v.metadata.get("candidate_key") == key), None)


def _write_new(path: str, text: str) -> None:
    """Create `path` (with the umask's mode, unlike mkstemp's 0600), write and flush it to disk."""
    with open(path, "x") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _copy_tree(src: str, dst: str) -> None:
    """shutil.copytree without copying modes: what is created follows the umask."""
    os.makedirs(dst)
    for root, dirs, files in os.walk(src):
        target = os.path.join(dst, os.path.relpath(root, src))
        for name in dirs:
            os.mkdir(os.path.join(target, name))
        for name in files:
            shutil.copyfile(os.path.join(root, name), os.path.join(target, name))
