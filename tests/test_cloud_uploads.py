"""Staging local CSVs to Cloud Storage, against the GCS emulator."""

from __future__ import annotations

import os
import shutil

import pytest
from cloud_fakes import gcs_emulator

from taxifare.cloud import uploads
from taxifare.errors import TaxifareError
from trainer import gcs, sources


@pytest.fixture
def bucket(monkeypatch):
    with gcs_emulator(monkeypatch):
        gcs.client().create_bucket("data-bucket")
        yield "data-bucket"


@pytest.fixture
def files(tmp_path, sample_dir):
    out = tmp_path / "local"
    out.mkdir()
    for split in ("train", "valid", "test"):
        shutil.copy(os.path.join(sample_dir, f"{split}.csv"), out / f"{split}.csv")
    return out


def _objects(bucket: str) -> dict[str, int]:
    return {b.name: b.size for b in gcs.client().list_blobs(bucket)}


def test_upload_once_under_a_content_hash_then_skip(bucket, files):
    first = uploads.upload([str(files / "*.csv")], bucket)
    assert len(first.uploaded) == 3 and first.skipped == []
    assert first.uri.startswith(f"gs://{bucket}/{uploads.DATA_PREFIX}/") and first.uri.endswith("/*")
    objects = _objects(bucket)
    assert {os.path.basename(n) for n in objects} == {"train.csv", "valid.csv", "test.csv"}
    assert objects[first.prefix[len(f"gs://{bucket}/") :] + "train.csv"] == os.path.getsize(files / "train.csv")

    again = uploads.upload([str(files / "*.csv")], bucket)
    assert again.uri == first.uri and again.uploaded == [] and len(again.skipped) == 3

    # The URI is what the pipeline reads: same rows as the local files.
    remote, _ = sources.read_columns(first.uri)
    local, _ = sources.read_columns(str(files / "*.csv"))
    assert sorted(remote["key"]) == sorted(local["key"])


def test_an_interrupted_upload_resumes_with_the_missing_files_only(bucket, files):
    full = uploads.upload([str(files / "*.csv")], bucket)
    gcs.client().bucket(bucket).blob(full.prefix[len(f"gs://{bucket}/") :] + "valid.csv").delete()
    resumed = uploads.upload([str(files / "*.csv")], bucket)
    assert [os.path.basename(p) for p in resumed.uploaded] == ["valid.csv"]
    assert sorted(os.path.basename(p) for p in resumed.skipped) == ["test.csv", "train.csv"]


def test_changed_content_or_name_goes_to_a_new_folder(bucket, files):
    first = uploads.upload([str(files / "train.csv")], bucket)
    assert first.uri.endswith("/train.csv")
    with open(files / "train.csv", "a") as f:
        f.write("9.5,-73.98,40.75,-73.97,40.76,1,extra\n")
    changed = uploads.upload([str(files / "train.csv")], bucket)
    os.rename(files / "train.csv", files / "other.csv")  # the same bytes under another name
    renamed = uploads.upload([str(files / "other.csv")], bucket)
    assert len({first.prefix, changed.prefix, renamed.prefix}) == 3


def test_stage_local_data_passes_gs_paths_through_and_checks_input(bucket, files):
    uri = uploads.upload_local_data(f"{files / 'train.csv'},gs://elsewhere/x.csv", bucket)
    first, second = uri.split(",")
    assert first.startswith(f"gs://{bucket}/taxifare/data/") and second == "gs://elsewhere/x.csv"
    with pytest.raises(TaxifareError, match="no file matches"):
        uploads.upload_local_data([str(files / "*.parquet")], bucket)
    (files / "sub").mkdir()
    (files / "sub" / "train.csv").write_text("x")
    with pytest.raises(TaxifareError, match=r"both named 'train\.csv'"):
        uploads.upload_local_data([str(files / "train.csv"), str(files / "sub" / "*.csv")], bucket)
