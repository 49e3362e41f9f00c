"""Google Cloud names checked before any request: a typo fails here, naming the flag and the rule."""

from __future__ import annotations

import difflib
import re

from taxifare.errors import UsageError

MULTI_REGIONS = ("us", "eu", "asia")
_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


def project(name: str) -> str:
    if not _PROJECT.match(name or ""):
        raise UsageError(f"--project {name!r} is not a Google Cloud project id (6-30 lowercase letters, digits, '-')")
    return name


def vertex_regions() -> list[str]:
    """The regions google-cloud-aiplatform serves, sorted (it refuses the others with an unsorted set)."""
    from google.cloud.aiplatform import constants

    return sorted(constants.base.SUPPORTED_REGIONS)


def region(name: str, multi_region: bool = False) -> str:
    """A Vertex AI region (or, for a bucket, a multi-region); a typo gets the nearest name."""
    if multi_region and (name or "").lower() in MULTI_REGIONS:
        return name
    also = ", or a multi-region (us, eu, asia)" if multi_region else ""
    if not _REGION.match(name or ""):
        raise UsageError(f"--region {name!r} is not a region such as us-central1{also}")
    known = vertex_regions()
    if name not in known:
        near = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {near[0]}?" if near else "Vertex AI regions: " + ", ".join(known)
        raise UsageError(f"--region {name!r} is not a Vertex AI region{also}", hint)
    return name


def bucket(name: str) -> str:
    name = (name or "").removeprefix("gs://").rstrip("/")
    if not _BUCKET.match(name) or ".." in name or name.startswith("goog"):
        raise UsageError(
            f"--bucket {name!r} is not a valid bucket name: 3-222 lowercase letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return name
