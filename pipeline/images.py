"""The one place the pipeline's container image is named.

Every step runs in this image (built by `make image`); `taxifare compile/submit --image URI`
overrides it for a pushed copy, e.g. in Artifact Registry.
"""

DEFAULT_IMAGE = "localhost/taxifare:latest"
