"""Google Cloud plumbing: bucket setup, data staging, BigQuery sources.

Every module imports google.cloud lazily, so `taxifare --help` and the local pipeline
never pay for it.
"""
