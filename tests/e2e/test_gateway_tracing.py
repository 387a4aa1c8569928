"""Envoy traces too: an order placed through the gateway is one trace, Envoy's span at its root.

A stack of its own with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at the test's OTLP receiver
(``devstack.otlp``): the services export there, and so does Envoy, whose rendered config then
has a ``tracing`` block (``devstack.gateway.tracing_settings``). The tree is written to
``artifacts/trace-gateway.txt``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from devstack.gateway import TRACING_CLUSTER, page_or_placeholder
from devstack.otlp import OtlpReceiver, ReceivedSpan
from devstack.stack import EnvoyProcess, Stack, free_port, wait_for
from tests.integration.test_tracing import (
    CREATED_NOTICE_PATH,
    MESSAGE_ID,
    PAID_PATH,
    Tree,
    _find,
    created_event_id,
    save_tree,
)

CREATE = ("order_svc", "SERVER", "/orders.v1.OrderService/CreateOrder")
BODY = {
    "lineItems": [{"sku": "SKU-1", "quantity": 1, "unitPrice": {"currencyCode": "USD", "units": "3"}}],
    "paymentMethod": "pm_card_visa",
}


@dataclass
class TracedGateway:
    stack: Stack
    gateway: EnvoyProcess
    receiver: OtlpReceiver


@pytest.fixture(scope="module")
async def traced(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TracedGateway]:
    receiver = await OtlpReceiver().start()
    root = Path(tmp_path_factory.mktemp("traced-gateway"))
    stack = Stack(root, env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"})
    gateway: EnvoyProcess | None = None
    try:
        await stack.start()
        config = stack.gateway_config(port=free_port(), admin_port=free_port(), page=page_or_placeholder(root))
        assert config.otlp_endpoint == receiver.endpoint
        gateway = EnvoyProcess(config, root / "envoy").start()
        await gateway.wait_ready()
        yield TracedGateway(stack, gateway, receiver)
    finally:
        if gateway is not None:
            gateway.terminate()
        stack.stop()
        await receiver.stop()


async def place(traced: TracedGateway, headers: dict[str, str]) -> str:
    token = traced.stack.token(f"traced-{secrets.token_hex(6)}")
    async with httpx.AsyncClient(base_url=traced.gateway.url, timeout=15, trust_env=False) as http:
        reply = await http.post("/v1/orders", json=BODY, headers={"Authorization": f"Bearer {token}", **headers})
    assert reply.status_code == 200, reply.text
    order_id: str = reply.json()["orderId"]
    return order_id


def create_span(tree: Tree) -> ReceivedSpan | None:
    return next((s for s in tree.spans if (s.service, s.kind, s.name) == CREATE), None)


def gateway_spans(tree: Tree) -> list[ReceivedSpan]:
    return [s for s in tree.spans if s.service == "gateway"]


def complete(tree: Tree) -> bool:
    server = create_span(tree)
    return (
        server is not None
        and bool(gateway_spans(tree))
        and _find(tree, server, PAID_PATH) is not None
        and _find(tree, server, CREATED_NOTICE_PATH) is not None
    )


async def gateway_trace(receiver: OtlpReceiver, order_id: str) -> Tree:
    """The order's trace (found by its OrderCreated event) once Envoy's span and the whole saga are in it."""
    event_id = created_event_id(order_id)

    async def whole() -> Tree | None:
        producers = [s for s in receiver.with_attribute(MESSAGE_ID, event_id) if s.kind == "PRODUCER"]
        if not producers:
            return None
        tree = Tree(receiver.trace(producers[0].trace_id))
        return tree if complete(tree) else None

    try:
        # Envoy exports its spans every 5 s (or every 5 spans), so this may take a while.
        found: Tree | None = await wait_for(whole, timeout=60, interval=0.05, what=f"the trace of {order_id}")
    except TimeoutError:
        producers = receiver.with_attribute(MESSAGE_ID, event_id)
        partial = Tree(receiver.trace(producers[0].trace_id)) if producers else "no span of the order yet"
        raise AssertionError(f"the trace of {order_id} never completed; so far:\n{partial}") from None
    assert found is not None
    return found


def test_the_rendered_config_traces_only_when_asked(traced: TracedGateway) -> None:
    doc = yaml.safe_load(traced.gateway.config_path.read_text())
    (listener,) = doc["static_resources"]["listeners"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    provider = hcm["tracing"]["provider"]
    assert provider["name"] == "envoy.tracers.opentelemetry"
    assert provider["typed_config"]["service_name"] == "gateway"
    assert provider["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] == TRACING_CLUSTER
    (cluster,) = [c for c in doc["static_resources"]["clusters"] if c["name"] == TRACING_CLUSTER]
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"]
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "127.0.0.1", "port_value": traced.receiver.port}


async def test_an_order_placed_through_the_gateway_is_one_trace_rooted_at_envoy(traced: TracedGateway) -> None:
    order_id = await place(traced, {})
    tree = await gateway_trace(traced.receiver, order_id)
    save_tree("trace-gateway.txt", tree)

    assert {s.trace_id for s in tree.spans} == {tree.trace_id}
    assert {"gateway", "order_svc", "payment_svc", "notification_svc"} <= {s.service for s in tree.spans}
    (root,) = tree.roots()
    assert (root.service, root.kind, root.parent_span_id) == ("gateway", "SERVER", "")
    server = create_span(tree)
    assert server is not None
    assert server.parent_span_id == root.span_id, tree
    assert root.start_ns <= server.start_ns


async def test_the_gateway_continues_an_incoming_traceparent(traced: TracedGateway) -> None:
    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    order_id = await place(traced, {"traceparent": f"00-{trace_id}-{caller}-01"})
    tree = await gateway_trace(traced.receiver, order_id)

    assert tree.trace_id == trace_id
    (root,) = tree.roots()  # the caller's span is not in the trace: Envoy's is the first received
    assert (root.service, root.kind, root.parent_span_id) == ("gateway", "SERVER", caller)
    server = create_span(tree)
    assert server is not None
    assert server.parent_span_id == root.span_id, tree
