"""The README's curl and grpcurl blocks run as written (only the ports differ) against a real stack.

A block signs in with ``TOKEN=$(.venv/bin/orders token NAME)``. That command signs in at the development
provider `make up` runs (127.0.0.1:9400) unless ``$OIDC_ISSUER`` names another, so the blocks run with
``OIDC_ISSUER`` set to this stack's provider (on a free port). Where the ``orders token`` command is not
there (the client's own work), the test signs NAME in itself (``devstack.identity``, the same real
sign-in) and puts the token in the command's place.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from notifications.v1 import notifications_pb2
from orders.v1 import orders_pb2
from payments.v1 import payments_pb2

from devstack.binaries import binary
from devstack.saga import saga_client
from devstack.stack import wait_for
from tests.e2e.conftest import System

Json = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
_BLOCK = re.compile(r"<!-- readme-run: (?P<name>[\w-]+) [^>]*-->\n```bash\n(?P<body>.*?)\n```", re.DOTALL)
#: How the README gets a token: `orders token` signs a customer in at the development provider.
_TOKEN_COMMAND = re.compile(r"\$\(\.venv/bin/orders token (?P<customer>[\w-]+)\)")


def readme_block(name: str) -> str:
    blocks = {m["name"]: m["body"] for m in _BLOCK.finditer(README.read_text())}
    assert name in blocks, f"README.md has no `<!-- readme-run: {name} ... -->` bash block"
    return blocks[name]


def orders_token_exists() -> bool:
    """Whether this checkout's `orders` command has `token` (the client's work)."""
    orders = ROOT / ".venv" / "bin" / "orders"
    if not orders.exists():
        return False
    done = subprocess.run([str(orders), "token", "--help"], capture_output=True, timeout=60, check=False)
    return done.returncode == 0


def run_block(script: str, system: System) -> str:
    """Run a README block in bash (errexit, pipefail) from the repo root, with the stack's real ports."""
    ports = {
        "127.0.0.1:8080": system.url.removeprefix("http://"),
        "127.0.0.1:9400": system.stack.identity.issuer.removeprefix("http://"),
        "127.0.0.1:50051": system.stack.order.target,
        "127.0.0.1:50052": system.stack.payment.target,
        "127.0.0.1:50053": system.stack.notification.target,
    }
    for documented, actual in ports.items():
        script = script.replace(documented, actual)
    if not orders_token_exists():
        script = _TOKEN_COMMAND.sub(lambda m: shlex.quote(system.token(m["customer"])), script)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["OIDC_ISSUER"] = system.stack.identity.issuer  # where `orders token` signs in
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


def json_documents(out: str) -> list[Json]:
    """Every top-level JSON object in a block's output, in order: one-line (curl, SSE `data:`) or indented (grpcurl)."""
    decoder = json.JSONDecoder()
    found: list[Json] = []
    at = out.find("{")
    while at != -1:
        try:
            document, end = decoder.raw_decode(out, at)
        except json.JSONDecodeError:  # not JSON, e.g. a `{` of grpcurl's `describe`
            end = at + 1
        else:
            if isinstance(document, dict):
                found.append(document)
        at = out.find("{", end)
    return found


# How an order cancelled while its payment is in flight ends: the charge under way finishes and is
# refunded, or, if the cancel reached payment_svc before the charge started, the payment is voided.
REFUNDED_STEPS = ["PLACED", "CANCELLED", "PAYMENT_SUCCEEDED", "REFUND_REQUESTED", "REFUNDED"]
VOIDED_STEPS = ["PLACED", "CANCELLED", "PAYMENT_VOIDED"]


def steps(order: Json) -> list[str]:
    return [str(step["kind"]).removeprefix("ORDER_STEP_KIND_") for step in order.get("timeline", [])]


def the_cancelled_order(orders: list[Json], reason_key: str, id_key: str) -> tuple[str, list[Json]]:
    """The order the block cancelled (reason "changed my mind"): its id and every copy printed, in order."""
    ids = {o[id_key] for o in orders if o.get(reason_key) == "changed my mind"}
    assert len(ids) == 1, f"expected one order cancelled with the README's reason, got {ids}"
    order_id = ids.pop()
    return order_id, [o for o in orders if o.get(id_key) == order_id]


def every_method() -> set[str]:
    return {
        f"{service.full_name}/{method.name}"
        for module in (orders_pb2, payments_pb2, notifications_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def test_readme_gets_its_tokens_from_orders_token() -> None:
    for name in ("curl", "grpcurl"):
        block = readme_block(name)
        commands = _TOKEN_COMMAND.findall(block)
        assert commands, f"the {name} block signs nobody in"
        assert all(f"TOKEN=$(.venv/bin/orders token {c})" in block for c in commands)
        assert block.count("$(.venv/bin/orders") == len(commands), "one form only, so the tests can run it"
    # Every call to order_svc or the gateway carries the token, but the one that shows the 401.
    curl_lines = [line.strip() for line in readme_block("curl").replace("\\\n", " ").splitlines()]
    calls = [line for line in curl_lines if line.startswith(("curl", "ORDER=$(curl", "OTHER_ID=$(curl"))]
    assert [c for c in calls if "Authorization: Bearer $TOKEN" not in c] == ["curl -s http://127.0.0.1:8080/v1/orders"]
    grpcurl_lines = readme_block("grpcurl").replace("\\\n", " ").splitlines()
    order_calls = [line for line in grpcurl_lines if "orders.v1.OrderService/" in line]
    assert order_calls
    assert all('-H "authorization: Bearer $TOKEN"' in line for line in order_calls), order_calls


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
    assert '{"code":16,"message":"Jwt is missing' in out  # no token: 401, saying what to send

    # The order cancelled while its payment was in flight stays CANCELLED, and its watch ends with the money side.
    _, copies = the_cancelled_order([d for d in json_documents(out) if "orderId" in d], "cancelReason", "orderId")
    assert {o["state"] for o in copies} == {"ORDER_STATE_CANCELLED"}
    settled = copies[-1]  # the watch's last event
    assert settled["paymentId"]
    if settled["refundState"] == "REFUND_STATE_REFUNDED":
        assert steps(settled) == REFUNDED_STEPS
        assert "REFUND_STATE_PENDING" in {o["refundState"] for o in copies}  # the watch showed the refund owed
    else:  # the cancel reached payment_svc before it started the charge
        assert (settled["refundState"], steps(settled)) == ("REFUND_STATE_UNSPECIFIED", VOIDED_STEPS)
    summary = " ".join(["ORDER_STATE_CANCELLED", settled["refundState"], *steps(settled)])
    assert summary in out.splitlines()  # the README's one-line summary of the GET after the watch: the same order


async def test_readme_grpcurl_block_works_as_written(system: System) -> None:
    out = await asyncio.to_thread(run_block, readme_block("grpcurl"), system)
    for service in ("orders.v1.OrderService", "payments.v1.PaymentService", "notifications.v1.NotificationService"):
        assert service in out  # `list` of each service
    assert '"state": "ORDER_STATE_PAID"' in out
    assert '"state": "ORDER_STATE_CANCELLED"' in out
    assert '"payment_id"' in out  # GetPayment found the payment
    assert '"orderId"' in out  # the gateway call with the descriptor set: lowerCamelCase, as the README says

    # The order cancelled while its payment was in flight: its watch's last message, its payment, its notifications.
    documents = json_documents(out)
    other_id, copies = the_cancelled_order([d for d in documents if "state" in d], "cancel_reason", "order_id")
    assert {o["state"] for o in copies} == {"ORDER_STATE_CANCELLED"}
    settled = copies[-1]  # the last WatchOrder message
    assert settled["payment_id"]
    payments = [d for d in documents if "status" in d and d.get("order_id") == other_id]
    assert len(payments) == 1, payments  # GetPayment of the cancelled order
    refunded = settled.get("refund_state") == "REFUND_STATE_REFUNDED"
    if refunded:
        assert steps(settled) == REFUNDED_STEPS
        assert payments[0]["status"] == "PAYMENT_STATUS_REFUNDED"
        assert payments[0]["refund_time"]
    else:  # the cancel reached payment_svc before it started the charge; REFUND_STATE_UNSPECIFIED is left out
        assert ("refund_state" not in settled, steps(settled)) == (True, VOIDED_STEPS)
        assert payments[0]["status"] == "PAYMENT_STATUS_VOIDED"
        assert "refund_time" not in payments[0]
    assert payments[0]["payment_id"] == settled["payment_id"]
    listed = [n["kind"] for d in documents for n in d.get("notifications", []) if n.get("order_id") == other_id]
    assert "NOTIFICATION_KIND_ORDER_CANCELLED" in listed
    assert "NOTIFICATION_KIND_ORDER_PAID" not in listed  # a cancelled order is never told it was paid
    if not refunded:
        assert listed == ["NOTIFICATION_KIND_ORDER_CANCELLED"]  # voided: nothing was charged, nothing to refund
    if refunded and "NOTIFICATION_KIND_ORDER_REFUNDED" not in listed:
        # notification_svc records it from the change that ends the watch: a few ms later at most, never missing.
        async with saga_client(system.stack) as saga:

            async def refund_notified() -> bool:
                kinds = {n.kind for n in await saga.all_notifications(order_id=other_id)}
                return notifications_pb2.NOTIFICATION_KIND_ORDER_REFUNDED in kinds

            await wait_for(refund_notified, timeout=10, interval=0.05, what="the ORDER_REFUNDED notification")


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
