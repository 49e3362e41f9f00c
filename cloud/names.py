"""Google Cloud names checked before any request: a typo fails here, naming the flag and the rule."""

from __future__ import annotations

import re

MULTI_REGIONS = ("us", "eu", "asia")
_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


class InvalidName(ValueError):
    pass


def project(name: str) -> str:
    if not _PROJECT.match(name or ""):
        raise InvalidName(f"--project {name!r} is not a Google Cloud project id (6-30 lowercase letters, digits, '-')")
    return name


def region(name: str, multi_region: bool = False) -> str:
    if _REGION.match(name or "") or (multi_region and name.lower() in MULTI_REGIONS):
        return name
    also = ", or a multi-region (us, eu, asia)" if multi_region else ""
    raise InvalidName(f"--region {name!r} is not a region such as us-central1{also}")


def bucket(name: str) -> str:
    name = (name or "").removeprefix("gs://").rstrip("/")
    if not _BUCKET.match(name) or ".." in name or name.startswith("goog"):
        raise InvalidName(
            f"--bucket {name!r} is not a valid bucket name: 3-222 lowercase letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return name
