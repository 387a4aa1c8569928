"""Through a real Envoy: the HTTP/JSON API, Server-Sent Events, bad input, and what must stay unreachable.

Every call is signed in (the ``http`` fixture carries this test's customer's token); what the gateway
does with missing, forged or misdirected tokens is in test_identity_gateway.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2_grpc
from notifications.v1 import notifications_pb2, notifications_pb2_grpc
from orders.v1 import orders_pb2, orders_pb2_grpc
from payments.v1 import payments_pb2, payments_pb2_grpc

from devstack.gateway import OPENAPI, REDOC
from tests.e2e.conftest import System, TokenFor

Json = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]


def order_body(customer: str, payment_method: str = "pm_card_visa", quantity: int = 2) -> Json:
    return {
        "customerId": customer,
        "lineItems": [
            {
                "sku": "SKU-1",
                "quantity": quantity,
                "unitPrice": {"currencyCode": "USD", "units": "12", "nanos": 500000000},
            }
        ],
        "paymentMethod": payment_method,
    }


async def create(http: httpx.AsyncClient, body: Json, key: str | None = None) -> Json:
    headers = {"Idempotency-Key": key} if key else {}
    reply = await http.post("/v1/orders", json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    order: Json = reply.json()
    return order


async def watch(http: httpx.AsyncClient, order_id: str, timeout: float = 30) -> list[Json]:
    """Every order the SSE stream sends, until the gateway ends the stream."""
    events: list[Json] = []
    async with asyncio.timeout(timeout), http.stream("GET", f"/v1/orders/{order_id}:watch") as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        async for line in reply.aiter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line.removeprefix("data:").strip()))
    return events


async def test_page_is_served_at_root(http: httpx.AsyncClient) -> None:
    reply = await http.get("/")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert "<html" in reply.text.lower()


async def test_place_get_list_cancel_watch(http: httpx.AsyncClient, customer: str) -> None:
    who = customer
    key = uuid.uuid4().hex

    placed = await create(http, order_body(who), key)
    order_id = placed["orderId"]
    assert placed["name"] == f"orders/{order_id}"
    assert placed["state"] == "ORDER_STATE_CREATED"
    assert placed["total"] == {"currencyCode": "USD", "units": "25", "nanos": 0}
    assert placed["cancelReason"] == ""  # always_print_primitive_fields
    # The watch starts while the (slow, mock) payment runs: it sees CREATED, then PAID, then ends.
    states = [event["state"] for event in await watch(http, order_id)]
    assert states[0] == "ORDER_STATE_CREATED"
    assert states[-1] == "ORDER_STATE_PAID"

    retried = await create(http, order_body(who), key)
    assert retried["orderId"] == order_id

    got = (await http.get(f"/v1/orders/{order_id}")).json()
    assert got["state"] == "ORDER_STATE_PAID"
    assert got["paymentId"]
    for field in ("name", "customerId", "lineItems", "total", "state", "createTime", "updateTime"):
        assert field in got

    # Two more orders: three in all, listed newest first, two per page.
    second = await create(http, order_body(who))
    third = await create(http, order_body(who))
    # Cancelled before its payment settles (the mock payment is slow), with a reason.
    cancelled = await http.post(f"/v1/orders/{third['orderId']}:cancel", json={"reason": "changed my mind"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "ORDER_STATE_CANCELLED"
    assert cancelled.json()["cancelReason"] == "changed my mind"
    page1 = await http.get("/v1/orders", params={"customerId": who, "pageSize": 2})
    assert page1.status_code == 200
    body1 = page1.json()
    assert [o["orderId"] for o in body1["orders"]] == [third["orderId"], second["orderId"]]
    assert body1["nextPageToken"]
    body2 = (
        await http.get("/v1/orders", params={"customerId": who, "pageSize": 2, "pageToken": body1["nextPageToken"]})
    ).json()
    assert [o["orderId"] for o in body2["orders"]] == [order_id]
    assert body2["nextPageToken"] == ""

    # A finished order cannot be cancelled: a JSON google.rpc.Status, not a 5xx.
    again = await http.post(f"/v1/orders/{order_id}:cancel", json={})
    assert again.status_code == 400
    assert again.json()["code"] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    # A cancelled order's stream stays CANCELLED and ends once its money side is known (voided or refunded).
    changes = await watch(http, third["orderId"])
    assert {e["state"] for e in changes} == {"ORDER_STATE_CANCELLED"}
    assert changes[-1]["paymentId"]
    assert changes[-1]["refundState"] != "REFUND_STATE_PENDING"


async def test_declined_payment_is_watched_to_cancelled(http: httpx.AsyncClient, customer: str) -> None:
    placed = await create(http, order_body(customer, payment_method="pm_card_declined"))
    events = await watch(http, placed["orderId"])
    assert events[0]["state"] == "ORDER_STATE_CREATED"
    assert events[-1]["state"] == "ORDER_STATE_CANCELLED"
    assert events[-1]["cancelReason"]


async def test_invalid_field_is_a_400_naming_the_field(http: httpx.AsyncClient) -> None:
    body = order_body("", quantity=0)  # an empty customerId is the signed-in customer's: not a bad field
    body["lineItems"][0]["sku"] = ""
    reply = await http.post("/v1/orders", json=body)
    assert reply.status_code == 400
    assert reply.headers["content-type"].startswith("application/json")
    status = reply.json()
    assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    bad_requests = [d for d in status["details"] if d["@type"] == "type.googleapis.com/google.rpc.BadRequest"]
    assert len(bad_requests) == 1
    fields = {v["field"] for v in bad_requests[0]["fieldViolations"]}
    assert {"order.line_items[0].sku", "order.line_items[0].quantity"} <= fields


async def test_unknown_order_is_a_404(http: httpx.AsyncClient) -> None:
    reply = await http.get(f"/v1/orders/{uuid.uuid4()}")
    assert reply.status_code == 404
    assert reply.json()["code"] == grpc.StatusCode.NOT_FOUND.value[0]
    cancel = await http.post(f"/v1/orders/{uuid.uuid4()}:cancel", json={})
    assert cancel.status_code == 404
    watched = await http.get(f"/v1/orders/{uuid.uuid4()}:watch")
    assert watched.status_code == 404


def assert_status_json(reply: httpx.Response, http_status: int, code: grpc.StatusCode) -> dict[str, object]:
    """Envoy's own errors come back as google.rpc.Status JSON, like the service's."""
    assert reply.status_code == http_status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body: dict[str, object] = reply.json()
    assert body["code"] == code.value[0]
    assert body["message"]
    return body


async def test_malformed_json_is_a_400(http: httpx.AsyncClient) -> None:
    reply = await http.post("/v1/orders", content=b'{"customerId": ', headers={"content-type": "application/json"})
    assert_status_json(reply, 400, grpc.StatusCode.INVALID_ARGUMENT)


async def test_unknown_query_parameter_is_a_400(http: httpx.AsyncClient) -> None:
    reply = await http.get("/v1/orders", params={"customerId": "alice", "colour": "blue"})
    assert "colour" in str(assert_status_json(reply, 400, grpc.StatusCode.INVALID_ARGUMENT)["message"])


async def test_unknown_path_is_a_404_in_status_json(http: httpx.AsyncClient) -> None:
    assert_status_json(await http.get("/v1/nothing-here"), 404, grpc.StatusCode.NOT_FOUND)


async def test_oversized_body_is_refused(http: httpx.AsyncClient) -> None:
    huge = order_body("x" * 200_000)
    reply = await http.post("/v1/orders", json=huge)
    assert_status_json(reply, 413, grpc.StatusCode.RESOURCE_EXHAUSTED)


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("POST", "/v1/orders", b"[]"),
        ("POST", "/v1/orders", b"null"),
        ("POST", "/v1/orders", b""),
        ("POST", "/v1/orders", b'{"lineItems": "many"}'),
        ("POST", "/v1/orders", b'{"lineItems": [{"quantity": "two"}]}'),
        ("POST", "/v1/orders", b'{"lineItems": [{"quantity": 99999999999}]}'),
        ("POST", "/v1/orders", b'{"lineItems": [{"unitPrice": {"units": "1e99"}}]}'),
        ("POST", "/v1/orders", b'{"customerId": "\xff\xfe"}'),
        ("POST", "/v1/orders", b'{"customerId": "a", "state": "ORDER_STATE_NOPE"}'),
        ("POST", "/v1/orders", b'{"customerId": "a", "paymentMethod": "pm_bitcoin_maybe"}'),
        ("GET", "/v1/orders?pageSize=-1", b""),
        ("GET", "/v1/orders?pageSize=abc", b""),
        ("GET", "/v1/orders?pageToken=not-a-token", b""),
        ("GET", "/v1/orders/%20", b""),
        ("GET", "/v1/orders/" + "x" * 5000, b""),
        ("GET", "/v1/nothing-here", b""),
        ("PUT", "/v1/orders", b"{}"),
        ("DELETE", "/v1/orders/abc", b""),
        ("POST", "/v1/orders/abc:explode", b"{}"),
        ("GET", "/v1/orders/abc:watch?x=1", b""),
        ("POST", "/orders.v1.OrderService/CreateOrder", b"{}"),
    ],
)
async def test_bad_input_is_never_a_5xx(http: httpx.AsyncClient, method: str, path: str, content: bytes) -> None:
    reply = await http.request(method, path, content=content, headers={"content-type": "application/json"})
    assert 400 <= reply.status_code < 500, (reply.status_code, reply.text)
    assert "code" in reply.json(), reply.text  # always google.rpc.Status JSON


# Each of these reached order_svc's gRPC server, which failed it as INTERNAL or UNKNOWN (HTTP 500): a header
# gRPC metadata cannot carry, or a path that is not UTF-8 once percent-decoded. The gateway refuses them first.
BAD_HEADERS_AND_PATHS: list[tuple[str, str, dict[str, str | bytes], str]] = [
    ("GET", "/v1/orders", {"x!B": "1"}, "x!b"),  # the fuzzer's find: was 500 "Illegal header key: x!b"
    ("POST", "/v1/orders", {"x!B": "1"}, "x!b"),
    ("GET", "/v1/orders", {"x#y~z": "1"}, "x#y~z"),
    ("GET", "/v1/orders", {"x-note": "café".encode()}, "x-note"),
    ("GET", "/v1/orders", {"x-note": b"a\tb"}, "x-note"),
    ("GET", "/v1/orders", {"x-trace-bin": "!!!"}, "x-trace-bin"),  # was 500: illegal base64
    ("GET", "/v1/orders", {"x-trace-bin": "Y"}, "x-trace-bin"),
    ("GET", "/v1/orders", {"grpc-timeout": "abc"}, "grpc-timeout"),  # was 500: error parsing grpc-timeout
    ("GET", "/v1/orders", {"grpc-encoding": "snappy"}, "grpc-encoding"),  # was 500
    ("GET", "/v1/orders", {"grpc-previous-rpc-attempts": "x"}, "grpc-previous-rpc-attempts"),  # was 500
    ("GET", "/v1/orders", {"x-big": "a" * 20_000}, "too large"),  # was 429 from gRPC's metadata limit
    ("GET", "/v1/orders/%ff", {}, "UTF-8"),  # was 500: DecodeError in order_svc
    ("GET", "/v1/orders?customerId=%ff", {}, "UTF-8"),
    ("GET", "/v1/orders/%e2%82:watch", {}, "UTF-8"),
    ("POST", "/v1/orders/%ed%a0%80:cancel", {}, "UTF-8"),  # a surrogate: not UTF-8 either
]


@pytest.mark.parametrize(("method", "path", "headers", "named"), BAD_HEADERS_AND_PATHS)
async def test_bad_headers_and_paths_are_a_4xx_naming_the_problem(
    http: httpx.AsyncClient, method: str, path: str, headers: dict[str, str | bytes], named: str
) -> None:
    content = b"{}" if method == "POST" else b""
    raw = [(name.encode(), value if isinstance(value, bytes) else value.encode()) for name, value in headers.items()]
    reply = await http.request(method, path, content=content, headers=[(b"content-type", b"application/json"), *raw])
    assert reply.status_code in (400, 431), (reply.status_code, reply.text)
    assert reply.headers["content-type"].startswith("application/json")
    status = reply.json()
    assert status["code"] in (grpc.StatusCode.INVALID_ARGUMENT.value[0], grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
    assert named in status["message"], status


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Mixed-Case": "fine", "x-trace-bin": "YWJj", "x-padded-bin": "YWI="},  # gRPC can carry all of these
        {"user-agent": "Mozilla/5.0 (X11; Linux x86_64)", "accept-language": "en-GB,en;q=0.9", "cookie": "a=b; c=d"},
        {"x-forwarded-for": "203.0.113.9", "x-request-id": "abc-123"},
    ],
)
async def test_ordinary_headers_pass(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    reply = await http.get("/v1/orders", headers=headers)
    assert reply.status_code == 200, reply.text


INTERNAL_PATHS = [
    "/payments.v1.PaymentService/GetPayment",
    "/payments.v1.PaymentService/ListPayments",
    "/notifications.v1.NotificationService/ListNotifications",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.health.v1.Health/Check",
]


@pytest.mark.parametrize("path", INTERNAL_PATHS)
@pytest.mark.parametrize("content_type", ["application/json", "application/grpc"])
async def test_internal_services_are_unreachable_over_http1(
    http: httpx.AsyncClient, path: str, content_type: str
) -> None:
    reply = await http.post(path, content=b"{}", headers={"content-type": content_type})
    if content_type == "application/grpc":  # Envoy answers a gRPC request the gRPC way: UNIMPLEMENTED
        assert reply.headers.get("grpc-status") == str(grpc.StatusCode.UNIMPLEMENTED.value[0])
    else:
        assert reply.status_code == 404
    assert "x-envoy-upstream-service-time" not in reply.headers  # never forwarded upstream


async def test_internal_services_are_unreachable_over_native_grpc(
    system: System, token: TokenFor, customer: str
) -> None:
    async with grpc.aio.insecure_channel(system.url.removeprefix("http://")) as gateway:
        # The gateway does serve native gRPC for OrderService ...
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await orders_pb2_grpc.OrderServiceStub(gateway).GetOrder(
                orders_pb2.GetOrderRequest(order_id=str(uuid.uuid4())),
                metadata=(("authorization", f"Bearer {token(customer)}"),),
                timeout=10,
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        # ... and nothing else.
        calls = [
            payments_pb2_grpc.PaymentServiceStub(gateway).GetPayment(
                payments_pb2.GetPaymentRequest(order_id="x"), timeout=10
            ),
            payments_pb2_grpc.PaymentServiceStub(gateway).ListPayments(payments_pb2.ListPaymentsRequest(), timeout=10),
            notifications_pb2_grpc.NotificationServiceStub(gateway).ListNotifications(
                notifications_pb2.ListNotificationsRequest(), timeout=10
            ),
            health_pb2_grpc.HealthStub(gateway).Check(health_pb2.HealthCheckRequest(), timeout=10),
        ]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # Reflection is a bidi stream: the gateway ends it at once, before any message is sent.
        reflection = reflection_pb2_grpc.ServerReflectionStub(gateway).ServerReflectionInfo(timeout=10)
        assert await reflection.code() == grpc.StatusCode.UNIMPLEMENTED
    # The same calls do work on the services themselves: the gateway is what refuses them.
    async with grpc.aio.insecure_channel(system.stack.notification.target) as direct:
        listed = await notifications_pb2_grpc.NotificationServiceStub(direct).ListNotifications(
            notifications_pb2.ListNotificationsRequest(), timeout=10
        )
        assert listed is not None


# ── The API's description: /openapi.json and /docs, public ─────────────────────────────────────────────


async def test_the_openapi_document_is_served_without_a_token(anonymous: httpx.AsyncClient) -> None:
    reply = await anonymous.get("/openapi.json")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.json() == json.loads(OPENAPI.read_text(encoding="utf-8"))
    head = await anonymous.head("/openapi.json")
    assert head.status_code == 200


async def test_the_reference_page_is_served_without_a_token_from_the_gateway_alone(
    anonymous: httpx.AsyncClient,
) -> None:
    reply = await anonymous.get("/docs")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in reply.headers["content-security-policy"]
    if not REDOC.is_file():
        assert "make docs-ui" in reply.text  # a notice that says how to get the real page
        pytest.skip(f"{REDOC.relative_to(ROOT)} is not installed (`make docs-ui` needs npm): /docs is a notice")
    assert 'spec-url="/openapi.json"' in reply.text
    script = await anonymous.get("/docs/redoc.standalone.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.content == REDOC.read_bytes()


# Every method a documented path does not take, on each path: 405, what it takes (Allow), Status JSON.
UNDECLARED = [
    (method, path, allow)
    for path, allow in (
        ("/v1/orders", "GET, POST"),
        (f"/v1/orders/{uuid.UUID(int=1)}", "GET"),
        (f"/v1/orders/{uuid.UUID(int=1)}:cancel", "POST"),
        (f"/v1/orders/{uuid.UUID(int=1)}:watch", "GET"),
    )
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "QUERY", "GET", "POST")
    if method not in allow
]


@pytest.mark.parametrize(("method", "path", "allow"), UNDECLARED)
async def test_a_method_the_path_does_not_take_is_405_naming_the_ones_it_does(
    http: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    reply = await http.request(method, path)  # QUERY with no Content-Type, as the fuzzer sends it
    body = assert_status_json(reply, 405, grpc.StatusCode.UNIMPLEMENTED)
    assert reply.headers["allow"] == allow
    assert f"method {method} is not allowed" in str(body["message"]), body
    assert "x-envoy-upstream-service-time" not in reply.headers  # never reached order_svc
    for method_taken in allow.split(", "):
        assert method_taken in str(body["message"])


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v1/orders/abc", "order_id: must be a UUID"),
        ("/v1/orders/%01", "order_id: must not contain control characters"),  # was 404 "orders/\x01 not found"
        ("/v1/orders/a%0Ab:watch", "order_id: must not contain control characters"),
        ("/v1/orders/%C2%85", "order_id: must not contain control characters"),
    ],
)
async def test_a_malformed_order_id_is_a_400_naming_order_id(http: httpx.AsyncClient, path: str, message: str) -> None:
    body = assert_status_json(await http.get(path), 400, grpc.StatusCode.INVALID_ARGUMENT)
    assert str(body["message"]).startswith(message), body
    details = body["details"]
    assert isinstance(details, list)
    (bad_request,) = [d for d in details if d["@type"] == "type.googleapis.com/google.rpc.BadRequest"]
    assert [v["field"] for v in bad_request["fieldViolations"]] == ["order_id"]


@pytest.mark.parametrize(
    ("path", "content", "message"),
    [
        # Was `order: Proto fields must have a name.` (and `: Proto ...` for CancelOrder's body).
        ("/v1/orders", b'{"": 1}', 'order: a JSON object in the request body has an empty key ("")'),
        (
            f"/v1/orders/{uuid.UUID(int=1)}:cancel",
            b'{"": "x"}',
            'request body: a JSON object in the request body has an empty key ("")',
        ),
        (f"/v1/orders/{uuid.UUID(int=1)}:cancel", b"[]", "request body: must be a JSON object"),
        ("/v1/orders", b"[]", "request body: a JSON array in the request body where an object"),
        (
            "/v1/orders",
            b'{"lineItems": [{"quantity": "two"}]}',
            'order.line_items[0].quantity: "two" is not a 32-bit integer',
        ),
        ("/v1/orders", b'{"state": "NOPE"}', 'order.state: "NOPE" is not a valid orders.v1.OrderState'),
        ("/v1/orders", b'{"customerId": ', "the request body is not valid JSON: Unexpected end of string"),
        ("/v1/orders", b'{"lineItems": []}', "order.line_items: must have at least one item"),  # order_svc's
    ],
)
async def test_a_bad_body_is_a_400_whose_message_says_what_to_fix(
    http: httpx.AsyncClient, path: str, content: bytes, message: str
) -> None:
    reply = await http.post(path, content=content, headers={"content-type": "application/json"})
    body = assert_status_json(reply, 400, grpc.StatusCode.INVALID_ARGUMENT)
    assert str(body["message"]).startswith(message), body
    assert "Proto field" not in str(body["message"])


async def test_a_request_the_http_parser_refuses_is_a_400_saying_what_to_encode(system: System) -> None:
    host, port = system.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"GET /v1/orders/a\x01b HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), raw
    status = json.loads(payload)
    assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "percent-encode control characters" in status["message"], status
