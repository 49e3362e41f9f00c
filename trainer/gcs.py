"""Cloud Storage access through google-cloud-storage.

TensorFlow's own gs:// file system ignores STORAGE_EMULATOR_HOST, so all project code that
reads or writes gs:// goes through here, which the tests point at a GCS emulator.
"""

from __future__ import annotations

import functools
import os
from typing import IO, Any

from taxifare.errors import DataError, UsageError


def split(uri: str) -> tuple[str, str]:
    if not uri.startswith("gs://"):
        raise UsageError(f"not a Cloud Storage URI: {uri!r} (expected gs://BUCKET/PATH)")
    bucket, _, name = uri[len("gs://") :].partition("/")
    if not bucket:
        raise UsageError(f"no bucket in {uri!r} (expected gs://BUCKET/PATH)")
    return bucket, name


@functools.cache
def client(project: str | None = None) -> Any:
    import google.cloud.storage as storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=project or "emulator", credentials=AnonymousCredentials())
    return storage.Client(project=project)


def glob(pattern: str) -> list[str]:
    """Objects matching a gs:// glob the way a local glob matches files: `*`, `?` and `[...]`
    stay within one path segment (Cloud Storage's own matchGlob semantics, evaluated by the
    server); a name without wildcards is that one object, if it exists."""
    bucket, name = split(pattern)
    wild = next((i for i, ch in enumerate(name) if ch in "*?["), None)
    if wild is None:
        return [f"gs://{bucket}/{b.name}" for b in client().list_blobs(bucket, prefix=name) if b.name == name]
    blobs = client().list_blobs(bucket, prefix=name[:wild], match_glob=name)
    return sorted(f"gs://{bucket}/{b.name}" for b in blobs if not b.name.endswith("/"))


def size(uri: str) -> int:
    bucket, name = split(uri)
    blob = client().bucket(bucket).get_blob(name)
    if blob is None:
        raise DataError(f"{uri}: no such object; check the bucket and path")
    return int(blob.size or 0)


def open_read(uri: str) -> IO[bytes]:
    bucket, name = split(uri)
    return client().bucket(bucket).blob(name).open("rb")


def download_dir(uri: str, local_dir: str) -> int:
    """Copy every object under the gs:// prefix `uri` into `local_dir`, keeping relative paths.

    Returns how many files were written; 0 means nothing is stored there.
    """
    bucket, prefix = split(uri.rstrip("/"))
    prefix = prefix + "/" if prefix else ""
    count = 0
    for blob in client().list_blobs(bucket, prefix=prefix):
        relative = blob.name[len(prefix) :]
        if not relative or relative.endswith("/"):
            continue  # folder placeholders
        target = os.path.normpath(os.path.join(local_dir, relative))
        if not target.startswith(os.path.normpath(local_dir) + os.sep):
            raise DataError(f"{uri}: object {blob.name!r} would land outside {local_dir}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        blob.download_to_filename(target)
        count += 1
    return count
