"""The services and HTTP routes in the contracts are exactly the public contract of docs/architecture.md."""

from __future__ import annotations

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from notifications.v1 import notifications_pb2
from orders.v1 import orders_pb2
from payments.v1 import payments_pb2

from tools.protogen import DESCRIPTOR_SET

ROUTES = {
    "CreateOrder": ("post", "/v1/orders", "order"),
    "GetOrder": ("get", "/v1/orders/{order_id}", ""),
    "ListOrders": ("get", "/v1/orders", ""),
    "CancelOrder": ("post", "/v1/orders/{order_id}:cancel", "*"),
    "WatchOrder": ("get", "/v1/orders/{order_id}:watch", ""),
}


def _methods(service: str, module: object) -> set[str]:
    return {m.name for m in module.DESCRIPTOR.services_by_name[service].methods}  # type: ignore[attr-defined]


def test_each_service_offers_exactly_the_methods_the_design_names() -> None:
    assert _methods("OrderService", orders_pb2) == set(ROUTES)
    assert _methods("PaymentService", payments_pb2) == {"GetPayment", "ListPayments"}
    assert _methods("NotificationService", notifications_pb2) == {"ListNotifications"}


def test_only_watch_order_streams() -> None:
    service = orders_pb2.DESCRIPTOR.services_by_name["OrderService"]
    streaming = {m.name for m in service.methods if m.server_streaming or m.client_streaming}
    assert streaming == {"WatchOrder"}


def _gateway_pool() -> tuple[descriptor_pool.DescriptorPool, descriptor_pb2.FileDescriptorSet]:
    fds = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        pool.Add(file)
    return pool, fds


def test_gateway_descriptor_set_routes_match_the_design_table() -> None:
    _, fds = _gateway_pool()
    (orders_file,) = [f for f in fds.file if f.name == "orders/v1/orders.proto"]
    (service,) = orders_file.service
    found = {}
    for method in service.method:
        rule: http_pb2.HttpRule = method.options.Extensions[annotations_pb2.http]
        verb = rule.WhichOneof("pattern")
        assert verb is not None, f"{method.name} has no HTTP rule"
        found[method.name] = (verb, getattr(rule, verb), rule.body)
    assert found == ROUTES


def test_gateway_descriptor_set_carries_rich_error_types_and_only_the_public_service() -> None:
    pool, fds = _gateway_pool()
    for name in ("google.rpc.Status", "google.rpc.BadRequest", "google.rpc.ErrorInfo"):
        assert pool.FindMessageTypeByName(name)
    services = {f"{f.package}.{s.name}" for f in fds.file for s in f.service}
    assert services == {"orders.v1.OrderService"}


def test_internal_services_have_no_http_annotations() -> None:
    for module in (payments_pb2, notifications_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                options = descriptor_pb2.MethodOptions.FromString(method.GetOptions().SerializeToString())
                assert not options.HasExtension(annotations_pb2.http), method.full_name
