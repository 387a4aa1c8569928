"""A service whose MongoDB is unreachable exits quickly with one clear line naming the URI, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 500
DEADLINE_SECONDS = 15.0  # interpreter start + imports + a 0.5 s server selection, with room for a busy machine


@pytest.mark.parametrize(
    ("credentials", "shown_credentials"),
    [("", ""), ("alice:s3cret-pw@", "alice:***@")],
    ids=["no-credentials", "password-redacted"],
)
def test_order_svc_without_a_reachable_mongodb_exits_non_zero_fast_with_one_line_naming_the_uri(
    tmp_path: Path, credentials: str, shown_credentials: str
) -> None:
    mongo_port = free_port()
    env = {
        **os.environ,
        "MONGODB_URI": f"mongodb://{credentials}127.0.0.1:{mongo_port}",
        "MONGODB_SERVER_SELECTION_TIMEOUT_MS": str(TIMEOUT_MS),
        "ORDER_SVC_GRPC_PORT": str(free_port()),
        "NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "DATA_DIR": str(tmp_path),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "order_svc"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=DEADLINE_SECONDS,  # kills the process and fails the test if it hangs
        check=False,
    )
    elapsed = time.monotonic() - started
    output = done.stdout.decode(errors="replace")

    assert done.returncode == 69, output  # EX_UNAVAILABLE
    assert elapsed < DEADLINE_SECONDS
    assert "Traceback" not in output
    assert "s3cret-pw" not in output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line["level"] == "error"]
    assert len(errors) == 1, output
    shown = f"mongodb://{shown_credentials}127.0.0.1:{mongo_port}"
    assert errors[0]["event"].startswith(f"cannot reach MongoDB at {shown} within 0.5 s: "), output
    assert f"127.0.0.1:{mongo_port}" in errors[0]["event"].split(": ", 1)[1]  # the short reason names the server
