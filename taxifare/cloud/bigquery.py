"""BigQuery as a data source: build the query, export the rows to sharded CSV.

`--bq-table project.dataset.table` reads a table with the NYC taxi trips layout (the course's
`nyc-tlc.yellow.trips`, or the public `bigquery-public-data.new_york.tlc_yellow_trips_2015`)
through the course's query; `--bq-query SQL` runs your own, which must return the columns of
trainer.features (any aliases it knows). `sample_every=N` keeps one trip in N by the course's
repeatable hash, `MOD(ABS(FARM_FINGERPRINT(...)), N) = 0`: the same trips every time.

The result lands as CSV files with a header, which stage_data then validates like any other
source: on Cloud Storage through `EXPORT DATA` (sharded by BigQuery), or, for a local
pipeline root, fetched through the API into one local file.
"""

from __future__ import annotations

import os
import re
from typing import Any

from taxifare.errors import DataError, UsageError
from trainer import features

PUBLIC_TABLE = "bigquery-public-data.new_york.tlc_yellow_trips_2015"
COURSE_TABLE = "nyc-tlc.yellow.trips"
SHARD_PATTERN = "part-*.csv"
_TABLE = re.compile(r"^(?P<project>[a-z][a-z0-9.:-]*[a-z0-9])\.(?P<dataset>\w+)\.(?P<table>[\w$-]+)$")


def check_table(table: str) -> str:
    table = table.strip().strip("`")
    if not _TABLE.match(table):
        raise UsageError(
            f"bq_table {table!r} is not project.dataset.table, e.g. {PUBLIC_TABLE} (the public NYC taxi trips)"
        )
    return table


def sample_clause(expression: str, sample_every: int) -> str:
    if sample_every < 0:
        raise UsageError(f"bq_sample must be 0 (every row) or N > 0 (one row in N), not {sample_every}")
    if sample_every <= 1:
        return "TRUE"
    return f"MOD(ABS(FARM_FINGERPRINT({expression})), {int(sample_every)}) = 0"


def table_query(table: str, sample_every: int = 0) -> str:
    """The course's query over a trips table: each field of the feature table by its `bq` expression
    (fare with tolls, the five features, a trip key).

    The WHERE repeats the table's ranges so that obviously broken trips stay in BigQuery;
    stage_data still validates every exported row.
    """
    table = check_table(table)
    return f"""SELECT
{features.SCHEMA.bq_select()}
FROM `{table}`
WHERE trip_distance > 0
  AND {features.SCHEMA.bq_where()}
  AND {sample_clause("CAST(pickup_datetime AS STRING)", sample_every)}"""


def build_query(bq_table: str = "", bq_query: str = "", sample_every: int = 0) -> str:
    """The SELECT for a table or for your own SQL (sampled on its `key` column when asked)."""
    if bool(bq_table) == bool(bq_query):
        raise UsageError("give exactly one of bq_table (project.dataset.table) and bq_query (SQL)")
    if bq_table:
        return table_query(bq_table, sample_every)
    sql = bq_query.strip().rstrip(";")
    if sample_every <= 1:
        sample_clause("", sample_every)  # validates
        return sql
    return f"SELECT * FROM (\n{sql}\n) WHERE {sample_clause(f'CAST({features.KEY} AS STRING)', sample_every)}"


def export_statement(select: str, uri_prefix: str) -> str:
    uri = uri_prefix.rstrip("/") + "/" + SHARD_PATTERN
    return f"EXPORT DATA OPTIONS (uri = '{uri}', format = 'CSV', overwrite = true, header = true) AS\n{select}"


def client(project: str = "") -> Any:
    from google.cloud import bigquery

    return bigquery.Client(project=project or None)


def export_csv(select: str, destination: str, bq: Any) -> str:
    """Run the query into CSV under `destination` (gs:// prefix or local folder); return a glob of the files."""
    if destination.startswith("gs://"):
        job = bq.query(export_statement(select, destination))
        job.result()
        return destination.rstrip("/") + "/" + SHARD_PATTERN
    import pyarrow.csv as pacsv

    os.makedirs(destination, exist_ok=True)
    table = bq.query(select).result().to_arrow(create_bqstorage_client=False)
    if table.num_rows == 0:
        raise DataError("the BigQuery query returned no rows: check the table, the WHERE clause and bq_sample")
    out = os.path.join(destination, "part-000000000000.csv")
    pacsv.write_csv(table, out)
    return os.path.join(destination, SHARD_PATTERN)


def export_source(
    destination: str, bq_table: str = "", bq_query: str = "", sample_every: int = 0, project: str = "", bq: Any = None
) -> str:
    """Query (table or SQL, optionally sampled) and export; return the CSV glob for stage_data."""
    select = build_query(bq_table, bq_query, sample_every)
    return export_csv(select, destination, bq if bq is not None else client(project))
