"""With credentials but no route to Google: `setup`, `submit` and `schedule` fail in seconds with one
line naming the host they could not reach (no SDK retries for minutes, no traceback, no bucket made).

Deterministic wherever it runs: `.invalid` never resolves (RFC 6761) and 192.0.2.1 (TEST-NET-1,
RFC 5737) is never routed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

IMAGE = "europe-west4-docker.pkg.dev/taxifare-test/taxifare/taxifare:7"
WHERE = ["--project", "taxifare-test", "--region", "europe-west4", "--bucket", "taxifare-test-ml"]


@pytest.fixture(scope="module")
def credentials(tmp_path_factory) -> str:
    """A service-account key file, as `gcloud iam service-accounts keys create` writes one (a fresh RSA key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()  # fmt: skip
    path = tmp_path_factory.mktemp("adc") / "key.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "taxifare-test", "private_key_id": "0" * 40, "private_key": pem,
        "client_email": "ci@taxifare-test.iam.gserviceaccount.com", "client_id": "1" * 21,
        "token_uri": "https://oauth2.googleapis.com/token",
    }))  # fmt: skip
    return str(path)


@pytest.mark.parametrize(
    ("endpoint", "host", "why"),
    [
        ("https://aiplatform.invalid", "aiplatform.invalid:443", "DNS lookup failed"),
        ("https://192.0.2.1", "192.0.2.1:443", ""),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ["submit", *WHERE, "--image", IMAGE, "--data", "gs://taxifare-test-ml/data/*.csv"],
        ["schedule", "create", "--cron", "0 3 * * 1", *WHERE, "--image", IMAGE, "--data", "gs://b/d/*.csv"],
        ["schedule", "list", *WHERE],
        ["setup", "--project", "taxifare-test", "--region", "europe-west4"],
    ],
    ids=["submit", "schedule-create", "schedule-list", "setup"],
)
def test_no_route_to_google_is_one_line_naming_the_host(credentials, command, endpoint, host, why):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_PROXY") and not k.endswith("_proxy")}
    env.update(GOOGLE_APPLICATION_CREDENTIALS=credentials, STORAGE_EMULATOR_HOST="")
    argv = [sys.executable, "-m", "taxifare.cli", *command, "--api-endpoint", endpoint]
    # A bound on a hang, not a timing assertion: the checks give up after 5 s per host.
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=90, env=env, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach {host}") and why in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
