"""gateway/openapi.json: a valid OpenAPI 3.1 document that says exactly what the protos' HTTP rules say."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from google.api import annotations_pb2, field_behavior_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from orders.v1 import orders_pb2

from chassis.errors import InvalidArgument
from chassis.ids import derived_id, new_id
from chassis.money import NANOS_PER_UNIT
from chassis.paging import page_size as page_size_of
from devstack.gateway import OPENAPI as GATEWAY_OPENAPI
from order_svc import domain
from order_svc.grpc_api import MAX_IDEMPOTENCY_KEY_LENGTH
from tools import openapi, protogen

Json = dict[str, Any]
VERBS = {"get", "put", "post", "delete", "patch"}
SERVICE = orders_pb2.DESCRIPTOR.services_by_name["OrderService"]
ORDER = "#/components/schemas/orders.v1.Order"


@pytest.fixture(scope="module")
def doc() -> Json:
    document: Json = json.loads(protogen.OPENAPI.read_text(encoding="utf-8"))
    return document


def _operations(doc: Json) -> dict[str, tuple[str, str, Json]]:
    """operationId → (verb, path, operation)."""
    return {
        op["operationId"]: (verb, path, op)
        for path, ops in doc["paths"].items()
        for verb, op in ops.items()
        if verb in VERBS
    }


def _proto_routes() -> set[tuple[str, str, str]]:
    """(RPC, verb, path) of every google.api.http rule of OrderService, read from the generated code."""
    routes = set()
    for method in SERVICE.methods:
        options = descriptor_pb2.MethodOptions.FromString(method.GetOptions().SerializeToString())
        rule = options.Extensions[annotations_pb2.http]
        for r in (rule, *rule.additional_bindings):
            verb = r.WhichOneof("pattern")
            assert verb is not None, method.full_name
            assert verb != "custom", method.full_name
            routes.add((method.name, verb, re.sub(r"\{([^}=]+)(=[^}]*)?\}", r"{\1}", getattr(r, verb))))
    return routes


def test_the_committed_document_is_valid_openapi_3_1(doc: Json) -> None:
    assert doc["openapi"] == "3.1.0"
    validate(doc, cls=OpenAPIV31SpecValidator)


def test_the_validator_does_reject_a_broken_document(doc: Json) -> None:
    broken = json.loads(json.dumps(doc))
    del broken["paths"]["/v1/orders/{order_id}"]["get"]["parameters"]  # {order_id} left undeclared
    with pytest.raises(OpenAPIValidationError):
        validate(broken, cls=OpenAPIV31SpecValidator)


def test_the_committed_text_is_canonical(doc: Json) -> None:
    assert protogen.OPENAPI.read_text(encoding="utf-8") == openapi.render(doc)


def test_routes_are_exactly_the_http_rules_of_order_service(doc: Json) -> None:
    documented = {(op_id, verb, path) for op_id, (verb, path, _) in _operations(doc).items()}
    assert documented == _proto_routes()
    assert {verb for ops in doc["paths"].values() for verb in ops} <= VERBS  # nothing but operations


def test_list_orders_takes_its_remaining_fields_as_query_parameters(doc: Json) -> None:
    _, _, op = _operations(doc)["ListOrders"]
    assert [(p["name"], p["in"]) for p in op["parameters"]] == [
        ("customerId", "query"),
        ("pageSize", "query"),
        ("pageToken", "query"),
    ]
    assert "requestBody" not in op


def test_order_id_is_a_path_parameter_of_the_order_routes(doc: Json) -> None:
    for name in ("GetOrder", "CancelOrder", "WatchOrder"):
        _, path, op = _operations(doc)[name]
        assert "{order_id}" in path
        (param,) = [p for p in op["parameters"] if p["in"] == "path"]
        assert param["name"] == "order_id"
        assert param["required"] is True


def test_bodies_follow_the_body_mapping(doc: Json) -> None:
    ops = _operations(doc)
    create = ops["CreateOrder"][2]["requestBody"]
    assert create["required"] is True
    assert create["content"]["application/json"]["schema"] == {"$ref": ORDER}  # body: "order"
    cancel = ops["CancelOrder"][2]["requestBody"]["content"]["application/json"]["schema"]
    assert list(cancel["properties"]) == ["reason"]  # body: "*" less the path's order_id


def test_create_order_has_the_idempotency_key_header(doc: Json) -> None:
    _, _, op = _operations(doc)["CreateOrder"]
    (header,) = [p for p in op["parameters"] if p["in"] == "header"]
    assert header["name"] == "Idempotency-Key"
    assert header["schema"] == {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH}
    assert op["responses"]["409"] == {"$ref": "#/components/responses/AlreadyExists"}
    for name, (_, _, other) in _operations(doc).items():
        if name != "CreateOrder":
            assert not [p for p in other.get("parameters", []) if p["in"] == "header"], name


def test_watch_order_is_a_text_event_stream_of_order_json(doc: Json) -> None:
    verb, path, op = _operations(doc)["WatchOrder"]
    assert (verb, path) == ("get", "/v1/orders/{order_id}:watch")
    content = op["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]
    data = content["text/event-stream"]["schema"]["properties"]["data"]
    assert data["contentMediaType"] == "application/json"
    assert data["contentSchema"] == {"$ref": ORDER}


def test_every_route_requires_the_bearer_token(doc: Json) -> None:
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT sent as `Authorization: Bearer <token>`.",
    }
    for name, (_, _, op) in _operations(doc).items():
        assert op["security"] == [{"bearerAuth": []}], name
        assert op["responses"]["401"] == {"$ref": "#/components/responses/Unauthenticated"}, name


def _messages(descriptor: Descriptor) -> dict[str, Descriptor]:
    found = {descriptor.full_name: descriptor}
    for nested in descriptor.nested_types:
        found |= _messages(nested)
    return found


def test_required_and_read_only_reflect_field_behavior(doc: Json) -> None:
    schemas = doc["components"]["schemas"]
    messages: dict[str, Descriptor] = {}
    for top in orders_pb2.DESCRIPTOR.message_types_by_name.values():
        messages |= _messages(top)
    checked = []
    for name, message in messages.items():
        if name not in schemas:
            continue
        behaviors = {
            f.json_name: set(
                descriptor_pb2.FieldOptions.FromString(f.GetOptions().SerializeToString()).Extensions[
                    field_behavior_pb2.field_behavior
                ]
            )
            for f in message.fields
        }
        schema = schemas[name]
        required = [n for n, b in behaviors.items() if field_behavior_pb2.REQUIRED in b]
        read_only = {n for n, b in behaviors.items() if field_behavior_pb2.OUTPUT_ONLY in b}
        assert schema.get("required", []) == required, name
        assert {n for n, p in schema["properties"].items() if p.get("readOnly")} == read_only, name
        checked.append(name)
    assert {"orders.v1.Order", "orders.v1.LineItem", "orders.v1.OrderStep", "orders.v1.ListOrdersResponse"} <= set(
        checked
    )
    order = schemas["orders.v1.Order"]
    assert order["required"] == ["lineItems"]  # customerId is the token's subject: optional since identity
    assert order["properties"]["state"]["readOnly"] is True


def test_order_fields_use_the_proto3_json_mapping(doc: Json) -> None:
    schemas = doc["components"]["schemas"]
    order = schemas["orders.v1.Order"]["properties"]
    assert order["createTime"]["format"] == "date-time"
    assert order["total"]["$ref"] == "#/components/schemas/google.type.Money"
    assert order["lineItems"]["items"] == {"$ref": "#/components/schemas/orders.v1.LineItem"}
    assert order["state"]["$ref"] == "#/components/schemas/orders.v1.OrderState"
    money = schemas["google.type.Money"]["properties"]
    assert {name: (p["type"], p.get("format")) for name, p in money.items()} == {
        "currencyCode": ("string", None),
        "units": ("string", "int64"),
        "nanos": ("integer", "int32"),
    }
    assert schemas["orders.v1.OrderState"]["enum"] == [v.name for v in orders_pb2.OrderState.DESCRIPTOR.values]


def test_errors_are_status_json_with_the_rich_details_the_services_send(doc: Json) -> None:
    responses = doc["components"]["responses"]
    for response in responses.values():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/google.rpc.Status"}
    details = doc["components"]["schemas"]["google.rpc.Status"]["properties"]["details"]["items"]["oneOf"]
    assert [d["properties"]["@type"]["const"].removeprefix("type.googleapis.com/") for d in details] == [
        "google.rpc.ErrorInfo",
        "google.rpc.BadRequest",
        "google.rpc.ResourceInfo",
        "google.rpc.PreconditionFailure",
    ]
    for name, (_, path, op) in _operations(doc).items():
        statuses = set(op["responses"])
        assert {"200", "400", "401", "403", "429", "503", "default"} <= statuses, name
        assert ("404" in statuses) == ("{order_id}" in path), name


def test_info_and_server(doc: Json) -> None:
    assert doc["info"]["version"] == "v1"
    assert doc["servers"][0]["url"] == "http://127.0.0.1:8080"
    assert "make gen" in doc["info"]["description"]


def test_stale_check_flags_the_document_behind_a_changed_proto(tmp_path: Path) -> None:
    proto = tmp_path / "proto"
    shutil.copytree(protogen.PROTO, proto)
    orders = proto / "orders" / "v1" / "orders.proto"
    orders.write_text(orders.read_text().replace("// Returns one order.", "// Returns exactly one order."))
    problems = protogen.diff(proto_dir=proto)
    assert "openapi.json: stale" in problems


def test_create_order_links_to_the_operations_on_the_order_it_returns(doc: Json) -> None:
    ops = _operations(doc)
    links = ops["CreateOrder"][2]["responses"]["200"]["links"]
    assert {name: link["operationId"] for name, link in links.items()} == {
        "GetOrder": "GetOrder",
        "CancelOrder": "CancelOrder",
        "WatchOrder": "WatchOrder",
    }
    for link in links.values():
        assert link["parameters"] == {"order_id": "$response.body#/orderId"}
        _, _, target = ops[link["operationId"]]
        assert [p["name"] for p in target["parameters"] if p["in"] == "path"] == ["order_id"]
    assert "orderId" in doc["components"]["schemas"]["orders.v1.Order"]["properties"]
    for name in ("ListOrders", "GetOrder", "CancelOrder", "WatchOrder"):
        assert "links" not in ops[name][2]["responses"]["200"], name


def test_the_rules_the_document_states_are_the_ones_order_svc_checks(doc: Json) -> None:
    """Each number, pattern and list of openapi.ORDERS_API.field_schemas, against the constant the service uses."""
    schemas = doc["components"]["schemas"]
    order = schemas["orders.v1.Order"]["properties"]
    item = schemas["orders.v1.LineItem"]["properties"]
    money = schemas["google.type.Money"]["properties"]
    assert order["customerId"]["maxLength"] == domain.MAX_ID_LENGTH
    assert (order["lineItems"]["minItems"], order["lineItems"]["maxItems"]) == (1, domain.MAX_LINE_ITEMS)
    assert set(order["paymentMethod"]["enum"]) == {"", *domain.KNOWN_PAYMENT_METHODS}
    assert (item["sku"]["minLength"], item["sku"]["maxLength"]) == (1, domain.MAX_ID_LENGTH)
    assert (item["quantity"]["minimum"], item["quantity"]["maximum"]) == (1, domain.MAX_QUANTITY)
    assert item["unitPrice"]["required"] == ["currencyCode"]
    assert money["currencyCode"]["pattern"] == domain._CURRENCY.pattern
    assert (money["nanos"]["minimum"], money["nanos"]["maximum"]) == (0, NANOS_PER_UNIT - 1)
    (page_size,) = [p for p in _operations(doc)["ListOrders"][2]["parameters"] if p["name"] == "pageSize"]
    assert page_size["schema"]["minimum"] == 0
    with pytest.raises(InvalidArgument):
        page_size_of(-1)
    # Every order id in the document is a UUID, which is what order_svc makes and accepts.
    for name in ("GetOrder", "CancelOrder", "WatchOrder"):
        (param,) = [p for p in _operations(doc)[name][2]["parameters"] if p["name"] == "order_id"]
        assert param["schema"] == {"type": "string", "format": "uuid"}
    assert order["orderId"]["format"] == "uuid"
    for made in (new_id(), derived_id("idempotency-key", "alice", "k")):
        domain.validate_order_id(made)
    with pytest.raises(InvalidArgument):
        domain.validate_order_id("not-a-uuid")


def test_the_document_is_served_at_openapi_json_as_committed() -> None:
    assert GATEWAY_OPENAPI == protogen.OPENAPI  # devstack.gateway serves the file `make gen` writes
