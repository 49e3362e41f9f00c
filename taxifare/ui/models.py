"""The registry as the console shows it: every version with its metrics and lineage (data -> run ->
version), the champion, and the champion's history.

A version's metadata is untrusted JSON (whatever metadata.json holds): every value is read
through `_text` / `_number`, so a wrong type shows as text or a dash, never as an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from taxifare.errors import RegistryError
from taxifare.registry import history
from taxifare.registry.local import VERSION_NAME, Version
from taxifare.runs import summary
from taxifare.ui.store import NotFound, Sources


def _text(value: Any) -> str:
    if value is None or value == "":
        return ""
    return value if isinstance(value, str) else str(value)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _figure(metrics: dict[str, Any], who: str, name: str) -> float | None:
    return summary.number(_mapping(metrics.get(who)).get(name))


@dataclass
class VersionRow:
    name: str
    champion: bool
    problem: str | None
    created: str = ""
    run_id: str = ""
    run_known: bool = False
    source: str = ""
    data_fingerprint: str = ""
    test_fingerprint: str = ""
    test_rows: str = ""
    schema: str = ""
    decision: str = ""
    replaced: str = ""
    candidate_key: str = ""
    model_dir: str = ""
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    hparams: list[tuple[str, str]] = field(default_factory=list)

    @property
    def rmse(self) -> float | None:
        return self.metrics.get("candidate", {}).get("rmse")


def version_row(version: Version, champion: str | None, run_ids: set[str]) -> VersionRow:
    row = VersionRow(version.name, version.name == champion, version.problem)
    meta = version.metadata if isinstance(version.metadata, dict) else {}
    if version.problem:
        return row
    for key in ("created", "run_id", "source", "data_fingerprint", "test_fingerprint", "test_rows", "schema",
                "decision", "replaced", "candidate_key"):  # fmt: skip
        setattr(row, key, _text(meta.get(key))[:2000])
    row.run_known = row.run_id in run_ids
    row.model_dir = version.model_dir
    metrics = _mapping(meta.get("metrics"))
    row.metrics = {who: {m: _figure(metrics, who, m) for m in ("rmse", "mae")} for who in
                   ("candidate", "baseline", "champion")}  # fmt: skip
    hparams = meta.get("hparams")
    if isinstance(hparams, dict):
        row.hparams = sorted((str(k), _text(v)[:400]) for k, v in hparams.items())
    return row


@dataclass
class Registry:
    root: str
    versions: list[VersionRow]
    champion: str | None
    moves: list[history.Move]
    problems: list[str]

    def version(self, name: str) -> VersionRow:
        found = next((v for v in self.versions if v.name == name), None)
        if found is None:
            raise NotFound(f"no version {name[:40]!r} in {self.root}")
        return found

    def moves_of(self, name: str) -> list[history.Move]:
        return [m for m in self.moves if name in (m.to, m.previous)]


def read(sources: Sources) -> Registry:
    versions, champion, problems = sources.versions()
    try:
        moves, bad_lines = sources.registry().history()
    except RegistryError as err:
        moves, bad_lines = [], [str(err)]
    run_ids = {r.run_id for r in sources.runs()}
    rows = [version_row(v, champion, run_ids) for v in versions]
    return Registry(sources.registry_root, rows, champion, moves, problems + bad_lines)


def check_name(name: str) -> str:
    if name in ("champion", "latest"):
        return name
    if not VERSION_NAME.match(name) or len(name) > 12:
        raise NotFound(f"{name[:40]!r} is not a version name (v0001, v0002, ...)")
    return name


def resolve(registry: Registry, name: str) -> VersionRow:
    """A version by its name, `champion` or `latest`."""
    if check_name(name) == "champion":
        name = registry.champion or ""
    elif name == "latest":
        name = registry.versions[-1].name if registry.versions else ""
    return registry.version(name)


def history_json(registry: Registry) -> list[dict[str, object]]:
    return [history.to_json(m) for m in registry.moves]


def exists(path: str) -> bool:
    return os.path.isdir(path)
