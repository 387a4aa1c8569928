"""The OpenAPI 3.1 description of the gateway's HTTP/JSON API, derived from the protos.

``build`` reads a ``FileDescriptorSet`` compiled with ``--include_imports
--include_source_info`` (``tools/protogen.py`` compiles it during ``make gen``) and
returns the document; ``render`` turns it into the committed text
(``gateway/openapi.json``: sorted keys, two-space indent, one trailing newline).

What comes from where:

- paths and methods: each ``google.api.http`` rule of the service (additional bindings
  included); ``{field}`` in a template is a path parameter; the request fields that
  neither the path nor the body binds are query parameters (lowerCamelCase, nested
  messages flattened as ``a.b``), as Envoy's gRPC-JSON transcoder reads them;
- ``body: "field"`` sends that field's schema, ``body: "*"`` the request message less
  its path fields; ``response_body`` picks a field of the response;
- schemas follow the proto3 JSON mapping: ``json_name`` property names (other keys are
  ignored, but never the empty one: ``propertyNames``), 64-bit
  integers as strings, enums as their value names, bytes as base64, maps as objects,
  repeated fields as arrays, messages as ``$ref`` components named by their full proto
  name, well-known types (``Timestamp``, ``Duration``, wrappers, ``Struct``…) inline in
  their JSON form;
- descriptions are the protos' leading comments (trailing when there is none);
- ``google.api.field_behavior``: ``REQUIRED`` → ``required``, ``OUTPUT_ONLY`` →
  ``readOnly``, ``INPUT_ONLY`` → ``writeOnly``;
- a server stream is ``text/event-stream`` (Envoy's ``stream_sse_style_delimited``):
  one ``data: <message JSON>`` event per message, its ``schema`` that of one event;
- errors are ``google.rpc.Status`` JSON at the HTTP status Envoy maps each gRPC code
  to, its ``details`` the ``@type``-tagged detail messages the services attach;
- ``links``: an operation whose response message has a field that another operation
  takes as its whole path (``{order_id}``), and that was not called with that value
  already, links to it, the value taken from the response body
  (``$response.body#/orderId``): clients and fuzzers follow CreateOrder to GetOrder,
  CancelOrder and WatchOrder.

What the protos cannot say (the bearer scheme, header parameters carried as gRPC
metadata, which error details the services send, the ranges, lengths and formats the
services' domain rules accept) is the ``Api`` configuration below.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, field_behavior_pb2
from google.protobuf import descriptor_pb2

__all__ = ["ORDERS_API", "Api", "Header", "build", "render", "write"]

Json = dict[str, Any]
_FDP = descriptor_pb2.FieldDescriptorProto
_FILE = descriptor_pb2.FileDescriptorProto
_MESSAGE = descriptor_pb2.DescriptorProto
_SCHEMAS = "#/components/schemas/"
_RESPONSES = "#/components/responses/"
_ANY_PREFIX = "type.googleapis.com/"


@dataclass(frozen=True)
class Header:
    """A request header an RPC reads as gRPC metadata (Envoy forwards HTTP headers as metadata)."""

    name: str
    description: str
    schema: Json
    required: bool = False
    errors: tuple[str, ...] = ()  # extra error responses (component names) the header brings


@dataclass(frozen=True)
class Api:
    """What the document says beyond the protos."""

    service: str
    title: str
    server: str
    server_description: str = ""
    license: str = ""
    headers: Mapping[str, Sequence[Header]] = field(default_factory=dict)  # by method name
    # The detail messages a repeated google.protobuf.Any field carries, by the field's full name.
    any_types: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # JSON Schema keywords the services' rules add to a field (ranges, lengths, patterns, formats), by the
    # field's full name; for a repeated field they apply to the array (minItems, maxItems).
    field_schemas: Mapping[str, Json] = field(default_factory=dict)


ORDERS_API = Api(
    service="orders.v1.OrderService",
    title="Order saga HTTP/JSON API",
    server="http://127.0.0.1:8080",
    server_description="The Envoy gateway of `make up`.",
    license="Apache-2.0",
    headers={
        "CreateOrder": (
            Header(
                name="Idempotency-Key",
                description=(
                    "Makes the call safe to retry: a retry with the same key returns the first result, "
                    "and the same key with a different request is 409 ALREADY_EXISTS. At most 255 "
                    "characters; without it every call places a new order."
                ),
                # 255 is order_svc/grpc_api.py's MAX_IDEMPOTENCY_KEY_LENGTH (a test holds them equal).
                schema={"type": "string", "maxLength": 255},
                errors=("AlreadyExists",),
            ),
        )
    },
    # chassis/grpc_errors.py: ErrorInfo on every domain error, plus BadRequest (INVALID_ARGUMENT),
    # ResourceInfo (NOT_FOUND) or PreconditionFailure (FAILED_PRECONDITION).
    any_types={
        "google.rpc.Status.details": (
            "google.rpc.ErrorInfo",
            "google.rpc.BadRequest",
            "google.rpc.ResourceInfo",
            "google.rpc.PreconditionFailure",
        )
    },
    # order_svc/domain.py (place_order, validate_order_id) and chassis/paging.py: what a request must satisfy
    # besides its JSON shape. A value outside them is a 400 naming the field; tests/contract/test_openapi.py
    # holds each number equal to the constant the service checks.
    field_schemas={
        "orders.v1.Order.order_id": {"format": "uuid"},
        "orders.v1.GetOrderRequest.order_id": {"format": "uuid"},
        "orders.v1.CancelOrderRequest.order_id": {"format": "uuid"},
        "orders.v1.WatchOrderRequest.order_id": {"format": "uuid"},
        "orders.v1.Order.customer_id": {"maxLength": 128},
        "orders.v1.Order.line_items": {"minItems": 1, "maxItems": 100},
        "orders.v1.Order.payment_method": {
            "enum": ["", "pm_card_amex", "pm_card_declined", "pm_card_mastercard", "pm_card_visa"]
        },
        "orders.v1.LineItem.sku": {"minLength": 1, "maxLength": 128, "pattern": r"\S"},
        "orders.v1.LineItem.quantity": {"minimum": 1, "maximum": 1000},
        "orders.v1.LineItem.unit_price": {"required": ["currencyCode"]},
        "google.type.Money.currency_code": {"pattern": "^[A-Z]{3}$"},
        "google.type.Money.units": {"pattern": "^[0-9]+$"},
        "google.type.Money.nanos": {"minimum": 0, "maximum": 999999999},
        "orders.v1.ListOrdersRequest.page_size": {"minimum": 0},
    },
)

# gRPC status → HTTP status, as Envoy's transcoder maps them (convert_grpc_status renders the
# google.rpc.Status as JSON). Each entry: component name, HTTP status, description.
_ERRORS: tuple[tuple[str, str, str], ...] = (
    (
        "InvalidArgument",
        "400",
        "INVALID_ARGUMENT: the request has bad fields; `details` holds an ErrorInfo and a BadRequest "
        "naming every bad field. FAILED_PRECONDITION: the resource is not in a state that allows the "
        "call; `details` holds an ErrorInfo and a PreconditionFailure. Also the gateway's own refusals "
        "(malformed JSON, an unknown query parameter), with no details.",
    ),
    (
        "Unauthenticated",
        "401",
        "UNAUTHENTICATED: the bearer token is missing, malformed or expired.",
    ),
    (
        "PermissionDenied",
        "403",
        "PERMISSION_DENIED: the token is valid but does not allow this call.",
    ),
    (
        "NotFound",
        "404",
        "NOT_FOUND: the resource does not exist; `details` holds an ErrorInfo and a ResourceInfo naming it.",
    ),
    (
        "AlreadyExists",
        "409",
        "ALREADY_EXISTS: the request conflicts with what exists, e.g. an Idempotency-Key reused with a "
        "different request; `details` holds an ErrorInfo.",
    ),
    (
        "PayloadTooLarge",
        "413",
        "The body is over the gateway's size limit (the gateway's own refusal, code RESOURCE_EXHAUSTED).",
    ),
    (
        "ResourceExhausted",
        "429",
        "RESOURCE_EXHAUSTED: too many requests; retry later, with backoff.",
    ),
    (
        "Unavailable",
        "503",
        "UNAVAILABLE: the service cannot be reached or is shutting down; retry with backoff.",
    ),
    (
        "Error",
        "default",
        "Any other gRPC status at its HTTP status, e.g. INTERNAL (500), UNIMPLEMENTED (501) or "
        "DEADLINE_EXCEEDED (504).",
    ),
)
_ALWAYS = ("InvalidArgument", "Unauthenticated", "PermissionDenied", "ResourceExhausted", "Unavailable", "Error")

_INT32 = {_FDP.TYPE_INT32, _FDP.TYPE_SINT32, _FDP.TYPE_SFIXED32}
_UINT32 = {_FDP.TYPE_UINT32, _FDP.TYPE_FIXED32}
_INT64 = {_FDP.TYPE_INT64, _FDP.TYPE_SINT64, _FDP.TYPE_SFIXED64}
_UINT64 = {_FDP.TYPE_UINT64, _FDP.TYPE_FIXED64}


def _scalar(kind: int) -> Json:
    """The proto3 JSON form of a scalar field type."""
    if kind in _INT32:
        return {"type": "integer", "format": "int32"}
    if kind in _UINT32:
        return {"type": "integer", "format": "uint32", "minimum": 0}
    if kind in _INT64:
        return {"type": "string", "format": "int64"}
    if kind in _UINT64:
        return {"type": "string", "format": "uint64"}
    if kind == _FDP.TYPE_DOUBLE:
        return {"type": "number", "format": "double"}
    if kind == _FDP.TYPE_FLOAT:
        return {"type": "number", "format": "float"}
    if kind == _FDP.TYPE_BOOL:
        return {"type": "boolean"}
    if kind == _FDP.TYPE_STRING:
        return {"type": "string"}
    if kind == _FDP.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64"}
    raise ValueError(f"not a scalar field type: {kind}")


def _well_known(name: str) -> Json | None:
    """The proto3 JSON form of a well-known type, or None for any other message."""
    wrappers = {
        "DoubleValue": _FDP.TYPE_DOUBLE,
        "FloatValue": _FDP.TYPE_FLOAT,
        "Int64Value": _FDP.TYPE_INT64,
        "UInt64Value": _FDP.TYPE_UINT64,
        "Int32Value": _FDP.TYPE_INT32,
        "UInt32Value": _FDP.TYPE_UINT32,
        "BoolValue": _FDP.TYPE_BOOL,
        "StringValue": _FDP.TYPE_STRING,
        "BytesValue": _FDP.TYPE_BYTES,
    }
    package, _, short = name.rpartition(".")
    if package != "google.protobuf":
        return None
    if short in wrappers:
        return _scalar(wrappers[short])
    known: dict[str, Json] = {
        "Timestamp": {"type": "string", "format": "date-time"},
        "Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
        "FieldMask": {"type": "string"},
        "Empty": {"type": "object"},
        "Struct": {"type": "object", "additionalProperties": True},
        "Value": {},
        "ListValue": {"type": "array", "items": {}},
        "Any": {
            "type": "object",
            "properties": {"@type": {"type": "string"}},
            "required": ["@type"],
            "additionalProperties": True,
        },
    }
    return known.get(short)


def _clean(comment: str) -> str:
    lines = textwrap.dedent(comment).strip("\n").splitlines()
    return "\n".join(line.rstrip() for line in lines).strip()


def _json_name(f: descriptor_pb2.FieldDescriptorProto) -> str:
    if f.HasField("json_name"):
        return f.json_name
    head, *rest = f.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _behaviors(f: descriptor_pb2.FieldDescriptorProto) -> set[int]:
    return set(f.options.Extensions[field_behavior_pb2.field_behavior])


@dataclass(frozen=True)
class _Message:
    proto: descriptor_pb2.DescriptorProto
    comment: str
    field_comments: tuple[str, ...]


@dataclass(frozen=True)
class _Enum:
    proto: descriptor_pb2.EnumDescriptorProto
    comment: str
    value_comments: tuple[str, ...]


@dataclass(frozen=True)
class _Method:
    proto: descriptor_pb2.MethodDescriptorProto
    comment: str


@dataclass(frozen=True)
class _Service:
    proto: descriptor_pb2.ServiceDescriptorProto
    comment: str
    methods: tuple[_Method, ...]
    package: str
    file: str


class _Index:
    """Every message, enum and service of a descriptor set by full name, with its comments."""

    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, _Message] = {}
        self.enums: dict[str, _Enum] = {}
        self.services: dict[str, _Service] = {}
        for file in fds.file:
            comments = {
                tuple(loc.path): _clean(loc.leading_comments or loc.trailing_comments)
                for loc in file.source_code_info.location
                if loc.leading_comments or loc.trailing_comments
            }
            prefix = f"{file.package}." if file.package else ""
            for i, message in enumerate(file.message_type):
                self._add_message(prefix, message, (_FILE.MESSAGE_TYPE_FIELD_NUMBER, i), comments)
            for i, enum in enumerate(file.enum_type):
                self._add_enum(prefix, enum, (_FILE.ENUM_TYPE_FIELD_NUMBER, i), comments)
            for i, service in enumerate(file.service):
                path = (_FILE.SERVICE_FIELD_NUMBER, i)
                methods = tuple(
                    _Method(m, comments.get((*path, descriptor_pb2.ServiceDescriptorProto.METHOD_FIELD_NUMBER, j), ""))
                    for j, m in enumerate(service.method)
                )
                self.services[prefix + service.name] = _Service(
                    service, comments.get(path, ""), methods, file.package, file.name
                )

    def _add_message(
        self,
        prefix: str,
        message: descriptor_pb2.DescriptorProto,
        path: tuple[int, ...],
        comments: Mapping[tuple[int, ...], str],
    ) -> None:
        name = prefix + message.name
        self.messages[name] = _Message(
            message,
            comments.get(path, ""),
            tuple(comments.get((*path, _MESSAGE.FIELD_FIELD_NUMBER, k), "") for k in range(len(message.field))),
        )
        for j, nested in enumerate(message.nested_type):
            self._add_message(f"{name}.", nested, (*path, _MESSAGE.NESTED_TYPE_FIELD_NUMBER, j), comments)
        for j, enum in enumerate(message.enum_type):
            self._add_enum(f"{name}.", enum, (*path, _MESSAGE.ENUM_TYPE_FIELD_NUMBER, j), comments)

    def _add_enum(
        self,
        prefix: str,
        enum: descriptor_pb2.EnumDescriptorProto,
        path: tuple[int, ...],
        comments: Mapping[tuple[int, ...], str],
    ) -> None:
        value = descriptor_pb2.EnumDescriptorProto.VALUE_FIELD_NUMBER
        self.enums[prefix + enum.name] = _Enum(
            enum,
            comments.get(path, ""),
            tuple(comments.get((*path, value, k), "") for k in range(len(enum.value))),
        )

    def message(self, type_name: str) -> _Message:
        return self.messages[type_name.lstrip(".")]

    def field_comment(self, owner: str, f: descriptor_pb2.FieldDescriptorProto) -> str:
        message = self.messages[owner]
        return message.field_comments[list(message.proto.field).index(f)]


def _is_map(index: _Index, f: descriptor_pb2.FieldDescriptorProto) -> bool:
    return (
        f.type == _FDP.TYPE_MESSAGE
        and f.label == _FDP.LABEL_REPEATED
        and index.message(f.type_name).proto.options.map_entry
    )


class _Schemas:
    """Builds schemas and collects the components they refer to."""

    def __init__(
        self, index: _Index, any_types: Mapping[str, Sequence[str]], field_schemas: Mapping[str, Json]
    ) -> None:
        self.index = index
        self.any_types = any_types
        self.field_schemas = field_schemas
        self._constrained: set[str] = set()
        self._wanted: set[str] = set()
        self._built: dict[str, Json] = {}

    def ref(self, full_name: str) -> Json:
        full_name = full_name.lstrip(".")
        known = _well_known(full_name)
        if known is not None:
            return known
        if full_name not in self.index.messages and full_name not in self.index.enums:
            raise KeyError(f"{full_name} is not in the descriptor set")
        self._wanted.add(full_name)
        return {"$ref": _SCHEMAS + full_name}

    def value(self, owner: str, f: descriptor_pb2.FieldDescriptorProto) -> Json:
        """One value of the field (an element when repeated), in its proto3 JSON form."""
        if f.type == _FDP.TYPE_MESSAGE and f.type_name.lstrip(".") == "google.protobuf.Any":
            tagged = self.any_types.get(f"{owner}.{f.name}")
            if tagged:
                return {"oneOf": [self._tagged(name) for name in tagged]}
        if f.type in (_FDP.TYPE_MESSAGE, _FDP.TYPE_ENUM, _FDP.TYPE_GROUP):
            return self.ref(f.type_name)
        return _scalar(f.type)

    def _tagged(self, name: str) -> Json:
        return {
            "type": "object",
            "allOf": [self.ref(name)],
            "properties": {"@type": {"type": "string", "const": _ANY_PREFIX + name}},
            "required": ["@type"],
        }

    def constraints(self, owner: str, f: descriptor_pb2.FieldDescriptorProto) -> Json:
        """The keywords ``Api.field_schemas`` adds to the field (none for most)."""
        name = f"{owner}.{f.name}"
        if name in self.field_schemas:
            self._constrained.add(name)
        return dict(self.field_schemas.get(name, {}))

    def unused_constraints(self) -> list[str]:
        """``Api.field_schemas`` entries that named no field of the document (a typo, a renamed field)."""
        return sorted(set(self.field_schemas) - self._constrained)

    def field(self, owner: str, f: descriptor_pb2.FieldDescriptorProto) -> Json:
        """The schema of a field as a property: arrays, maps, description, readOnly/writeOnly."""
        if _is_map(self.index, f):
            entry = self.index.message(f.type_name)
            schema: Json = {
                "type": "object",
                "additionalProperties": self.value(f.type_name.lstrip("."), entry.proto.field[1]),
            }
        elif f.label == _FDP.LABEL_REPEATED:
            schema = {"type": "array", "items": self.value(owner, f)}
        else:
            schema = dict(self.value(owner, f))
        schema |= self.constraints(owner, f)
        behaviors = _behaviors(f)
        if field_behavior_pb2.OUTPUT_ONLY in behaviors:
            schema["readOnly"] = True
        if field_behavior_pb2.INPUT_ONLY in behaviors:
            schema["writeOnly"] = True
        description = self.index.field_comment(owner, f)
        tagged = self.any_types.get(f"{owner}.{f.name}", ())
        if tagged:
            listed = ", ".join(f"`{name}`" for name in tagged)
            description = f"{description}\n\nEach element is one of {listed}, tagged by `@type`.".strip()
        if description:
            schema["description"] = description
        return schema

    def object(self, owner: str, fields: Sequence[descriptor_pb2.FieldDescriptorProto], description: str) -> Json:
        """An object schema of some fields of ``owner``.

        Other keys are allowed (the transcoder ignores a key it does not know) but not the empty one, which
        protobuf's JSON parser refuses ("Proto fields must have a name").
        """
        schema: Json = {
            "type": "object",
            "properties": {_json_name(f): self.field(owner, f) for f in fields},
            "propertyNames": {"minLength": 1},
        }
        required = [_json_name(f) for f in fields if field_behavior_pb2.REQUIRED in _behaviors(f)]
        if required:
            schema["required"] = required
        if description:
            schema["description"] = description
        return schema

    def _message(self, name: str) -> Json:
        message = self.index.messages[name]
        description = message.comment
        proto = message.proto
        for i, oneof in enumerate(proto.oneof_decl):
            members = [
                f"`{_json_name(f)}`"
                for f in proto.field
                if f.HasField("oneof_index") and f.oneof_index == i and not f.proto3_optional
            ]
            if members:
                description += f"\n\nAt most one of {', '.join(members)} is set (oneof `{oneof.name}`)."
        return self.object(name, list(proto.field), description.strip())

    def _enum(self, name: str) -> Json:
        enum = self.index.enums[name]
        values = [
            f"- `{v.name}`: {' '.join(comment.split())}" if comment else f"- `{v.name}`"
            for v, comment in zip(enum.proto.value, enum.value_comments, strict=True)
        ]
        description = "\n\n".join(part for part in (enum.comment, "\n".join(values)) if part)
        if name == "google.protobuf.NullValue":
            return {"type": "null", "description": description}
        return {"type": "string", "enum": [v.name for v in enum.proto.value], "description": description}

    def components(self) -> Json:
        """Every component referred to so far, and those they refer to."""
        while pending := sorted(self._wanted - self._built.keys()):
            for name in pending:
                self._built[name] = self._enum(name) if name in self.index.enums else self._message(name)
        return dict(sorted(self._built.items()))


_TEMPLATE_VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")


@dataclass(frozen=True)
class _Binding:
    verb: str
    template: str
    body: str
    response_body: str


def _bindings(method: descriptor_pb2.MethodDescriptorProto) -> Iterator[_Binding]:
    if not method.options.HasExtension(annotations_pb2.http):
        return
    rule = method.options.Extensions[annotations_pb2.http]
    for r in (rule, *rule.additional_bindings):
        kind = r.WhichOneof("pattern")
        if kind is None:
            continue
        if kind == "custom":
            yield _Binding(r.custom.kind.lower(), r.custom.path, r.body, r.response_body)
        else:
            yield _Binding(kind, getattr(r, kind), r.body, r.response_body)


class _Operations:
    def __init__(self, api: Api, index: _Index, schemas: _Schemas) -> None:
        self.api = api
        self.index = index
        self.schemas = schemas

    def _resolve(self, message: str, path: str) -> tuple[str, descriptor_pb2.FieldDescriptorProto]:
        """The field a dotted proto field path names, and the message that holds it."""
        owner = message
        *parents, last = path.split(".")
        for part in parents:
            owner = self.index.messages[owner].proto.field[self._position(owner, part)].type_name.lstrip(".")
        return owner, self.index.messages[owner].proto.field[self._position(owner, last)]

    def _position(self, message: str, name: str) -> int:
        for i, f in enumerate(self.index.messages[message].proto.field):
            if f.name == name:
                return i
        raise KeyError(f"{message} has no field {name!r}")

    def _query(
        self, message: str, prefix: tuple[str, ...], json_prefix: str, bound: set[str], seen: tuple[str, ...]
    ) -> Iterator[Json]:
        """Query parameters for the fields of ``message`` that nothing else binds."""
        for f in self.index.messages[message].proto.field:
            path = ".".join((*prefix, f.name))
            name = json_prefix + _json_name(f)
            if path in bound or _is_map(self.index, f):
                continue
            is_message = f.type == _FDP.TYPE_MESSAGE and _well_known(f.type_name.lstrip(".")) is None
            if is_message:
                nested = f.type_name.lstrip(".")
                if f.label != _FDP.LABEL_REPEATED and nested not in seen:
                    yield from self._query(nested, (*prefix, f.name), name + ".", bound, (*seen, nested))
                continue
            parameter: Json = {
                "name": name,
                "in": "query",
                "schema": self.schemas.field(message, f),
            }
            description = parameter["schema"].pop("description", "")
            parameter["schema"].pop("readOnly", None)
            if description:
                parameter["description"] = description
            if field_behavior_pb2.REQUIRED in _behaviors(f):
                parameter["required"] = True
            if f.label == _FDP.LABEL_REPEATED:
                parameter["explode"] = True
            yield parameter

    def _path_parameters(self, request: str, template: str) -> Iterator[Json]:
        """One required path parameter per ``{field}`` (or ``{field=pattern}``) of the template."""
        for variable, pattern in _TEMPLATE_VARIABLE.findall(template):
            owner, f = self._resolve(request, variable)
            description = self.index.field_comment(owner, f)
            if pattern and pattern != "*":
                description = f"{description}\n\nMatches `{pattern}`.".strip()
            schema = dict(self.schemas.value(owner, f)) | self.schemas.constraints(owner, f)
            yield {"name": variable, "in": "path", "required": True, "schema": schema} | (
                {"description": description} if description else {}
            )

    def _request_body(self, request: str, body: str, bound: set[str]) -> Json:
        """The request body of ``body: "*"`` (the fields the path leaves) or ``body: "field"``."""
        message = self.index.messages[request]
        if body == "*":
            fields = [f for f in message.proto.field if f.name not in bound]
            schema = self.schemas.object(request, fields, "") if bound else self.schemas.ref(request)
            required = any(field_behavior_pb2.REQUIRED in _behaviors(f) for f in fields)
            description = message.comment
        else:
            owner, f = self._resolve(request, body)
            schema = self.schemas.field(owner, f)
            schema.pop("readOnly", None)
            description = schema.pop("description", "")
            required = field_behavior_pb2.REQUIRED in _behaviors(f)
        return {"required": required, "content": {"application/json": {"schema": schema}}} | (
            {"description": description} if description else {}
        )

    def _success(self, method: _Method, binding: _Binding) -> Json:
        """The 200 response: the response message (or its ``response_body`` field); a stream as SSE."""
        response = method.proto.output_type.lstrip(".")
        if binding.response_body:
            owner, f = self._resolve(response, binding.response_body)
            schema = self.schemas.field(owner, f)
            description = schema.pop("description", "") or "OK"
        else:
            schema = self.schemas.ref(response)
            description = self.index.messages[response].comment or "OK"
        if not method.proto.server_streaming:
            return {"description": description, "content": {"application/json": {"schema": schema}}}
        # OpenAPI 3.1 has no itemSchema (3.2 has): for an event stream, `schema` describes one event, the
        # reading of tools that validate streams (Schemathesis checks each event of WatchOrder against it).
        event = {
            "type": "object",
            "required": ["data"],
            "properties": {"data": {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}},
        }
        return {
            "description": (
                "A stream of Server-Sent Events: each event is one line "
                f"`data: <{response.rpartition('.')[2]} JSON>` followed by a blank line "
                "(`schema` describes one event). The stream ends when the call does; "
                "an error before the first event is an error response like any other."
            ),
            "content": {"text/event-stream": {"schema": event}},
        }

    def operation(self, service: _Service, method: _Method, binding: _Binding, operation_id: str) -> tuple[str, Json]:
        """The path (OpenAPI template) and the operation of one HTTP rule of ``method``."""
        if method.proto.client_streaming:
            raise ValueError(f"{method.proto.name}: client streaming has no HTTP/JSON form here")
        request = method.proto.input_type.lstrip(".")
        parameters = list(self._path_parameters(request, binding.template))
        bound = {p["name"] for p in parameters}
        headers = self.api.headers.get(method.proto.name, ())
        parameters += [
            {"name": h.name, "in": "header", "description": h.description, "schema": h.schema}
            | ({"required": True} if h.required else {})
            for h in headers
        ]
        operation: Json = {
            "operationId": operation_id,
            "tags": [service.proto.name],
            "security": [{"bearerAuth": []}],
        }
        if method.comment:
            operation["description"] = method.comment
        errors = [*_ALWAYS, *(e for h in headers for e in h.errors)]
        if bound:
            errors.append("NotFound")
        if binding.body:
            errors.append("PayloadTooLarge")
            operation["requestBody"] = self._request_body(request, binding.body, bound)
        if binding.body != "*":
            # Every field neither the path nor the body binds is a query parameter.
            parameters += self._query(request, (), "", bound | {binding.body}, (request,))
        if parameters:
            operation["parameters"] = parameters
        operation["responses"] = {"200": self._success(method, binding)} | {
            status: {"$ref": _RESPONSES + name} for name, status, _ in _ERRORS if name in errors
        }
        path = _TEMPLATE_VARIABLE.sub(lambda m: "{" + m.group(1) + "}", binding.template)
        return path, operation


def _add_links(index: _Index, built: Sequence[tuple[str, _Method, _Binding, Json]]) -> None:
    """OpenAPI links: from each unary response message to every other operation whose path it fills.

    An operation whose path variables are all top-level fields of the response message (``{order_id}``
    and ``Order.order_id``) can be called with what the response says: ``$response.body#/orderId``.
    Only from an operation that did not have those values already (CreateOrder, not GetOrder): that is
    where a client learns them.
    """
    takes: dict[str, list[str]] = {}
    for operation_id, _, binding, _ in built:
        variables = [variable for variable, _ in _TEMPLATE_VARIABLE.findall(binding.template)]
        if variables and not any("." in v for v in variables):
            takes[operation_id] = variables
    for operation_id, method, binding, operation in built:
        if method.proto.server_streaming or binding.response_body:
            continue
        response = method.proto.output_type.lstrip(".")
        fields = {
            f.name: _json_name(f)
            for f in index.messages[response].proto.field
            if f.label != _FDP.LABEL_REPEATED and f.type not in (_FDP.TYPE_MESSAGE, _FDP.TYPE_GROUP)
        }
        short = response.rpartition(".")[2]
        links = {
            target: {
                "operationId": target,
                "parameters": {v: f"$response.body#/{fields[v]}" for v in variables},
                "description": f"{target} on the {short} returned, by its {', '.join(fields[v] for v in variables)}.",
            }
            for target, variables in sorted(takes.items())
            if all(v in fields for v in variables) and not set(variables) & set(takes.get(operation_id, ()))
        }
        if links:
            operation["responses"]["200"]["links"] = links


def build(fds: descriptor_pb2.FileDescriptorSet, api: Api = ORDERS_API) -> Json:
    """The OpenAPI 3.1 document of ``api.service``'s HTTP rules in ``fds`` (compiled with source info)."""
    index = _Index(fds)
    service = index.services[api.service]
    schemas = _Schemas(index, api.any_types, api.field_schemas)
    operations = _Operations(api, index, schemas)
    paths: dict[str, Json] = {}
    built: list[tuple[str, _Method, _Binding, Json]] = []
    for method in service.methods:
        for n, binding in enumerate(_bindings(method.proto)):
            operation_id = method.proto.name if n == 0 else f"{method.proto.name}{n + 1}"
            path, operation = operations.operation(service, method, binding, operation_id)
            if binding.verb in paths.get(path, {}):
                raise ValueError(f"two HTTP rules for {binding.verb.upper()} {path}")
            paths.setdefault(path, {})[binding.verb] = operation
            built.append((operation_id, method, binding, operation))
    _add_links(index, built)

    status = schemas.ref("google.rpc.Status")
    error_content = {"application/json": {"schema": status}}
    responses = {name: {"description": description, "content": error_content} for name, _, description in _ERRORS}
    version = service.package.rpartition(".")[2] or "v1"
    description = "\n\n".join(
        part
        for part in (
            service.comment,
            f"Derived from `{service.file}` (`{api.service}`) by `make gen`; never edited by hand. "
            "Bodies use the proto3 JSON mapping: lowerCamelCase names, 64-bit integers as strings, "
            "enums as their value names. Errors are `google.rpc.Status` JSON.",
        )
        if part
    )
    info: Json = {"title": api.title, "version": version, "description": description}
    if api.license:
        info["license"] = {"name": api.license, "identifier": api.license}
    server: Json = {"url": api.server}
    if api.server_description:
        server["description"] = api.server_description
    tag: Json = {"name": service.proto.name}
    if service.comment:
        tag["description"] = service.comment
    components = schemas.components()
    if unused := schemas.unused_constraints():
        raise ValueError(f"Api.field_schemas names fields the document does not have: {', '.join(unused)}")
    return {
        "openapi": "3.1.0",
        "info": info,
        "servers": [server],
        "tags": [tag],
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": responses,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT sent as `Authorization: Bearer <token>`.",
                }
            },
        },
    }


def render(document: Mapping[str, Any]) -> str:
    """The committed text of a document: sorted keys, two-space indent, a trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(descriptor_set: Path, out: Path, api: Api = ORDERS_API) -> None:
    """Write the document derived from a descriptor set file (compiled with source info) to ``out``."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(build(fds, api)), encoding="utf-8")
