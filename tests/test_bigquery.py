"""BigQuery sources: the SQL built, and the export flowing into stage_data's validation.

BigQuery itself is a recording server speaking its REST API to the real client library;
the GCS side is the emulator. Only the opt-in gcp test runs a real query.
"""

from __future__ import annotations

import io
import os
import re

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from cloud_fakes import Capture, gcs_emulator

from taxifare import staging
from taxifare.cloud import bigquery
from taxifare.errors import UsageError
from trainer import gcs, sample_data, sources
from trainer.config import Source

ROWS = 3000


def _rows() -> pa.Table:
    cols = sample_data.generate(ROWS, seed=5)
    return pa.table({k: cols[k] for k in ("fare_amount", "pickuplon", "pickuplat", "dropofflon", "dropofflat",
                                          "passengers", "key")})  # fmt: skip


def _fake_bigquery(server: Capture, table: pa.Table) -> None:
    """jobs.insert answers DONE; an EXPORT DATA writes the shards to the (emulated) bucket as BigQuery would."""

    def insert(req, m):
        body = req.json()
        sql = body["configuration"]["query"]["query"]
        if sql.startswith("EXPORT DATA"):
            uri = re.search(r"uri = '([^']+)'", sql).group(1)
            bucket, name = gcs.split(uri)
            half = table.num_rows // 2
            for i, part in enumerate((table.slice(0, half), table.slice(half))):
                buf = io.BytesIO()
                pacsv.write_csv(part, buf)
                gcs.client().bucket(bucket).blob(name.replace("*", f"{i:012d}")).upload_from_string(buf.getvalue())
        ref = {**body["jobReference"], "location": "US"}
        return 200, {**body, "jobReference": ref, "status": {"state": "DONE"}}

    def results(req, m):
        fields = [{"name": n, "type": "STRING" if n == "key" else "FLOAT"} for n in table.column_names]
        rows = [{"f": [{"v": str(v)} for v in row.values()]} for row in table.to_pylist()]
        ref = {"projectId": m.group(1), "jobId": m.group(2), "location": "US"}
        return 200, {"jobComplete": True, "jobReference": ref, "totalRows": str(len(rows)),
                     "schema": {"fields": fields}, "rows": rows}  # fmt: skip

    server.route("POST", r"/bigquery/v2/projects/([^/]+)/jobs", insert)
    server.route("GET", r"/bigquery/v2/projects/([^/]+)/queries/([^/]+)", results)


def _client(server: Capture):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery as bq

    return bq.Client(project="my-proj", credentials=AnonymousCredentials(), client_options={"api_endpoint": server.url})


def _sql(server: Capture) -> list[str]:
    return [
        r.json()["configuration"]["query"]["query"] for r in server.sent("POST", r"/bigquery/v2/projects/my-proj/jobs")
    ]


def test_table_query_is_the_courses_with_repeatable_hash_sampling():
    sql = bigquery.table_query(bigquery.PUBLIC_TABLE, sample_every=1000)
    assert f"FROM `{bigquery.PUBLIC_TABLE}`" in sql
    assert "MOD(ABS(FARM_FINGERPRINT(CAST(pickup_datetime AS STRING))), 1000) = 0" in sql
    assert "(tolls_amount + fare_amount) AS fare_amount" in sql and "passenger_count * 1.0 AS passengers" in sql
    assert "AS key" in sql
    assert "FARM_FINGERPRINT" not in bigquery.table_query(bigquery.COURSE_TABLE)
    wrapped = bigquery.build_query(bq_query="SELECT * FROM t;", sample_every=10)
    assert wrapped.startswith("SELECT * FROM (\nSELECT * FROM t\n)")
    assert wrapped.endswith("MOD(ABS(FARM_FINGERPRINT(CAST(key AS STRING))), 10) = 0")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of"),
        ({"bq_table": "t", "bq_query": "SELECT 1"}, "exactly one of"),
        ({"bq_table": "just_a_table"}, "not project.dataset.table"),
        ({"bq_table": "p.d.t`; DROP"}, "not project.dataset.table"),
        ({"bq_table": "proj.d.t", "sample_every": -1}, "bq_sample"),
    ],
)
def test_bad_bigquery_sources_are_refused(kwargs, message):
    with pytest.raises(UsageError, match=message):
        bigquery.build_query(**kwargs)


def test_export_to_cloud_storage_then_stage_validates_the_shards(monkeypatch, tmp_path):
    table = _rows()
    with gcs_emulator(monkeypatch), Capture() as server:
        gcs.client().create_bucket("root")
        _fake_bigquery(server, table)
        out = {s: str(tmp_path / f"{s}.csv") for s in staging.SPLITS}
        src = Source(bq_table=bigquery.PUBLIC_TABLE, bq_sample=100)
        result = staging.stage(out, src, project="my-proj", bq_client=_client(server),
                                  export_dir="gs://root/pipeline-root/run/stage-data/bq-export")  # fmt: skip
    (sql,) = _sql(server)
    assert sql.startswith(
        "EXPORT DATA OPTIONS (uri = 'gs://root/pipeline-root/run/stage-data/bq-export/part-*.csv', "
        "format = 'CSV', overwrite = true, header = true) AS\nSELECT"
    )
    assert "), 100) = 0" in sql
    assert result["files"] == [f"gs://root/pipeline-root/run/stage-data/bq-export/part-{i:012d}.csv" for i in (0, 1)]
    assert result["rows_read"] == ROWS and result["rows_kept"] == sum(result["split_rows"].values())
    assert result["rows_read"] - result["rows_kept"] == sum(result["rejected"].values())


def test_export_to_a_local_root_fetches_rows_through_the_api(tmp_path):
    table = _rows()
    with Capture() as server:
        _fake_bigquery(server, table)
        out = {s: str(tmp_path / f"{s}.csv") for s in staging.SPLITS}
        src = Source(bq_query="SELECT * FROM `my-proj.taxi.trips`")
        result = staging.stage(out, src, project="my-proj", export_dir=str(tmp_path / "bq-export"),
                                  bq_client=_client(server))  # fmt: skip
    assert _sql(server) == ["SELECT * FROM `my-proj.taxi.trips`"]
    assert result["rows_read"] == ROWS
    cols, _ = sources.read_columns(os.path.join(tmp_path, "bq-export", "*.csv"), max_bad_fraction=1.0)
    assert set(cols["key"]) >= set(sources.read_columns(out["test"])[0]["key"])


def test_bigquery_and_file_sources_do_not_mix(tmp_path):
    with pytest.raises(UsageError, match="not both"):
        staging.stage({s: str(tmp_path / s) for s in staging.SPLITS},
                         Source(source="x.csv", bq_table="p.d.t"), export_dir=str(tmp_path))  # fmt: skip


@pytest.mark.gcp
def test_public_table_sample_against_real_bigquery(tmp_path):
    project = os.environ.get("TAXIFARE_TEST_PROJECT")
    if not project:
        pytest.skip("set TAXIFARE_TEST_PROJECT (and credentials) to run")
    out = {s: str(tmp_path / f"{s}.csv") for s in staging.SPLITS}
    src = Source(bq_table=bigquery.PUBLIC_TABLE, bq_sample=200_000)
    result = staging.stage(out, src, project=project, export_dir=str(tmp_path / "bq-export"))
    assert result["rows_kept"] > 100
