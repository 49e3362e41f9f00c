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


# Google Cloud's label rules, which Vertex AI enforces only when it creates the job (after any upload).
MAX_LABELS = 64
MAX_LABEL_CHARS = 63
RESERVED_LABEL_PREFIX = "vertex-ai-pipelines-run-billing-id"
LABEL_RULE = (
    "keys and values take lowercase letters, digits, '_' and '-' (international letters too), at most "
    f"{MAX_LABEL_CHARS} characters; a key starts with a lowercase letter"
)


def _label_char(c: str) -> bool:
    if c.isascii():
        return c.islower() or c.isdigit() or c in "_-"
    return c.isalpha() and not c.isupper()  # international letters, lowercase or caseless


def _label_fix(text: str) -> str:
    return "".join(c if _label_char(c) else "-" for c in text.lower())[:MAX_LABEL_CHARS]


def label(key: str, value: str) -> tuple[str, str]:
    """One run label, as Vertex AI will accept it; UsageError naming the rule and a fix otherwise."""
    flag = f"--label {key}={value}"
    first = key[:1]
    key_ok = bool(key) and len(key) <= MAX_LABEL_CHARS and all(map(_label_char, key))
    key_ok = key_ok and not first.isdigit() and first not in "_-"
    value_ok = len(value) <= MAX_LABEL_CHARS and all(map(_label_char, value))
    if not (key_ok and value_ok):
        raise UsageError(f"{flag}: {LABEL_RULE}", f"e.g. --label {_label_fix(key) or 'key'}={_label_fix(value)}")
    if key.startswith(RESERVED_LABEL_PREFIX):
        raise UsageError(f"{flag}: keys starting with {RESERVED_LABEL_PREFIX} are Vertex AI's own")
    return key, value


def labels(pairs: dict[str, str]) -> dict[str, str]:
    """Run labels checked by Google Cloud's rules (at most 64 of them, counting the project's own)."""
    if len(pairs) > MAX_LABELS:
        raise UsageError(f"{len(pairs)} labels: Vertex AI takes at most {MAX_LABELS} a run")
    return dict(label(k, v) for k, v in pairs.items())
