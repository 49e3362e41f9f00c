from __future__ import annotations

import os

import numpy as np
import pytest

from taxifare.errors import DataError, UsageError
from trainer import data_files, features, sample_data, sources


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_headerless_lab_layout_is_read(tmp_path):
    path = _write(tmp_path / "a.csv", "12.0,-73.98,40.75,-73.97,40.78,1,k0\n4.5,-73.96,40.77,-73.95,40.77,2,k1\n")
    cols, stats = sources.read_columns(path)
    assert stats.rows == 2 and stats.kept == 2
    assert cols["fare_amount"].tolist() == [12.0, 4.5]
    assert cols["passengers"].tolist() == [1.0, 2.0]
    assert cols["key"].tolist() == ["k0", "k1"]


def test_header_in_any_order_with_extra_columns_and_aliases(tmp_path):
    path = _write(
        tmp_path / "h.csv",
        "passenger_count,extra,dropofflat,dropofflon,pickuplat,pickuplon,fare_amount\n"
        "3,zzz,40.78,-73.97,40.75,-73.98,9.5\n",
    )
    cols, stats = sources.read_columns(path)
    assert stats.kept == 1
    assert cols["passengers"][0] == 3 and cols["pickuplon"][0] == pytest.approx(-73.98)
    assert cols["fare_amount"][0] == 9.5
    assert cols["key"][0] == "h.csv:0"  # synthesised when the file has no key column


def test_bad_rows_are_skipped_and_counted_by_reason(tmp_path):
    good = "8.5,-73.98,40.75,-73.97,40.76,1,g{}\n"
    bad = [
        "-4,-73.98,40.75,-73.97,40.76,1,b1\n",  # fare below the flag fare
        "900,-73.98,40.75,-73.97,40.76,1,b2\n",  # absurd fare
        "8.5,0,0,-73.97,40.76,1,b3\n",  # pickup outside NYC
        "8.5,-73.98,40.75,-70.0,40.76,1,b4\n",  # dropoff outside NYC
        "8.5,-73.98,40.75,-73.97,40.76,0,b5\n",  # no passengers
        "8.5,-73.98,40.75,-73.97,40.76,7,b6\n",  # too many passengers
        "8.5,-73.98,40.75,abc,40.76,1,b7\n",  # not a number
        "8.5,-73.98,,-73.97,40.76,1,b8\n",  # missing value
        "8.5,-73.98,40.75\n",  # malformed: too few fields
    ]
    text = "".join(good.format(i) for i in range(100)) + "".join(bad)
    cols, stats = sources.read_columns(_write(tmp_path / "d.csv", text))
    assert stats.rows == 109 and stats.kept == 100
    assert dict(stats.rejected) == {
        "fare_out_of_range": 2,
        "pickup_outside_nyc": 1,
        "dropoff_outside_nyc": 1,
        "passengers_out_of_range": 2,
        "not_a_number": 1,
        "missing_value": 1,
        "malformed_row": 1,
    }
    assert set(cols["key"]) == {f"g{i}" for i in range(100)}


def test_too_many_bad_rows_fails_naming_file_and_reason(tmp_path):
    text = "8.5,-73.98,40.75,-73.97,40.76,1,g\n" + "8.5,0,0,-73.97,40.76,1,b\n" * 3
    path = _write(tmp_path / "dirty.csv", text)
    with pytest.raises(DataError, match=r"dirty\.csv.*3 of 4 rows.*pickup_outside_nyc=3.*max_bad_fraction"):
        sources.read_columns(path, max_bad_fraction=0.5)
    cols, _ = sources.read_columns(path, max_bad_fraction=0.8)
    assert len(cols["key"]) == 1


def test_missing_file_and_empty_glob_fail_at_once_naming_them(tmp_path):
    with pytest.raises(UsageError, match=r"file not found: '.*nope\.csv'"):
        data_files.expand_paths(str(tmp_path / "nope.csv"))
    with pytest.raises(UsageError, match=r"no file matches '.*\*\.csv'"):
        data_files.expand_paths(str(tmp_path / "*.csv"))


def test_comma_separated_and_glob(tmp_path):
    for name in ("a.csv", "b.csv", "c.txt"):
        _write(tmp_path / name, "8.5,-73.98,40.75,-73.97,40.76,1,k\n")
    found = data_files.expand_paths(f"{tmp_path}/*.csv,{tmp_path}/c.txt")
    assert [os.path.basename(p) for p in found] == ["a.csv", "b.csv", "c.txt"]


def test_header_missing_a_required_column_is_named(tmp_path):
    path = _write(tmp_path / "h.csv", "fare_amount,pickuplon,pickuplat,dropofflon,passengers\n1,2,3,4,5\n")
    with pytest.raises(DataError, match=r"lacks column.*dropofflat"):
        sources.read_columns(path)


def test_sample_data_is_deterministic_realistic_and_slightly_dirty(tmp_path):
    a = sample_data.write_splits(str(tmp_path / "a"), rows=3000, seed=5)
    b = sample_data.write_splits(str(tmp_path / "b"), rows=3000, seed=5)
    for split in ("train", "valid", "test"):
        assert _read(a[split][0]) == _read(b[split][0])
    cols, stats = sources.read_columns(a["train"])
    assert 0 < stats.rows - stats.kept <= 0.02 * stats.rows
    assert len(stats.rejected) >= 4
    fares = cols["fare_amount"]
    assert features.FARE_RANGE[0] <= fares.min() and np.median(fares) == pytest.approx(10, abs=4)
    assert (fares == 52.0).sum() > 0  # JFK flat fares are there
    # Fare grows with distance, as the meter says.
    from trainer import baseline

    rule = baseline.fit(cols)
    assert rule.rate_per_degree > 0


def test_streaming_chunks_cover_all_rows(tmp_path):
    paths = sample_data.write_splits(str(tmp_path), rows=20000, seed=1, shards=3)["train"]
    totals = sources.ReadStats()
    chunks = list(sources.iter_chunks(paths, block_bytes=64 << 10, totals=totals))
    assert len(chunks) > 3
    assert sum(len(c["key"]) for c in chunks) == totals.kept
    _whole, stats = sources.read_columns(paths)
    assert stats.kept == totals.kept and stats.rejected == totals.rejected


@pytest.mark.parametrize(
    "text", ["", "fare_amount,pickuplon,pickuplat,dropofflon,dropofflat,passengers,key\n"], ids=["empty", "header"]
)
def test_a_file_without_rows_fails_naming_it(tmp_path, text):
    path = _write(tmp_path / "nothing.csv", text)
    with pytest.raises(DataError, match=r"nothing\.csv: no data rows"):
        sources.read_columns(path)


def test_a_byte_order_mark_does_not_hide_the_header(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(
        b"\xef\xbb\xbffare_amount,pickuplon,pickuplat,dropofflon,dropofflat,passengers\n8.5,-73.98,40.75,-73.97,40.76,1\n"
    )
    cols, stats = sources.read_columns(str(path))
    assert stats.kept == 1 and cols["fare_amount"][0] == 8.5


_ROWS = "fare_amount,pickuplon,pickuplat,dropofflon,dropofflat,passengers,key\n" + "".join(
    f"{5 + i % 7}.5,-73.98,40.75,-73.97,40.78,{1 + i % 3},k{i}\n" for i in range(200)
)


@pytest.mark.parametrize("name", ["trips.csv.gz", "trips.csv"])  # gzip is told by its bytes, not its name
def test_gzip_csv_is_read(tmp_path, name):
    import gzip

    (tmp_path / name).write_bytes(gzip.compress(_ROWS.encode()))
    cols, stats = sources.read_columns(str(tmp_path / name))
    assert stats.rows == stats.kept == 200 and cols["key"][199] == "k199"


def test_a_truncated_gzip_file_is_named(tmp_path):
    import gzip

    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(_ROWS.encode() * 50)[:3000])
    with pytest.raises(DataError, match=r"cut\.csv\.gz: cannot be read"):
        sources.read_columns(str(path))


@pytest.mark.parametrize("line_end", [b"\r", b"\r\n"], ids=["CR only", "CRLF"])
def test_cr_line_ends_are_read(tmp_path, line_end):
    path = tmp_path / "cr.csv"
    path.write_bytes(_ROWS.encode().replace(b"\n", line_end))
    cols, stats = sources.read_columns(str(path))
    assert stats.rows == stats.kept == 200 and cols["key"][0] == "k0"


def test_a_stray_cr_in_the_header_line(tmp_path):
    path = tmp_path / "stray.csv"
    path.write_bytes(_ROWS.encode().replace(b"\n", b"\r", 1))
    _, stats = sources.read_columns(str(path))
    assert stats.kept == 200


def test_one_bad_byte_is_one_bad_row(tmp_path):
    lines = _ROWS.encode().split(b"\n")
    lines[3] = lines[3].replace(b",k2", b",k\xff2")  # in a key
    lines[7] = lines[7].replace(b"-73.98", b"-73.\xed\xa0\x8098")  # in a number
    path = tmp_path / "bytes.csv"
    path.write_bytes(b"\n".join(lines))
    cols, stats = sources.read_columns(str(path))
    assert stats.rows == 200 and stats.kept == 198 and stats.rejected == {"malformed_row": 2}
    assert "k2" not in cols["key"].tolist() and "k3" in cols["key"].tolist()


def test_the_header_sniff_reads_a_bounded_prefix(tmp_path):
    """A file without a line end: the sniff reads 64 KiB, not the file; the row is malformed, not a header."""
    path = tmp_path / "one-line.csv"
    path.write_bytes(b"1," * 3_000_000)
    with open(path, "rb") as f:
        prefix, header, start = data_files.sniff_header(str(path), f)
        assert len(prefix) == data_files.SNIFF_BYTES and header is None and start == 0
    with pytest.raises(DataError, match=r"one-line\.csv"):
        sources.read_columns(str(path))


def test_junk_bytes_are_malformed_rows_not_a_traceback_or_raw_bytes(tmp_path, capfd):
    """Binary junk, and a short row of bytes that are not UTF-8 among good ones: pyarrow used to fail
    decoding the row for its handler (a traceback on stderr, then the raw bytes in the message)."""
    import random

    junk = tmp_path / "junk.csv"
    junk.write_bytes(bytes(random.Random(7).randrange(256) for _ in range(5000)))
    with pytest.raises(DataError) as err:
        sources.read_columns(str(junk))
    assert "rows (100%) are invalid (malformed_row=" in str(err.value) and str(err.value).isprintable()
    mixed = tmp_path / "mixed.csv"
    good = b"8.5,-73.98,40.75,-73.97,40.76,1,k%d\n"
    mixed.write_bytes(
        b"".join(good % i for i in range(30)) + b"\xff\xfe,\x92\n" + b"9.5,-73.98,40.75,-73.97,40.76,2,\xe9t\xe9\n"
    )
    columns, stats = sources.read_columns(str(mixed))
    assert stats.kept == 30 and stats.rejected == {"malformed_row": 2} and len(columns["key"]) == 30
    assert capfd.readouterr().err == ""
