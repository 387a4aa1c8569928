"""`orders --json` prints what the gateway prints: the same proto3 JSON for the same orders, key for key.

Both sides are signed in as the test's customer: the ``http`` client with ``Authorization: Bearer``,
the command with the same token in ``$ORDERS_TOKEN``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import httpx

from tests.e2e.conftest import System, TokenFor

Json = dict[str, Any]

DEADLINE = 30.0  # seconds for a watch to end (the mock payment and the refund take 2 s each) or a command to exit


def order_body(customer: str) -> Json:
    return {
        "customerId": customer,
        "lineItems": [
            {"sku": "SKU-1", "quantity": 2, "unitPrice": {"currencyCode": "USD", "units": "12", "nanos": 500000000}},
            {"sku": "SKU-2", "quantity": 1, "unitPrice": {"currencyCode": "USD", "units": "0", "nanos": 990000000}},
        ],
        "paymentMethod": "pm_card_visa",
    }


async def place(http: httpx.AsyncClient, customer: str) -> str:
    reply = await http.post("/v1/orders", json=order_body(customer))
    assert reply.status_code == 200, reply.text
    order_id: str = reply.json()["orderId"]
    return order_id


async def settled(http: httpx.AsyncClient, order_id: str) -> Json:
    """The last order the gateway's SSE watch sends: the stream ends once the order is settled."""
    last: Json = {}
    async with asyncio.timeout(DEADLINE), http.stream("GET", f"/v1/orders/{order_id}:watch") as reply:
        assert reply.status_code == 200
        async for line in reply.aiter_lines():
            if line.startswith("data:"):
                last = json.loads(line.removeprefix("data:"))
    assert last, f"the watch of {order_id} sent no order"
    return last


async def gateway_json(http: httpx.AsyncClient, path: str, **params: str) -> Json:
    reply = await http.get(path, params=params)
    assert reply.status_code == 200, reply.text
    body: Json = reply.json()
    return body


async def cli_json(system: System, token: str, *args: str) -> Json:
    """Run `orders --json ARGS...` (as `python -m orders_client`, $ORDERS_TOKEN=token) against order_svc; stdout."""
    env = {key: value for key, value in os.environ.items() if key != "ORDERS_TARGET"}
    env |= {"ORDERS_TOKEN": token, "XDG_CONFIG_HOME": str(system.stack.root / "cli-config")}
    command = [sys.executable, "-m", "orders_client", "--target", system.stack.order.target, "--json", *args]
    proc = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(DEADLINE):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, f"{command} exited {proc.returncode}\n--- stderr ---\n{err.decode()}"
    lines = out.decode().splitlines()
    assert len(lines) == 1, f"expected one JSON document on one line, got:\n{out.decode()}"
    body: Json = json.loads(lines[0])
    return body


async def test_cli_json_equals_the_gateway_json(
    system: System, http: httpx.AsyncClient, customer: str, token: TokenFor
) -> None:
    who, signed_in = customer, await asyncio.to_thread(token, customer)  # the token `http` is signed in with
    paid_id = await place(http, who)
    # A second order, cancelled while its 2 s mock payment is in flight: it ends refunded (or voided),
    # so the comparison covers paymentId, cancelReason, refundState and a timeline of several steps.
    cancelled_id = await place(http, who)
    cancel = await http.post(f"/v1/orders/{cancelled_id}:cancel", json={"reason": "changed my mind"})
    assert cancel.status_code == 200, cancel.text

    for order_id in (paid_id, cancelled_id):
        last = await settled(http, order_id)
        gateway = await gateway_json(http, f"/v1/orders/{order_id}")
        assert gateway == last  # settled: nothing changes after the watch ends
        assert await cli_json(system, signed_in, "get", order_id) == gateway

    paid = await gateway_json(http, f"/v1/orders/{paid_id}")
    assert paid["state"] == "ORDER_STATE_PAID"
    cancelled = await gateway_json(http, f"/v1/orders/{cancelled_id}")
    assert cancelled["state"] == "ORDER_STATE_CANCELLED"
    assert cancelled["refundState"] in {"REFUND_STATE_REFUNDED", "REFUND_STATE_UNSPECIFIED"}  # refunded, or voided
    assert cancelled["paymentId"]

    listed = await gateway_json(http, "/v1/orders", customerId=who)
    assert [o["orderId"] for o in listed["orders"]] == [cancelled_id, paid_id]  # newest first, one page
    assert listed["nextPageToken"] == ""
    assert await cli_json(system, signed_in, "list", "--customer", who) == listed
    assert await cli_json(system, signed_in, "list") == await gateway_json(http, "/v1/orders")  # yours
