"""The README's curl and grpcurl blocks run as written (only the ports differ) against a real stack."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from notifications.v1 import notifications_pb2
from orders.v1 import orders_pb2
from payments.v1 import payments_pb2

from devstack.binaries import binary
from tests.e2e.conftest import System

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
_BLOCK = re.compile(r"<!-- readme-run: (?P<name>[\w-]+) [^>]*-->\n```bash\n(?P<body>.*?)\n```", re.DOTALL)


def readme_block(name: str) -> str:
    blocks = {m["name"]: m["body"] for m in _BLOCK.finditer(README.read_text())}
    assert name in blocks, f"README.md has no `<!-- readme-run: {name} ... -->` bash block"
    return blocks[name]


def run_block(script: str, system: System) -> str:
    """Run a README block in bash (errexit, pipefail) from the repo root, with the stack's real ports."""
    ports = {
        "127.0.0.1:8080": system.url.removeprefix("http://"),
        "127.0.0.1:50051": system.stack.order.target,
        "127.0.0.1:50052": system.stack.payment.target,
        "127.0.0.1:50053": system.stack.notification.target,
    }
    for documented, actual in ports.items():
        script = script.replace(documented, actual)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        ["bash", "-o", "errexit", "-o", "pipefail", "-o", "nounset", "-x", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
    return done.stdout


def every_method() -> set[str]:
    return {
        f"{service.full_name}/{method.name}"
        for module in (orders_pb2, payments_pb2, notifications_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def test_grpcurl_block_calls_every_method() -> None:
    block = readme_block("grpcurl")
    missing = {m for m in every_method() if m not in block}
    assert not missing, f"README's grpcurl block calls none of: {sorted(missing)}"
    for port in ("50051", "50052", "50053"):
        assert f"127.0.0.1:{port} list" in block


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed on this machine")
def test_readme_curl_block_works_as_written(system: System) -> None:
    out = run_block(readme_block("curl"), system)
    assert "ORDER_STATE_PAID" in out  # the watch ran to the end
    assert '"state":"ORDER_STATE_CANCELLED"' in out  # the cancel
    assert "order.line_items[0].quantity" in out  # the bad request names the field


def test_readme_grpcurl_block_works_as_written(system: System) -> None:
    out = run_block(readme_block("grpcurl"), system)
    for service in ("orders.v1.OrderService", "payments.v1.PaymentService", "notifications.v1.NotificationService"):
        assert service in out  # `list` of each service
    assert '"state": "ORDER_STATE_PAID"' in out
    assert '"state": "ORDER_STATE_CANCELLED"' in out
    assert '"payment_id"' in out  # GetPayment found the payment


def test_gateway_offers_no_reflection(system: System) -> None:
    done = subprocess.run(
        [binary("grpcurl"), "-plaintext", system.url.removeprefix("http://"), "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "reflection" in (done.stdout + done.stderr)
