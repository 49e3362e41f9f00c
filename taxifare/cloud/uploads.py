"""Upload local CSV files to Cloud Storage once, under a name derived from their content.

`upload_local_data(["./data/*.csv"], "my-bucket")` uploads to
gs://my-bucket/taxifare/data/<content-hash>/ and returns a gs:// URI for the pipeline. The
hash covers the file names and bytes, so the same files map to the same folder: a repeated
run (or one resumed after an interruption) uploads only what is not there yet, checked by
CRC32C, and objects appear whole or not at all.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from taxifare.cloud import names, reach
from taxifare.errors import UsageError

DATA_PREFIX = "taxifare/data"
HASH_CHARS = 20
BLOCK = 1 << 20


@dataclasses.dataclass(frozen=True)
class LocalFile:
    path: str
    name: str
    sha256: str
    crc32c: str  # base64, as Cloud Storage reports it
    size: int


@dataclasses.dataclass
class StagingResult:
    uri: str
    prefix: str
    uploaded: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)


def _describe(path: str) -> LocalFile:
    import google_crc32c

    sha, crc, size = hashlib.sha256(), google_crc32c.Checksum(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            sha.update(block)
            crc.update(block)
            size += len(block)
    return LocalFile(path, os.path.basename(path), sha.hexdigest(), base64.b64encode(crc.digest()).decode(), size)


def expand_local(patterns: Sequence[str]) -> list[str]:
    from trainer import data_files

    found: list[str] = []
    for pattern in patterns:
        matches = data_files.expand_paths(pattern)
        found.extend(m for m in matches if m not in found)
    return found


def content_hash(files: Sequence[LocalFile]) -> str:
    """Names and bytes: rows without a key column are keyed by file name, so names matter."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        digest.update(f"{f.name}\0{f.sha256}\n".encode())
    return digest.hexdigest()[:HASH_CHARS]


def upload(
    patterns: Sequence[str],
    bucket: str,
    project: str | None = None,
    *,
    workers: int = 8,
    progress: Callable[[str], None] | None = None,
) -> StagingResult:
    """Upload the local files the patterns name (skipping those already there); see module doc."""
    from trainer import gcs

    bucket = names.bucket(bucket)
    paths = expand_local(patterns)
    # Uploads retry for minutes without a route: say which host does not answer, now.
    reach.check(*reach.host_port(os.environ.get("STORAGE_EMULATOR_HOST") or "https://storage.googleapis.com"))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        files = list(pool.map(_describe, paths))
    by_name: dict[str, str] = {}
    for f in files:
        if f.name in by_name:
            raise UsageError(f"--data: two files are both named {f.name!r} ({by_name[f.name]}, {f.path})", "rename one")
        by_name[f.name] = f.path
    prefix = f"{DATA_PREFIX}/{content_hash(files)}"
    client = gcs.client(project)
    handle = client.bucket(bucket)
    present = {b.name: b.crc32c for b in client.list_blobs(bucket, prefix=prefix + "/")}
    result = StagingResult(uri="", prefix=f"gs://{bucket}/{prefix}/")
    todo = []
    for f in files:
        if present.get(f"{prefix}/{f.name}") == f.crc32c:
            result.skipped.append(f.path)
        else:
            todo.append(f)

    def upload(f: LocalFile) -> str:
        blob = handle.blob(f"{prefix}/{f.name}")
        # The client sends files above 8 MiB as resumable uploads in chunks and verifies the CRC32C.
        blob.upload_from_filename(f.path, content_type="text/csv", checksum="crc32c")
        if progress:
            progress(f"uploaded {f.path} ({f.size} bytes)")
        return f.path

    if todo:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            result.uploaded.extend(pool.map(upload, todo))
    only = files[0].name if len(files) == 1 else "*"
    result.uri = f"gs://{bucket}/{prefix}/{only}"
    return result


def upload_local_data(patterns: Sequence[str] | str, bucket: str, project: str | None = None) -> str:
    """Upload local data once and return the gs:// URI (a glob, or the one object) to pass as the source."""
    if isinstance(patterns, str):
        patterns = [p for p in patterns.split(",") if p.strip()]
    remote = [p.strip() for p in patterns if p.strip().startswith("gs://")]
    local = [p.strip() for p in patterns if not p.strip().startswith("gs://")]
    uris = [upload(local, bucket, project).uri] if local else []
    return ",".join(uris + remote)
