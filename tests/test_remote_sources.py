"""Data sources beyond local files, through the real code paths: a GCS emulator and a real HTTP server."""

from __future__ import annotations

import functools
import glob
import http.server
import os
import threading

import pytest
from cloud_fakes import gcs_emulator

from taxifare import staging
from taxifare.errors import DataError, UsageError
from trainer import data_files, gcs, sample_data, sources
from trainer.config import Source


def test_gs_glob_is_read_and_validated_through_cloud_storage(monkeypatch, tmp_path):
    paths = sample_data.write_splits(str(tmp_path), rows=3000, seed=4, shards=2)
    with gcs_emulator(monkeypatch):
        bucket = gcs.client().create_bucket("trips")
        for path in paths["train"]:
            bucket.blob(f"data/{os.path.basename(path)}").upload_from_filename(path)
        bucket.blob("data/notes.txt").upload_from_string("not data")
        found = data_files.expand_paths("gs://trips/data/train-*.csv")
        assert found == [f"gs://trips/data/{os.path.basename(p)}" for p in paths["train"]]
        remote, remote_stats = sources.read_columns(found)
        with pytest.raises(UsageError, match=r"no object matches 'gs://trips/data/valid-\*\.csv'"):
            data_files.expand_paths("gs://trips/data/valid-*.csv")
    local, local_stats = sources.read_columns(paths["train"])
    assert remote_stats.kept == local_stats.kept and remote_stats.rejected == local_stats.rejected
    assert remote["fare_amount"].tolist() == local["fare_amount"].tolist()


def test_gs_globs_match_the_way_local_globs_do(monkeypatch, tmp_path):
    """`*` stays within one path segment on Cloud Storage as on disk (fnmatch's `*` would cross `/`)."""
    names = ["data/a.csv", "data/b.csv", "data/old/c.csv", "data/x1.csv", "data/x22.csv", "database.csv"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    with gcs_emulator(monkeypatch):
        bucket = gcs.client().create_bucket("globs")
        for name in names:
            bucket.blob(name).upload_from_string("x")
        for pattern in ("data/*.csv", "data/*/*.csv", "data/x?.csv", "data/[ab].csv", "data*", "data/old/c.csv"):
            remote = [u.removeprefix("gs://globs/") for u in gcs.glob(f"gs://globs/{pattern}")]
            on_disk = sorted(os.path.relpath(p, tmp_path) for p in glob.glob(str(tmp_path / pattern)))
            on_disk = [p for p in on_disk if os.path.isfile(tmp_path / p)]
            assert remote == on_disk, pattern


@pytest.fixture
def http_dir(tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_stage_data_reads_a_url(http_dir, tmp_path):
    folder, url = http_dir
    sample_data.write_splits(str(folder), rows=4000, seed=9)
    out = {s: str(tmp_path / f"staged-{s}.csv") for s in staging.SPLITS}
    result = staging.stage(out, Source(source=f"{url}/train.csv"))
    _, local = sources.read_columns(str(folder / "train.csv"))
    assert result["rows_kept"] == local.kept and result["rows_read"] == local.rows
    assert sum(result["split_rows"].values()) == local.kept


def test_a_missing_url_fails_naming_it(http_dir):
    _, url = http_dir
    with pytest.raises(DataError, match=r"nope\.csv: cannot download it \(HTTP Error 404"):
        sources.read_columns(f"{url}/nope.csv")
