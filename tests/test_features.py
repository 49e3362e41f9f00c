"""The one feature table: each field written once, and everything that names fields derived from it.
A field added to a copy of the table flows through validation, instance checks, the request struct,
the SavedModel signature specs, the BigQuery select list and the sample data."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from trainer import features, sample_data
from trainer.features import SCHEMA, Field


def test_the_table_gives_the_names_every_reader_uses():
    assert SCHEMA.csv_columns == ("fare_amount", "pickuplon", "pickuplat", "dropofflon", "dropofflat", "passengers",
                                  "key")  # fmt: skip
    assert SCHEMA.features == features.FEATURES and features.LABEL == "fare_amount" and features.KEY == "key"
    assert features.COLUMN_ALIASES["passenger_count"] == "passengers"
    reasons = ("malformed_row", "missing_value", "not_a_number", "fare_out_of_range", "pickup_outside_nyc",
               "dropoff_outside_nyc", "passengers_out_of_range")  # fmt: skip
    assert reasons == features.REJECT_REASONS
    assert SCHEMA.value_problem("passengers", 2.5) == "must be a whole number of passengers, 1 to 6: 2.5"
    assert (
        SCHEMA.value_problem("pickuplon", -80.0)
        == "-80.0 is outside -74.5 to -72.8 degrees (the NYC area the model knows)"
    )


def test_the_server_and_the_checker_take_their_ranges_from_the_table():
    from taxifare.serving import body
    from trainer import predict

    assert body._Instance.__struct_fields__ == (*SCHEMA.features, SCHEMA.key)
    assert [SCHEMA.ranges[n] for n in SCHEMA.features] == predict.BOUNDS


HOUR = Field("hour", "feature", "the pickup hour, local time", (0.0, 23.0), whole=True, unit="hours",
             aliases=("pickup_hour",), bq="EXTRACT(HOUR FROM pickup_datetime)")  # fmt: skip


def test_a_new_field_flows_through_everything_derived_from_the_table():
    schema = SCHEMA.with_fields(HOUR)
    assert schema.features[-1] == "hour" and schema.csv_columns[-2:] == ("hour", "key")
    assert schema.aliases["pickup_hour"] == "hour" and schema.ranges["hour"] == (0.0, 23.0)
    assert schema.reject_reasons[-1] == "hour_out_of_range" and schema.fingerprint() != SCHEMA.fingerprint()
    # Validation: its range and its whole numbers, counted under its own reason.
    trip = {"fare_amount": 10.0, "pickuplon": -73.98, "pickuplat": 40.75, "dropofflon": -73.95, "dropofflat": 40.78,
            "passengers": 1.0}  # fmt: skip
    rows = {n: np.array([v] * 3) for n, v in trip.items()}
    rows["hour"] = np.array([5.0, 24.0, 5.5])
    keep, counts = schema.validate(rows)
    assert keep.tolist() == [True, False, False] and counts == {"hour_out_of_range": 2}
    assert schema.value_problem("hour", 24.0) == "24.0 is outside 0 to 23 hours"
    # The request struct: the new field is required and typed; unknown fields are still refused.
    struct = schema.request_struct()
    body = b'{"pickuplon": -73.98, "pickuplat": 40.75, "dropofflon": -73.95, "dropofflat": 40.78, "passengers": 1, '
    instance = msgspec.json.decode(body + b'"hour": 7, "key": "a"}', type=struct)
    assert instance.hour == 7.0 and instance.key == "a"
    with pytest.raises(msgspec.ValidationError, match="hour"):
        msgspec.json.decode(b'{"pickuplon": 1, "pickuplat": 1, "dropofflon": 1, "dropofflat": 1, "passengers": 1}',
                            type=struct)  # fmt: skip
    # BigQuery reads it by its expression, and keeps obviously broken trips out by its range.
    assert "  EXTRACT(HOUR FROM pickup_datetime) AS hour" in schema.bq_select()
    assert "EXTRACT(HOUR FROM pickup_datetime) BETWEEN 0 AND 23" in schema.bq_where()
    # Sample data has the field (whole hours in range) before the generator models it.
    columns = sample_data.generate(500, seed=1, schema=schema)
    assert set(columns) == set(schema.csv_columns)
    assert columns["hour"].min() >= 0 and columns["hour"].max() <= 23 and (columns["hour"] % 1 == 0).all()


def test_the_signatures_take_the_tables_features_by_name(trained):
    import tensorflow as tf

    loaded = tf.saved_model.load(trained["export_dir"])
    for name in ("serving_default", "with_key"):
        inputs = loaded.signatures[name].structured_input_signature[1]
        assert set(inputs) == set(SCHEMA.features) | ({SCHEMA.key} if name == "with_key" else set())


def test_a_table_needs_one_label_one_key_and_unique_names():
    with pytest.raises(ValueError, match="one label, one key"):
        features.Schema((*features.FIELDS, Field("pickuplon", "feature", "again")))
